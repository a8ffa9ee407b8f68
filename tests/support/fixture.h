/*
 * Fixtures for the integration suites: real servers and the real programs on
 * free loopback ports, and a small libcurl client.
 *
 *   fx_redis   a private redis-server (own temp dir, own port); stop, restart on
 *              the same port and dir (persistence tests), kill -9
 *   fx_pg      a private PostgreSQL (initdb in a temp dir, database "flashgate",
 *              db/schema.sql applied when the file exists)
 *   fx_proc    any program (gateway, worker, fake provider) with a given
 *              environment, output to a log file; readiness by polling an URL
 *   fx_http    one request: status, response headers, body; `until` ends a
 *              stream (SSE) as soon as the body contains a string
 *
 * Every wait polls a condition against a deadline; nothing sleeps for
 * readiness.  Functions return 0 (or a documented value) or -errno and print
 * one line saying why to stderr, so tests write ck_assert_int_eq(f(...), 0).
 *
 * Processes: each child gets PR_SET_PDEATHSIG(SIGKILL), so when a Check
 * assertion ends the test process (it _exit()s in fork mode), its servers die
 * with it.  Start fixtures in the test function or a checked fixture (the same
 * process that stops them), not in an unchecked one: only the parent can reap.
 * Not thread-safe: call from the test's main thread.
 *
 * Temp dirs: under $FLASHGATE_TEST_TMP (else /tmp).  *_done() removes them, so
 * a test that failed (and never reached _done) leaves its logs behind; each
 * log's path is printed when the process starts, and fixture failures
 * (a process that exits before it is ready, a timeout) print the log.
 *
 * Binaries: meson passes their paths in the environment (see
 * tests/support/meson.build: integration_env): FLASHGATE_GATEWAY,
 * FLASHGATE_WORKER, FLASHGATE_FAKE_PROVIDER, REDIS_SERVER (default
 * redis-server from PATH), PG_BINDIR (default the newest
 * /usr/lib/postgresql/<v>/bin), FLASHGATE_SOURCE_DIR.
 */
#ifndef TESTS_SUPPORT_FIXTURE_H
#define TESTS_SUPPORT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

#define FX_READY_TIMEOUT_MS   30000  /* default wait for a server to answer */
#define FX_STOP_TIMEOUT_MS    15000  /* default wait after SIGTERM */
#define FX_HTTP_TIMEOUT_MS    10000  /* default whole-request timeout */
#define FX_HTTP_MAX_BODY      (64u << 20)  /* bodies larger than this fail with -EMSGSIZE */
#define FX_HTTP_MAX_HEADERS   256    /* response header lines kept */

/* ---- general */

/* A TCP port that was free on 127.0.0.1 a moment ago, or -errno. */
int fixture_free_port(void);
/* $FLASHGATE_TEST_TMP or /tmp.  Borrowed. */
const char *fixture_tmp_root(void);
/* A new directory <tmp root>/flashgate-<tag>.XXXXXX (mode 0711); caller frees the
 * string.  NULL on failure (message printed). */
char *fixture_mkdtemp(const char *tag);
/* rm -rf path.  0 or -errno. */
int fixture_rmtree(const char *path);
/* getenv(env_name) if set and non-empty, else fallback (may be NULL).  Borrowed. */
const char *fixture_bin(const char *env_name, const char *fallback);
/* $FLASHGATE_SOURCE_DIR/rel (else the source dir compiled in); caller frees. */
char *fixture_source_path(const char *rel);
/* The whole file as a NUL-terminated string (caller frees), or NULL. */
char *fixture_read_file(const char *path, size_t *ret_len);

/* ---- redis-server */

struct fx_redis {
    int port;
    pid_t pid;            /* -1 when not running */
    bool appendonly;
    char *dir;            /* owned: data dir and redis.log */
    char url[64];         /* "redis://127.0.0.1:<port>" */
};

/* Start on a free port with a fresh temp dir; returns once PING answers.
 * `--save '' --appendonly yes|no --daemonize no --bind 127.0.0.1`. */
int fx_redis_start(struct fx_redis *r, bool appendonly);
/* SIGTERM (redis flushes the append-only file) and reap.  0 or -errno. */
int fx_redis_stop(struct fx_redis *r);
/* Start again on the same port and dir (the data is kept); waits for PING. */
int fx_redis_restart(struct fx_redis *r);
/* SIGKILL and reap (a crash: nothing is flushed). */
int fx_redis_kill(struct fx_redis *r);
/* A new connection (2 s timeouts); caller redisFree()s.  NULL on failure. */
redisContext *fx_redis_connect(const struct fx_redis *r);
/* Stop if running and remove the dir.  Safe on a zeroed or failed struct. */
void fx_redis_done(struct fx_redis *r);

/* ---- PostgreSQL */

struct fx_pg {
    int port;
    pid_t pid;            /* postmaster, -1 when not running */
    char *dir;            /* owned: data/ and postgres.log */
    char url[128];        /* "postgresql://postgres@127.0.0.1:<port>/flashgate" */
};

/* initdb (trust auth, superuser "postgres"), start on a free loopback port,
 * CREATE DATABASE flashgate, apply db/schema.sql if it exists.  As root the
 * server runs as user postgres.  Takes a second or two. */
int fx_pg_start(struct fx_pg *pg);
/* Fast shutdown (SIGINT) and reap. */
int fx_pg_stop(struct fx_pg *pg);
/* Start again on the same port and data. */
int fx_pg_restart(struct fx_pg *pg);
/* Run SQL (one or more statements) in database flashgate.  0 or -EIO (message printed). */
int fx_pg_exec(const struct fx_pg *pg, const char *sql);
void fx_pg_done(struct fx_pg *pg);

/* ---- any program */

struct fx_proc {
    pid_t pid;            /* -1 when not running */
    bool exited;
    int status;           /* waitpid() status once exited */
    char name[64];
    char *dir;            /* owned temp dir: HOME, TMPDIR and the log */
    char *log_path;       /* <dir>/<name>.log */
};

/* Start `path` (argv NULL means { path, NULL }) with the environment `env`
 * (NULL-terminated "K=V" list, may be NULL) merged over a minimal base: PATH,
 * LANG=C.UTF-8, HOME and TMPDIR (its temp dir), and the sanitizer and
 * FLASHGATE_* variables of the test's own environment.  A path without '/' is
 * looked up in PATH.  stdout and stderr go to log_path. */
int fx_proc_start(struct fx_proc *p, const char *name, const char *path,
                  const char *const argv[], const char *const env[]);
/* Poll url until it answers 200 (timeout_ms <= 0: FX_READY_TIMEOUT_MS).
 * 0; -ECHILD if the process exited first; -ETIMEDOUT.  Prints the log on failure. */
int fx_proc_wait_http(struct fx_proc *p, const char *url, int timeout_ms);
/* true while the process has not exited (reaps it if it has). */
bool fx_proc_running(struct fx_proc *p);
/* kill(pid, sig).  0, or -ESRCH if it already exited. */
int fx_proc_signal(struct fx_proc *p, int sig);
/* Wait for exit.  Returns the exit code (0..255), 128+N if killed by signal
 * N, or -ETIMEDOUT (the process keeps running; log printed). */
int fx_proc_wait_exit(struct fx_proc *p, int timeout_ms);
/* SIGTERM, wait (timeout_ms <= 0: FX_STOP_TIMEOUT_MS), SIGKILL if still
 * running.  Returns like fx_proc_wait_exit, -ETIMEDOUT when SIGKILL was
 * needed; prints the log unless the exit code is 0. */
int fx_proc_stop(struct fx_proc *p, int timeout_ms);
/* The log so far, NUL-terminated; caller frees.  NULL if unreadable. */
char *fx_proc_log(const struct fx_proc *p);
void fx_proc_print_log(const struct fx_proc *p);
/* SIGKILL if still running, reap, remove the dir. */
void fx_proc_done(struct fx_proc *p);

/* The gateway (FLASHGATE_GATEWAY) on a free loopback port with REDIS_URL =
 * redis_url (may be NULL), then `env` (overrides); returns once /health
 * answers 200.  *ret_port gets the port. */
int fx_gateway_start(struct fx_proc *p, const char *redis_url, const char *const env[],
                     int *ret_port);
/* The worker (FLASHGATE_WORKER), WORKER_HEALTH_PORT free, likewise. */
int fx_worker_start(struct fx_proc *p, const char *redis_url, const char *const env[],
                    int *ret_port);

/* ---- HTTP client */

struct fx_http_req {
    const char *method;           /* NULL: GET, or POST when body is set */
    const char *url;
    const char *const *headers;   /* NULL-terminated "Name: value" list, or NULL */
    const char *body;             /* NULL: no body */
    size_t body_len;              /* 0: strlen(body) */
    long timeout_ms;              /* 0: FX_HTTP_TIMEOUT_MS */
    const char *until;            /* stop reading once the body contains this */
};

struct fx_http_header {
    char *name;
    char *value;
};

struct fx_http_resp {
    long status;                  /* 0 if no response arrived */
    char *body;                   /* NUL-terminated (also when empty) */
    size_t body_len;
    struct fx_http_header headers[FX_HTTP_MAX_HEADERS];  /* of the final response */
    size_t nheaders;
    bool until_found;             /* req.until was seen (and reading stopped) */
};

/* Do one request.  0 when the response was read to its end or to `until`;
 * -ETIMEDOUT (what arrived is kept in resp), -ECONNREFUSED, -EMSGSIZE, -EIO.
 * resp must be fx_http_resp_done()d after any return. */
int fx_http_do(const struct fx_http_req *req, struct fx_http_resp *resp);
/* GET url. */
int fx_http_get(const char *url, struct fx_http_resp *resp);
/* POST url with a JSON body (Content-Type: application/json) and extra headers. */
int fx_http_post_json(const char *url, const char *json, const char *const *headers,
                      struct fx_http_resp *resp);
/* Value of the first header with this name (case-insensitive), or NULL.
 * Borrowed, valid until fx_http_resp_done(). */
const char *fx_http_header(const struct fx_http_resp *resp, const char *name);
void fx_http_resp_done(struct fx_http_resp *resp);

#endif
