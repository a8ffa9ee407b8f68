/*
 * auth.c: see auth.h.  The stream-token key is HMAC-SHA256(AUTH_JWT_SECRET,
 * "flashgate/events-token/v1"), so a leaked stream token can never be replayed
 * as a user JWT (different key) and every instance derives the same key.  In
 * insecure development mode the key derives from a fixed string: tokens are
 * still issued (same URLs) but streams do not require them.
 */
#include "gateway/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crypto.h"
#include "gateway/gateway.h"
#include "gateway/http.h"

#define JWT_LEEWAY_S 30
#define INSECURE_KEY "flashgate-insecure-development-mode"

bool auth_insecure(const struct gw *gw)
{
    return gw->cfg->auth_jwt_secret == NULL;
}

static void stream_key(const struct gw *gw, uint8_t key[SHA256_LEN])
{
    const char *secret = gw->cfg->auth_jwt_secret ? gw->cfg->auth_jwt_secret : INSECURE_KEY;
    static const char label[] = "flashgate/events-token/v1";
    crypto_hmac_sha256(secret, strlen(secret), label, sizeof(label) - 1, key);
}

static enum jwt_status verify(const char *secret, const char *tok, struct jwt_claims *cl)
{
    struct jwt_verify_opts o = { .now_s = clock_now_ms() / 1000, .leeway_s = JWT_LEEWAY_S, .require_exp = true };
    return jwt_verify_hs256(tok, strlen(tok), secret, strlen(secret), &o, cl);
}

int auth_verify_user_token(struct gw *gw, const char *token, struct identity *id)
{
    if (!gw->cfg->auth_jwt_secret || !token)
        return -EACCES;
    struct jwt_claims cl;
    if (verify(gw->cfg->auth_jwt_secret, token, &cl) != JWT_OK || !cl.sub[0])
        return -EACCES;
    snprintf(id->user_id, sizeof(id->user_id), "%s", cl.sub);
    id->from_jwt = true;
    return 0;
}

int auth_user(struct req *r, const char *body_user_id, struct identity *id, int *reply_result)
{
    struct gw *gw = r->gw;
    memset(id, 0, sizeof(*id));
    if (auth_insecure(gw)) {
        const char *h = req_header(r, "user-id");
        const char *u = (h && *h) ? h : body_user_id;
        if (!u || !*u)
            return -ENOENT;
        if (strlen(u) >= sizeof(id->user_id)) {
            *reply_result = reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "userId is too long");
            return -EACCES;
        }
        if (h && *h && body_user_id && *body_user_id && strcmp(h, body_user_id) != 0) {
            *reply_result = reply_error(r, MHD_HTTP_FORBIDDEN, "FORBIDDEN",
                                        "userId in the body does not match the caller");
            return -EACCES;
        }
        snprintf(id->user_id, sizeof(id->user_id), "%s", u);
        return 0;
    }
    const char *auth = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
        reply_header(r, "WWW-Authenticate", "Bearer");
        *reply_result = reply_error(r, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                                    "Authorization: Bearer <token> is required");
        return -EACCES;
    }
    struct jwt_claims cl;
    enum jwt_status st = verify(gw->cfg->auth_jwt_secret, auth + 7, &cl);
    if (st != JWT_OK) {
        reply_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        *reply_result = reply_error(r, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                                    st == JWT_EXPIRED ? "Token expired" : "Invalid token");
        return -EACCES;
    }
    if (body_user_id && *body_user_id && strcmp(body_user_id, cl.sub) != 0) {
        *reply_result = reply_error(r, MHD_HTTP_FORBIDDEN, "FORBIDDEN",
                                    "userId in the body does not match the token");
        return -EACCES;
    }
    snprintf(id->user_id, sizeof(id->user_id), "%s", cl.sub);
    id->from_jwt = true;
    return 0;
}

long auth_sign_job_token(struct gw *gw, const char *user_id, const char *job_id, char *out, size_t cap)
{
    uint8_t key[SHA256_LEN];
    stream_key(gw, key);
    int64_t now = clock_now_ms() / 1000;
    return jwt_sign_hs256(user_id, job_id, now, now + gw->cfg->events_token_ttl_s, key, sizeof(key), out, cap);
}

int auth_verify_job_token(struct gw *gw, const char *token, const char *job_id, char *ret_user)
{
    uint8_t key[SHA256_LEN];
    stream_key(gw, key);
    struct jwt_verify_opts o = { .now_s = clock_now_ms() / 1000, .leeway_s = JWT_LEEWAY_S, .require_exp = true };
    struct jwt_claims cl;
    if (!token || jwt_verify_hs256(token, strlen(token), key, sizeof(key), &o, &cl) != JWT_OK)
        return -EACCES;
    if (strcmp(cl.job, job_id) != 0 || !cl.sub[0])
        return -EACCES;
    snprintf(ret_user, JWT_SUB_MAX, "%s", cl.sub);
    return 0;
}
