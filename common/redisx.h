/*
 * Redis connections.
 *
 * A struct redisx is one synchronous hiredis connection owned by exactly one
 * thread at a time (never shared behind a lock).  It connects lazily, with a
 * connect timeout and a command timeout, and after an I/O error it is closed
 * and reconnected on a later call, no sooner than an exponential backoff
 * (100 ms doubling up to REDIS_RETRY_MAX_MS, with jitter) allows, so a Redis
 * outage costs callers a fast failure, not a stall per request.
 *
 * Gateway request threads use redisx_thread(): one connection per libmicrohttpd
 * pool thread, created on first use.  The worker, the bus thread and tests
 * create their own with redisx_new().
 *
 * Scripts: struct redisx_script holds Lua source and its SHA1; redisx_eval()
 * sends EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart).
 *
 * Replies are hiredis redisReply objects owned by the caller (freeReplyObject).
 * A NULL return means the connection failed (or is backing off): errno-style
 * code via redisx_last_error(); a Redis error reply (REDIS_REPLY_ERROR) is
 * returned as a reply, not as NULL.
 */
#ifndef COMMON_REDISX_H
#define COMMON_REDISX_H

#include <stdbool.h>
#include <stddef.h>
#include <hiredis/hiredis.h>

struct config;

struct redis_target {
    char host[256];            /* host name/address, or unix socket path if unix */
    int port;
    bool unix_socket;
    char password[256];        /* "" = none */
    char username[128];        /* "" = default user */
    int db;
    int connect_timeout_ms;
    int command_timeout_ms;
    int retry_max_ms;
};

/* REDIS_URL, else REDIS_PUBLIC_URL, else REDIS_HOST/PORT/PASSWORD. 0 or -EINVAL (err says why). */
int redisx_target_from_config(const struct config *c, struct redis_target *t, char *err, size_t errlen);
/* Parse redis://[[user]:password@]host[:port][/db] or unix:///path[?db=n]. 0 or -EINVAL. */
int redisx_parse_url(const char *url, struct redis_target *t);
/* "host:port/db" for logs (never the password). */
void redisx_describe(const struct redis_target *t, char *out, size_t cap);

struct redisx;

/* Does not connect yet.  Copies *t. */
struct redisx *redisx_new(const struct redis_target *t);
void redisx_free(struct redisx *r);                  /* NULL-safe */

/* Connect now if not connected (respecting backoff).  0, or -EIO / -EAGAIN (backing off). */
int redisx_ensure(struct redisx *r);
bool redisx_is_connected(const struct redisx *r);
/* Drop the connection (e.g. after a protocol error); next call reconnects. */
void redisx_reset(struct redisx *r);
/* The live hiredis context for pipelining (redisAppendCommand/redisGetReply), or NULL.
 * On a NULL reply from redisGetReply call redisx_reset(). */
redisContext *redisx_context(struct redisx *r);
/* Override the command timeout for the next calls (blocking commands); ms <= 0 restores default. */
void redisx_set_timeout(struct redisx *r, int ms);

redisReply *redisx_command(struct redisx *r, const char *fmt, ...);
redisReply *redisx_commandv(struct redisx *r, int argc, const char **argv, const size_t *argvlen);
/* -errno of the last failure on this connection (-EIO, -ETIMEDOUT, -EAGAIN). */
int redisx_last_error(const struct redisx *r);

struct redisx_script {
    const char *name;          /* for logs */
    const char *src;
    char sha[41];              /* filled by redisx_script_init */
};
void redisx_script_init(struct redisx_script *s, const char *name, const char *src);
/* EVALSHA sha nkeys keys... args...; falls back to EVAL on NOSCRIPT.
 * argv holds nkeys keys followed by nargs args; lengths may be NULL (strlen). */
redisReply *redisx_eval(struct redisx *r, const struct redisx_script *s,
                        int nkeys, int nargs, const char **argv, const size_t *lens);

/* Process-wide target for redisx_thread(); set once in main before threads start. */
void redisx_thread_setup(const struct redis_target *t);
/* This thread's connection (created on first use, freed at thread exit). */
struct redisx *redisx_thread(void);

/* Round-trip a PING; returns latency in microseconds, or -errno. */
long redisx_ping_us(struct redisx *r);

#endif
