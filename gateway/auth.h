/*
 * Caller identity for user endpoints, per the contract:
 *  - AUTH_JWT_SECRET set: Authorization: Bearer <HS256 JWT> is required
 *    (401 UNAUTHORIZED otherwise); `sub` is the user; a body userId that
 *    differs from sub is refused (403 FORBIDDEN).
 *  - unset (insecure development mode): the user-id header, else the body's
 *    userId; nothing at all is "missing userId" for the caller to report.
 * Stream tokens: the eventsUrl of a job carries a short-lived HS256 token
 * bound to (user, job), signed with a key derived from AUTH_JWT_SECRET, so
 * any gateway instance can verify it.  Thread-safe; runs on pool threads.
 */
#ifndef GATEWAY_AUTH_H
#define GATEWAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/jwt.h"

struct req;
struct gw;

struct identity {
    char user_id[JWT_SUB_MAX];
    bool from_jwt;
};

/*
 * Resolve the caller.  body_user_id may be NULL.  Returns 0 with *id set;
 * -ENOENT when insecure mode has no identity at all (nothing queued: the
 * caller reports the missing userId with its other validation errors); or
 * -EACCES after queuing the 401/403 reply, whose result is in *reply_result.
 */
int auth_user(struct req *r, const char *body_user_id, struct identity *id, int *reply_result);

/* Verify a user JWT given as a string (access_token query parameter). 0 or -EACCES. */
int auth_verify_user_token(struct gw *gw, const char *token, struct identity *id);

/* Job-bound stream token.  Returns the token length or -EMSGSIZE. */
long auth_sign_job_token(struct gw *gw, const char *user_id, const char *job_id,
                         char *out, size_t cap);
/* 0 when token is valid for job_id; sets *ret_user to its user (JWT_SUB_MAX). -EACCES otherwise. */
int auth_verify_job_token(struct gw *gw, const char *token, const char *job_id, char *ret_user);

bool auth_insecure(const struct gw *gw);

#endif
