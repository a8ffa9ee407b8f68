/*
 * Fixtures for integration suites (see fixture.h for the contract).
 *
 * One spawn path serves every process: fork, in the child redirect output to
 * the log, close inherited descriptors, drop to user postgres when asked (the
 * PostgreSQL programs refuse root), set PR_SET_PDEATHSIG(SIGKILL) after the
 * credential change (it clears the setting), then exec.  Readiness is polled:
 * PING for redis, PQping for PostgreSQL, HTTP 200 for programs, each against
 * a deadline from clock_mono_ms(), checking between polls whether the child
 * has already exited so a crash fails fast with its log.
 */
#include "tests/support/fixture.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "common/clock.h"

#define FX_POLL_MS      10      /* between readiness polls */
#define FX_ENV_MAX      256     /* entries in a child's environment */
#define FX_ARGV_MAX     64
#define FX_PG_USER      "postgres"

extern char **environ;

static void fx_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fx_say(const char *fmt, ...)
{
    va_list ap;
    fputs("[fixture] ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static char *fx_strdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static char *fx_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fx_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return s;
}

/* ------------------------------------------------------------------ general */

int fixture_free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof(sa);
    int ret, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        ret = -errno;
        goto out;
    }
    ret = ntohs(sa.sin_port);
out:
    close(fd);
    return ret;
}

const char *fixture_tmp_root(void)
{
    const char *t = getenv("FLASHGATE_TEST_TMP");
    return (t && *t) ? t : "/tmp";
}

char *fixture_mkdtemp(const char *tag)
{
    char *path = fx_printf("%s/flashgate-%s.XXXXXX", fixture_tmp_root(), tag);
    if (!mkdtemp(path)) {
        fx_say("mkdtemp %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    /* Traversable by others: the PostgreSQL server runs as its own user. */
    chmod(path, 0711);
    return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)ftw;
    int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return r < 0 && errno != ENOENT ? -1 : 0;
}

int fixture_rmtree(const char *path)
{
    if (!path)
        return 0;
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
        return errno == ENOENT ? 0 : -errno;
    return 0;
}

const char *fixture_bin(const char *env_name, const char *fallback)
{
    const char *v = getenv(env_name);
    return (v && *v) ? v : fallback;
}

char *fixture_source_path(const char *rel)
{
    return fx_printf("%s/%s", fixture_bin("FLASHGATE_SOURCE_DIR", FLASHGATE_SOURCE_DIR), rel);
}

char *fixture_read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    if (ret_len)
        *ret_len = len;
    return buf;
}

static void print_file(const char *label, const char *path)
{
    size_t len = 0;
    char *s = fixture_read_file(path, &len);
    fprintf(stderr, "----- %s: %s%s\n", label, path, s ? "" : " (unreadable)");
    if (s) {
        fwrite(s, 1, len, stderr);
        if (len && s[len - 1] != '\n')
            fputc('\n', stderr);
    }
    fprintf(stderr, "----- end of %s\n", label);
    fflush(stderr);
    free(s);
}

/* ------------------------------------------------------------------ spawning */

struct spawn {
    const char *path;
    const char *const *argv;
    char *const *envp;
    const char *log_path;
    bool as_pg_user;          /* only matters when we are root */
};

/* Child side; never returns. */
static void spawn_child(const struct spawn *s, pid_t parent, uid_t uid, gid_t gid, bool drop)
{
    int devnull = open("/dev/null", O_RDONLY);
    int log = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (devnull < 0 || log < 0)
        _exit(126);
    if (dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
        _exit(126);
    close_range(3, ~0u, 0);
    if (drop) {
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
            dprintf(2, "fixture: cannot switch to user %s: %s\n", FX_PG_USER, strerror(errno));
            _exit(126);
        }
    }
    /* After any credential change, which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(125);
    /* Default dispositions and an empty mask for the new program. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (strchr(s->path, '/'))
        execve(s->path, (char *const *)s->argv, s->envp);
    else
        execvpe(s->path, (char *const *)s->argv, s->envp);
    dprintf(2, "fixture: exec %s: %s\n", s->path, strerror(errno));
    _exit(127);
}

static int pg_user(uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(FX_PG_USER);
    if (!pw) {
        fx_say("running as root, and there is no user '%s' to run PostgreSQL as "
               "(scripts/setup.sh installs postgresql, which creates it)", FX_PG_USER);
        return -ENOENT;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* Returns the pid, or -errno. */
static pid_t spawn_start(const struct spawn *s)
{
    uid_t uid = 0;
    gid_t gid = 0;
    bool drop = s->as_pg_user && geteuid() == 0;
    if (drop) {
        int r = pg_user(&uid, &gid);
        if (r < 0)
            return r;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        spawn_child(s, parent, uid, gid, drop);
    return pid;
}

static int status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

/* Reap pid if it has exited.  true when it has (status set). */
static bool reap(pid_t pid, int *status)
{
    if (pid <= 0)
        return true;
    pid_t r;
    do
        r = waitpid(pid, status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (r < 0)               /* not our child (ECHILD): treat as gone */
        *status = 0xff00;
    return true;
}

/* Wait up to timeout_ms for pid to exit.  true when it did (status set). */
static bool wait_pid(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        if (reap(pid, status))
            return true;
        if (clock_mono_ms() >= deadline)
            return false;
        clock_sleep_ms(FX_POLL_MS);
    }
}

/* Run a program to completion (initdb); output appended to log_path.
 * Returns its exit code, or -errno / -ETIMEDOUT. */
static int run_sync(const struct spawn *s, int timeout_ms)
{
    int status = 0;
    pid_t pid = spawn_start(s);
    if (pid < 0)
        return pid;
    if (!wait_pid(pid, timeout_ms, &status)) {
        kill(pid, SIGKILL);
        wait_pid(pid, 5000, &status);
        return -ETIMEDOUT;
    }
    return status_code(status);
}

/* Build a child's environment: base entries, then `extra` overriding by key.
 * Returns a NULL-terminated array of owned strings (free with env_free). */
static char **env_build(const char *home, const char *const extra[])
{
    static const char *const pass[] = {
        "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS",
        "MSAN_OPTIONS", "LLVM_PROFILE_FILE", "LD_LIBRARY_PATH", "LD_PRELOAD",
        NULL,
    };
    char **env = calloc(FX_ENV_MAX + 1, sizeof(*env));
    size_t n = 0;
    if (!env)
        abort();
    const char *path = getenv("PATH");
    env[n++] = fx_printf("PATH=%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    env[n++] = fx_strdup("LANG=C.UTF-8");
    if (home) {
        env[n++] = fx_printf("HOME=%s", home);
        env[n++] = fx_printf("TMPDIR=%s", home);
    }
    for (size_t i = 0; pass[i]; i++) {
        const char *v = getenv(pass[i]);
        if (v)
            env[n++] = fx_printf("%s=%s", pass[i], v);
    }
    for (char **e = environ; e && *e && n < FX_ENV_MAX / 2; e++)
        if (strncmp(*e, "FLASHGATE_", 10) == 0)
            env[n++] = fx_strdup(*e);
    for (size_t i = 0; extra && extra[i]; i++) {
        const char *eq = strchr(extra[i], '=');
        size_t klen = eq ? (size_t)(eq - extra[i]) : strlen(extra[i]);
        size_t j;
        for (j = 0; j < n; j++)
            if (strncmp(env[j], extra[i], klen) == 0 && env[j][klen] == '=')
                break;
        if (j == n && n == FX_ENV_MAX) {
            fx_say("environment larger than %d entries: %s dropped", FX_ENV_MAX, extra[i]);
            continue;
        }
        if (j < n)
            free(env[j]);
        else
            n++;
        env[j] = fx_strdup(extra[i]);
    }
    env[n] = NULL;
    return env;
}

static void env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Stop pid: signal, wait timeout_ms, then SIGKILL.  Returns like
 * fx_proc_wait_exit, -ETIMEDOUT when SIGKILL was needed. */
static int stop_pid(pid_t *pidp, int sig, int timeout_ms, int *ret_status)
{
    int status = 0;
    pid_t pid = *pidp;
    if (pid <= 0)
        return 0;
    if (reap(pid, &status))
        goto out;
    kill(pid, sig);
    if (!wait_pid(pid, timeout_ms, &status)) {
        kill(pid, SIGKILL);
        wait_pid(pid, 5000, &status);
        *pidp = -1;
        if (ret_status)
            *ret_status = status;
        return -ETIMEDOUT;
    }
out:
    *pidp = -1;
    if (ret_status)
        *ret_status = status;
    return status_code(status);
}

/* -------------------------------------------------------------- redis-server */

static int redis_ping(int port)
{
    struct timeval tv = { .tv_sec = 1 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static int redis_launch(struct fx_redis *r)
{
    char port[16];
    char *log = fx_printf("%s/redis.log", r->dir);
    const char *bin = fixture_bin("REDIS_SERVER", "redis-server");
    snprintf(port, sizeof(port), "%d", r->port);
    const char *argv[] = {
        bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
        "--appendonly", r->appendonly ? "yes" : "no", "--appendfsync", "everysec",
        "--dir", r->dir, "--daemonize", "no", "--protected-mode", "yes", NULL,
    };
    char **env = env_build(r->dir, NULL);
    struct spawn s = { .path = bin, .argv = argv, .envp = env, .log_path = log };
    int ret;
    pid_t pid = spawn_start(&s);
    env_free(env);
    if (pid < 0) {
        ret = pid;
        fx_say("redis-server: cannot start: %s", strerror(-ret));
        goto out;
    }
    r->pid = pid;
    int64_t deadline = clock_mono_ms() + FX_READY_TIMEOUT_MS;
    for (;;) {
        if (redis_ping(r->port)) {
            ret = 0;
            break;
        }
        int status;
        if (reap(r->pid, &status)) {
            r->pid = -1;
            fx_say("redis-server on port %d exited (status %d) before answering PING",
                   r->port, status_code(status));
            print_file("redis-server log", log);
            ret = -ECHILD;
            break;
        }
        if (clock_mono_ms() >= deadline) {
            fx_say("redis-server on port %d: no PONG after %d ms", r->port, FX_READY_TIMEOUT_MS);
            print_file("redis-server log", log);
            stop_pid(&r->pid, SIGKILL, 5000, NULL);
            ret = -ETIMEDOUT;
            break;
        }
        clock_sleep_ms(FX_POLL_MS);
    }
out:
    free(log);
    return ret;
}

int fx_redis_start(struct fx_redis *r, bool appendonly)
{
    memset(r, 0, sizeof(*r));
    r->pid = -1;
    r->appendonly = appendonly;
    r->port = fixture_free_port();
    if (r->port < 0) {
        fx_say("no free port: %s", strerror(-r->port));
        return r->port;
    }
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d", r->port);
    r->dir = fixture_mkdtemp("redis");
    if (!r->dir)
        return -EIO;
    fx_say("redis-server on port %d, dir %s", r->port, r->dir);
    return redis_launch(r);
}

int fx_redis_stop(struct fx_redis *r)
{
    if (r->pid <= 0)
        return 0;
    int ret = stop_pid(&r->pid, SIGTERM, FX_STOP_TIMEOUT_MS, NULL);
    if (ret != 0) {
        char *log = fx_printf("%s/redis.log", r->dir);
        fx_say("redis-server on port %d did not stop cleanly (%d)", r->port, ret);
        print_file("redis-server log", log);
        free(log);
        return ret < 0 ? ret : -EIO;
    }
    return 0;
}

int fx_redis_restart(struct fx_redis *r)
{
    if (!r->dir)
        return -EINVAL;
    if (r->pid > 0) {
        int ret = fx_redis_stop(r);
        if (ret < 0)
            return ret;
    }
    return redis_launch(r);
}

int fx_redis_kill(struct fx_redis *r)
{
    if (r->pid <= 0)
        return 0;
    stop_pid(&r->pid, SIGKILL, 5000, NULL);
    return 0;
}

redisContext *fx_redis_connect(const struct fx_redis *r)
{
    struct timeval tv = { .tv_sec = 2 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        fx_say("connect to redis on port %d: %s", r->port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

void fx_redis_done(struct fx_redis *r)
{
    if (!r)
        return;
    if (r->pid > 0)
        stop_pid(&r->pid, SIGKILL, 5000, NULL);
    fixture_rmtree(r->dir);
    free(r->dir);
    r->dir = NULL;
}

/* ---------------------------------------------------------------- PostgreSQL */

static char *pg_bindir(void)
{
    const char *env = fixture_bin("PG_BINDIR", NULL);
    if (env)
        return fx_strdup(env);
    glob_t g;
    char *best = NULL;
    long best_v = -1;
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
            if (v > best_v) {
                best_v = v;
                free(best);
                best = fx_strdup(g.gl_pathv[i]);
                *strrchr(best, '/') = '\0';
            }
        }
        globfree(&g);
    }
    if (!best)
        fx_say("PostgreSQL server programs not found in /usr/lib/postgresql/*/bin "
               "(run scripts/setup.sh, or set PG_BINDIR)");
    return best;
}

static char *pg_conninfo(const struct fx_pg *pg, const char *db)
{
    return fx_printf("host=127.0.0.1 port=%d user=postgres dbname=%s connect_timeout=2",
                     pg->port, db);
}

static int pg_exec_db(const struct fx_pg *pg, const char *db, const char *sql)
{
    char *ci = pg_conninfo(pg, db);
    PGconn *c = PQconnectdb(ci);
    int ret = 0;
    free(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fx_say("PostgreSQL connect (port %d, db %s): %s", pg->port, db, PQerrorMessage(c));
        ret = -EIO;
        goto out;
    }
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        fx_say("PostgreSQL: %s", PQresultErrorMessage(res));
        ret = -EIO;
    }
    PQclear(res);
out:
    PQfinish(c);
    return ret;
}

int fx_pg_exec(const struct fx_pg *pg, const char *sql)
{
    return pg_exec_db(pg, "flashgate", sql);
}

static int pg_launch(struct fx_pg *pg)
{
    char *bindir = pg_bindir(), *bin = NULL, *data = NULL, *log = NULL, *ci = NULL;
    char **env = NULL;
    char port[16];
    int ret;
    if (!bindir)
        return -ENOENT;
    bin = fx_printf("%s/postgres", bindir);
    data = fx_printf("%s/data", pg->dir);
    log = fx_printf("%s/postgres.log", pg->dir);
    snprintf(port, sizeof(port), "%d", pg->port);
    const char *argv[] = {
        bin, "-D", data, "-p", port,
        "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        "-c", "max_connections=200", NULL,
    };
    env = env_build(pg->dir, NULL);
    struct spawn s = { .path = bin, .argv = argv, .envp = env, .log_path = log, .as_pg_user = true };
    pid_t pid = spawn_start(&s);
    if (pid < 0) {
        ret = pid;
        goto out;
    }
    pg->pid = pid;
    ci = pg_conninfo(pg, "postgres");
    int64_t deadline = clock_mono_ms() + FX_READY_TIMEOUT_MS;
    for (;;) {
        if (PQping(ci) == PQPING_OK) {
            ret = 0;
            break;
        }
        int status;
        if (reap(pg->pid, &status)) {
            pg->pid = -1;
            fx_say("PostgreSQL on port %d exited (status %d) before accepting connections",
                   pg->port, status_code(status));
            print_file("postgres log", log);
            ret = -ECHILD;
            break;
        }
        if (clock_mono_ms() >= deadline) {
            fx_say("PostgreSQL on port %d not ready after %d ms", pg->port, FX_READY_TIMEOUT_MS);
            print_file("postgres log", log);
            stop_pid(&pg->pid, SIGKILL, 5000, NULL);
            ret = -ETIMEDOUT;
            break;
        }
        clock_sleep_ms(FX_POLL_MS);
    }
out:
    env_free(env);
    free(ci);
    free(bindir);
    free(bin);
    free(data);
    free(log);
    return ret;
}

int fx_pg_start(struct fx_pg *pg)
{
    char *bindir = NULL, *initdb = NULL, *data = NULL, *log = NULL, *schema_path = NULL, *schema = NULL;
    char **env = NULL;
    int ret;
    memset(pg, 0, sizeof(*pg));
    pg->pid = -1;
    pg->port = fixture_free_port();
    if (pg->port < 0)
        return pg->port;
    snprintf(pg->url, sizeof(pg->url), "postgresql://postgres@127.0.0.1:%d/flashgate", pg->port);
    pg->dir = fixture_mkdtemp("pg");
    if (!pg->dir)
        return -EIO;
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        if ((ret = pg_user(&uid, &gid)) < 0)
            goto out;
        if (chown(pg->dir, uid, gid) < 0) {
            ret = -errno;
            fx_say("chown %s: %s", pg->dir, strerror(errno));
            goto out;
        }
    }
    fx_say("PostgreSQL on port %d, dir %s", pg->port, pg->dir);
    if (!(bindir = pg_bindir())) {
        ret = -ENOENT;
        goto out;
    }
    initdb = fx_printf("%s/initdb", bindir);
    data = fx_printf("%s/data", pg->dir);
    log = fx_printf("%s/initdb.log", pg->dir);
    const char *argv[] = {
        initdb, "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
        "--locale=C", "--no-sync", "--no-instructions", NULL,
    };
    env = env_build(pg->dir, NULL);
    struct spawn s = { .path = initdb, .argv = argv, .envp = env, .log_path = log, .as_pg_user = true };
    ret = run_sync(&s, 120000);
    if (ret != 0) {
        fx_say("initdb failed (%d)", ret);
        print_file("initdb log", log);
        ret = ret < 0 ? ret : -EIO;
        goto out;
    }
    if ((ret = pg_launch(pg)) < 0)
        goto out;
    if ((ret = pg_exec_db(pg, "postgres", "CREATE DATABASE flashgate")) < 0)
        goto out;
    schema_path = fixture_source_path("db/schema.sql");
    if (access(schema_path, F_OK) == 0) {
        if (!(schema = fixture_read_file(schema_path, NULL))) {
            fx_say("cannot read %s", schema_path);
            ret = -EIO;
            goto out;
        }
        if ((ret = pg_exec_db(pg, "flashgate", schema)) < 0) {
            fx_say("applying %s failed", schema_path);
            goto out;
        }
    }
    ret = 0;
out:
    env_free(env);
    free(bindir);
    free(initdb);
    free(data);
    free(log);
    free(schema_path);
    free(schema);
    return ret;
}

int fx_pg_stop(struct fx_pg *pg)
{
    if (pg->pid <= 0)
        return 0;
    /* SIGINT is PostgreSQL's "fast" shutdown. */
    int ret = stop_pid(&pg->pid, SIGINT, FX_STOP_TIMEOUT_MS, NULL);
    if (ret != 0) {
        char *log = fx_printf("%s/postgres.log", pg->dir);
        fx_say("PostgreSQL on port %d did not stop cleanly (%d)", pg->port, ret);
        print_file("postgres log", log);
        free(log);
        return ret < 0 ? ret : -EIO;
    }
    return 0;
}

int fx_pg_restart(struct fx_pg *pg)
{
    if (!pg->dir)
        return -EINVAL;
    int ret = fx_pg_stop(pg);
    if (ret < 0)
        return ret;
    return pg_launch(pg);
}

void fx_pg_done(struct fx_pg *pg)
{
    if (!pg)
        return;
    if (pg->pid > 0)
        stop_pid(&pg->pid, SIGINT, FX_STOP_TIMEOUT_MS, NULL);
    fixture_rmtree(pg->dir);
    free(pg->dir);
    pg->dir = NULL;
}

/* ------------------------------------------------------------------ programs */

int fx_proc_start(struct fx_proc *p, const char *name, const char *path,
                  const char *const argv[], const char *const env[])
{
    const char *default_argv[] = { path, NULL };
    const char *const *av = argv ? argv : default_argv;
    char **envp = NULL;
    char *tag = NULL;
    int ret = 0;

    memset(p, 0, sizeof(*p));
    p->pid = -1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (!path) {
        fx_say("%s: no program path (is its environment variable set? see integration_env)", name);
        return -ENOENT;
    }
    /* File-name-safe tag for the temp dir. */
    tag = fx_strdup(p->name);
    for (char *c = tag; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
            *c = '_';
    if (!(p->dir = fixture_mkdtemp(tag))) {
        ret = -EIO;
        goto out;
    }
    p->log_path = fx_printf("%s/%s.log", p->dir, tag);
    envp = env_build(p->dir, env);
    struct spawn s = { .path = path, .argv = av, .envp = envp, .log_path = p->log_path };
    pid_t pid = spawn_start(&s);
    if (pid < 0) {
        ret = pid;
        fx_say("%s: cannot start %s: %s", name, path, strerror(-ret));
        goto out;
    }
    p->pid = pid;
    fx_say("%s: pid %d, log %s", p->name, (int)pid, p->log_path);
out:
    env_free(envp);
    free(tag);
    return ret;
}

bool fx_proc_running(struct fx_proc *p)
{
    if (p->pid <= 0)
        return false;
    if (reap(p->pid, &p->status)) {
        p->exited = true;
        p->pid = -1;
        return false;
    }
    return true;
}

static long http_status_once(const char *url, long timeout_ms);

int fx_proc_wait_http(struct fx_proc *p, const char *url, int timeout_ms)
{
    if (timeout_ms <= 0)
        timeout_ms = FX_READY_TIMEOUT_MS;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    long last = 0;
    for (;;) {
        if (!fx_proc_running(p)) {
            fx_say("%s exited (status %d) before %s answered 200", p->name,
                   status_code(p->status), url);
            fx_proc_print_log(p);
            return -ECHILD;
        }
        last = http_status_once(url, 1000);
        if (last == 200)
            return 0;
        if (clock_mono_ms() >= deadline) {
            fx_say("%s: %s did not answer 200 within %d ms (last status %ld)",
                   p->name, url, timeout_ms, last);
            fx_proc_print_log(p);
            return -ETIMEDOUT;
        }
        clock_sleep_ms(FX_POLL_MS * 2);
    }
}

int fx_proc_signal(struct fx_proc *p, int sig)
{
    if (!fx_proc_running(p))
        return -ESRCH;
    return kill(p->pid, sig) < 0 ? -errno : 0;
}

int fx_proc_wait_exit(struct fx_proc *p, int timeout_ms)
{
    if (p->pid > 0) {
        if (!wait_pid(p->pid, timeout_ms, &p->status)) {
            fx_say("%s (pid %d) still running after %d ms", p->name, (int)p->pid, timeout_ms);
            fx_proc_print_log(p);
            return -ETIMEDOUT;
        }
        p->pid = -1;
        p->exited = true;
    }
    return p->exited ? status_code(p->status) : -ECHILD;
}

int fx_proc_stop(struct fx_proc *p, int timeout_ms)
{
    if (timeout_ms <= 0)
        timeout_ms = FX_STOP_TIMEOUT_MS;
    if (p->pid <= 0)
        return p->exited ? status_code(p->status) : -ECHILD;
    int ret = stop_pid(&p->pid, SIGTERM, timeout_ms, &p->status);
    p->exited = true;
    if (ret == -ETIMEDOUT)
        fx_say("%s ignored SIGTERM for %d ms and was killed", p->name, timeout_ms);
    else if (ret != 0)
        fx_say("%s exited with status %d after SIGTERM", p->name, ret);
    if (ret != 0)
        fx_proc_print_log(p);
    return ret;
}

char *fx_proc_log(const struct fx_proc *p)
{
    return p->log_path ? fixture_read_file(p->log_path, NULL) : NULL;
}

void fx_proc_print_log(const struct fx_proc *p)
{
    if (p->log_path)
        print_file(p->name, p->log_path);
}

void fx_proc_done(struct fx_proc *p)
{
    if (!p)
        return;
    if (p->pid > 0)
        stop_pid(&p->pid, SIGKILL, 5000, &p->status);
    fixture_rmtree(p->dir);
    free(p->dir);
    free(p->log_path);
    p->dir = NULL;
    p->log_path = NULL;
}

/* Start a server program on a free port given by port_var; env_pre (owned by
 * the caller) goes before the caller's env so the caller can override it. */
static int server_start(struct fx_proc *p, const char *name, const char *bin_var,
                        const char *port_var, const char *redis_url,
                        const char *const env[], int *ret_port)
{
    const char *bin = fixture_bin(bin_var, NULL);
    char *pre[4] = { NULL };
    const char *merged[FX_ENV_MAX + 1];
    size_t n = 0;
    int ret, port = fixture_free_port();

    if (!bin) {
        memset(p, 0, sizeof(*p));
        p->pid = -1;
        fx_say("%s: %s is not set (meson sets it when the program is built)", name, bin_var);
        return -ENOENT;
    }
    if (port < 0)
        return port;
    pre[0] = fx_printf("%s=%d", port_var, port);
    pre[1] = fx_strdup("LISTEN_ADDRESS=127.0.0.1");
    pre[2] = redis_url ? fx_printf("REDIS_URL=%s", redis_url) : NULL;
    for (size_t i = 0; i < 3; i++)
        if (pre[i])
            merged[n++] = pre[i];
    for (size_t i = 0; env && env[i] && n < FX_ENV_MAX; i++)
        merged[n++] = env[i];
    merged[n] = NULL;
    ret = fx_proc_start(p, name, bin, NULL, merged);
    if (ret == 0) {
        char *url = fx_printf("http://127.0.0.1:%d/health", port);
        ret = fx_proc_wait_http(p, url, 0);
        free(url);
    }
    if (ret == 0 && ret_port)
        *ret_port = port;
    for (size_t i = 0; i < 3; i++)
        free(pre[i]);
    return ret;
}

int fx_gateway_start(struct fx_proc *p, const char *redis_url, const char *const env[],
                     int *ret_port)
{
    return server_start(p, "gateway", "FLASHGATE_GATEWAY", "PORT", redis_url, env, ret_port);
}

int fx_worker_start(struct fx_proc *p, const char *redis_url, const char *const env[],
                    int *ret_port)
{
    return server_start(p, "worker", "FLASHGATE_WORKER", "WORKER_HEALTH_PORT", redis_url,
                        env, ret_port);
}

/* -------------------------------------------------------------- HTTP client */

struct http_ctx {
    struct fx_http_resp *resp;
    size_t cap;
    const char *until;
    int error;                /* -EMSGSIZE */
};

static void curl_init_once(void)
{
    static bool done;
    if (!done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        done = true;
    }
}

static void headers_clear(struct fx_http_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct http_ctx *ctx = arg;
    struct fx_http_resp *r = ctx->resp;
    size_t len = size * n;
    /* A new status line (after 100 Continue or a redirect): keep only the last. */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        headers_clear(r);
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon || r->nheaders == FX_HTTP_MAX_HEADERS)
        return len;
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    struct fx_http_header *h = &r->headers[r->nheaders++];
    h->name = strndup(buf, (size_t)(colon - buf));
    h->value = strndup(v, (size_t)(end - v));
    if (!h->name || !h->value)
        abort();
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    struct http_ctx *ctx = arg;
    struct fx_http_resp *r = ctx->resp;
    size_t len = size * n;
    if (r->body_len + len > FX_HTTP_MAX_BODY) {
        ctx->error = -EMSGSIZE;
        return 0;
    }
    if (r->body_len + len + 1 > ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            abort();
        r->body = nb;
        ctx->cap = cap;
    }
    memcpy(r->body + r->body_len, buf, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    if (ctx->until && strstr(r->body, ctx->until)) {
        r->until_found = true;
        return 0;            /* ends the transfer (CURLE_WRITE_ERROR) */
    }
    return len;
}

static int http_do(const struct fx_http_req *req, struct fx_http_resp *resp, bool quiet)
{
    struct http_ctx ctx = { .resp = resp, .until = req->until };
    struct curl_slist *hdrs = NULL;
    int ret = 0;

    memset(resp, 0, sizeof(*resp));
    resp->body = calloc(1, 1);
    if (!resp->body)
        abort();
    ctx.cap = 1;
    curl_init_once();
    CURL *h = curl_easy_init();
    if (!h)
        abort();
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : FX_HTTP_TIMEOUT_MS;
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout < 5000 ? timeout : 5000L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
    if (req->body) {
        size_t blen = req->body_len ? req->body_len : strlen(req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || req->body)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    /* No "Expect: 100-continue" round trip for large bodies. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        hdrs = curl_slist_append(hdrs, req->headers[i]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && resp->until_found))
        ret = 0;
    else if (ctx.error)
        ret = ctx.error;
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        ret = -ETIMEDOUT;
    else if (rc == CURLE_COULDNT_CONNECT)
        ret = -ECONNREFUSED;
    else
        ret = -EIO;
    if (ret < 0 && ret != -ETIMEDOUT && ret != -ECONNREFUSED && !quiet)
        fx_say("%s %s: %s", method, req->url, curl_easy_strerror(rc));
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return ret;
}

int fx_http_do(const struct fx_http_req *req, struct fx_http_resp *resp)
{
    return http_do(req, resp, false);
}

int fx_http_get(const char *url, struct fx_http_resp *resp)
{
    struct fx_http_req req = { .url = url };
    return fx_http_do(&req, resp);
}

int fx_http_post_json(const char *url, const char *json, const char *const *headers,
                      struct fx_http_resp *resp)
{
    const char *hdrs[64];
    size_t n = 0;
    hdrs[n++] = "Content-Type: application/json";
    for (size_t i = 0; headers && headers[i] && n < 63; i++)
        hdrs[n++] = headers[i];
    hdrs[n] = NULL;
    struct fx_http_req req = { .method = "POST", .url = url, .headers = hdrs, .body = json };
    return fx_http_do(&req, resp);
}

const char *fx_http_header(const struct fx_http_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

void fx_http_resp_done(struct fx_http_resp *resp)
{
    if (!resp)
        return;
    headers_clear(resp);
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

static long http_status_once(const char *url, long timeout_ms)
{
    struct fx_http_req req = { .url = url, .timeout_ms = timeout_ms };
    struct fx_http_resp resp;
    http_do(&req, &resp, true);   /* polling: a server still starting is no news */
    long st = resp.status;
    fx_http_resp_done(&resp);
    return st;
}
