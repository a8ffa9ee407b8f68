/*
 * sse-publish: the event source of bench/sse.sh.  It emits job events at a
 * fixed rate with a wall-clock microsecond stamp (`ts_us`) inside the
 * event's data, for sse-bench --ts-field ts_us to measure delivery latency,
 * to either server under test:
 *
 *   sse-publish redis HOST PORT setup PREFIX N USER
 *       Create N job records PREFIX0 .. PREFIX<N-1> of USER (state active,
 *       no events yet; the record layout of docs/queue.md) and clear their
 *       histories.  The gateway's GET /api/job-events reads these records.
 *   sse-publish redis HOST PORT emit PREFIX K RATE SECONDS USER [EVMAX]
 *       RATE events a second for SECONDS, round robin over PREFIX0..K-1:
 *       each is what common/lua/common.lua emit() writes -- the next per-job
 *       seq (HINCRBY event_seq), the event record appended to the job's
 *       history (RPUSH, LTRIM to EVMAX, default 200), PUBLISH on the job's
 *       and the user's channel -- in one Lua script, so the hub sees real,
 *       gap-free events and never has to replay.
 *   sse-publish nchan HOST PORT emit PREFIX K RATE SECONDS
 *       The same schedule and data, POSTed to nchan's publisher location
 *       http://HOST:PORT/pub/PREFIX<i> over one keep-alive connection.
 *
 * Event data: {"jobId":"<id>","progress":<0..100>,"ts_us":<now us>,
 * "timestamp":"<ISO-8601 ms>"}; ts_us is taken just before the command is
 * written.  Events are sent one at a time (the reply read before the next),
 * on an absolute schedule: a late event is sent at once and counted.
 * Prints one summary line on stdout: sent, errors, late, receivers (the sum
 * of PUBLISH replies on job channels, redis only).
 *
 * Bounds: N, K <= PUBLISH_MAX_JOBS, RATE <= PUBLISH_MAX_RATE, SECONDS <=
 * PUBLISH_MAX_SECONDS; HOST must be a loopback address.
 * Built by bench/meson.build (bench/sse-publish in the build directory).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define PUBLISH_MAX_JOBS    1000000
#define PUBLISH_MAX_RATE    100000.0
#define PUBLISH_MAX_SECONDS 3600.0
#define PREFIX_MAX          40
#define USER_MAX            64
#define KEY_PREFIX          "fg:{ai-jobs}:"

static const char EMIT_LUA[] =
    "local seq = redis.call('HINCRBY', KEYS[1], 'event_seq', 1)\n"
    "local p = '{\"seq\":' .. seq .. ',\"event\":\"progress\",\"jobId\":' .. cjson.encode(ARGV[1]) ..\n"
    "  ',\"userId\":' .. cjson.encode(ARGV[2]) .. ',\"data\":' .. ARGV[3] .. '}'\n"
    "redis.call('HSET', KEYS[1], 'progress', ARGV[6])\n"
    "redis.call('RPUSH', KEYS[2], p)\n"
    "redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)\n"
    "redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))\n"
    "local n = redis.call('PUBLISH', KEYS[3], p)\n"
    "redis.call('PUBLISH', KEYS[4], p)\n"
    "return n\n";

static void die(const char *msg)
{
    fprintf(stderr, "sse-publish: %s\n", msg);
    exit(1);
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void iso(long long us, char out[32])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(us / 1000 % 1000));
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || v < lo || v > hi) {
        fprintf(stderr, "sse-publish: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static double parse_dbl(const char *s, double lo, double hi, const char *what)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || !(v >= lo && v <= hi)) {
        fprintf(stderr, "sse-publish: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static void check_name(const char *s, size_t max, const char *what)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") != n) {
        fprintf(stderr, "sse-publish: bad %s (letters, digits, -_.: only, at most %zu)\n", what, max);
        exit(2);
    }
}

static void check_loopback(const char *host)
{
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
        die("HOST must be a 127.x.y.z address");
}

/* Sleep until the absolute monotonic time t (ns); false if it has passed. */
static int wait_until(long long t)
{
    if (mono_ns() >= t)
        return 0;
    struct timespec ts = { (time_t)(t / 1000000000LL), (long)(t % 1000000000LL) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 1;
}

/* ------------------------------------------------------------ redis */

static redisContext *redis_connect(const char *host, int port)
{
    struct timeval tv = { 5, 0 };
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err)
        die(c ? c->errstr : "cannot connect to redis");
    redisSetTimeout(c, tv);
    return c;
}

static void redis_setup(redisContext *c, const char *prefix, long n, const char *user)
{
    char now[32];
    snprintf(now, sizeof(now), "%lld", now_us() / 1000);
    long pending = 0;
    for (long i = 0; i < n; i++) {
        char id[PREFIX_MAX + 16], jk[128], ek[128];
        snprintf(id, sizeof(id), "%s%ld", prefix, i);
        snprintf(jk, sizeof(jk), KEY_PREFIX "job:%s", id);
        snprintf(ek, sizeof(ek), KEY_PREFIX "events:%s", id);
        redisAppendCommand(c, "DEL %s %s", jk, ek);
        redisAppendCommand(c, "HSET %s id %s user %s type generate-flashcards state active attempts 1 "
                              "progress 0 created_ms %s started_ms %s event_seq 0", jk, id, user, now, now);
        redisAppendCommand(c, "EXPIRE %s 7200", jk);
        pending += 3;
        if (pending >= 3000 || i == n - 1) {
            for (; pending > 0; pending--) {
                redisReply *r;
                if (redisGetReply(c, (void **)&r) != REDIS_OK)
                    die(c->errstr);
                if (r->type == REDIS_REPLY_ERROR)
                    die(r->str);
                freeReplyObject(r);
            }
        }
    }
    printf("setup: %ld job records %s0..%s%ld of user %s\n", n, prefix, prefix, n - 1, user);
}

static void redis_emit(redisContext *c, const char *prefix, long k, double rate, double seconds, const char *user,
                       long evmax)
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", EMIT_LUA);
    if (!r || r->type != REDIS_REPLY_STRING)
        die(r && r->str ? r->str : c->errstr);
    char sha[48];
    snprintf(sha, sizeof(sha), "%s", r->str);
    freeReplyObject(r);

    long long total = (long long)(rate * seconds), sent = 0, errors = 0, late = 0, receivers = 0;
    long long t0 = mono_ns();
    char evmax_s[24];
    snprintf(evmax_s, sizeof(evmax_s), "%ld", evmax);
    for (long long i = 0; i < total; i++) {
        if (!wait_until(t0 + (long long)((double)i * 1e9 / rate)) && i > 0)
            late++;
        char id[PREFIX_MAX + 16], jk[128], ek[128], cj[160], cu[160], data[256], ts[32], pct[8];
        long j = (long)(i % k);
        snprintf(id, sizeof(id), "%s%ld", prefix, j);
        snprintf(jk, sizeof(jk), KEY_PREFIX "job:%s", id);
        snprintf(ek, sizeof(ek), KEY_PREFIX "events:%s", id);
        snprintf(cj, sizeof(cj), KEY_PREFIX "ch:job:%s", id);
        snprintf(cu, sizeof(cu), KEY_PREFIX "ch:user:%s", user);
        snprintf(pct, sizeof(pct), "%lld", (i / k) % 101);
        long long us = now_us();
        iso(us, ts);
        snprintf(data, sizeof(data), "{\"jobId\":\"%s\",\"progress\":%s,\"ts_us\":%lld,\"timestamp\":\"%s\"}", id, pct,
                 us, ts);
        const char *argv[] = { "EVALSHA", sha, "4", jk, ek, cj, cu, id, user, data, evmax_s, "7200", pct };
        r = redisCommandArgv(c, 13, argv, NULL);
        if (!r)
            die(c->errstr);
        if (r->type == REDIS_REPLY_INTEGER) {
            receivers += r->integer;
            sent++;
        } else {
            errors++;
        }
        freeReplyObject(r);
    }
    printf("sent %lld errors %lld late %lld receivers %lld\n", sent, errors, late, receivers);
}

/* ------------------------------------------------------------ nchan */

static int http_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("cannot connect to nginx");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Read one response; returns its status, or -1 on a broken connection.
 * *close is set when the server said it closes the connection after it. */
static int http_response(int fd, int *close_after)
{
    static char buf[65536];
    static size_t have;
    for (;;) {
        char *e = memmem(buf, have, "\r\n\r\n", 4);
        if (e) {
            size_t head = (size_t)(e + 4 - buf);
            int status = 0;
            sscanf(buf, "HTTP/1.%*d %d", &status);
            size_t clen = 0;
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl && cl < e)
                clen = (size_t)strtoul(cl + 17, NULL, 10);
            char *conn = strcasestr(buf, "\r\nconnection: close");
            *close_after = conn && conn < e;
            while (have < head + clen) {
                if (have == sizeof(buf))
                    return -1;
                ssize_t r = read(fd, buf + have, sizeof(buf) - have);
                if (r <= 0)
                    return -1;
                have += (size_t)r;
            }
            memmove(buf, buf + head + clen, have - head - clen);
            have -= head + clen;
            return status;
        }
        if (have == sizeof(buf))
            return -1;
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
}

static void nchan_emit(const char *host, int port, const char *prefix, long k, double rate, double seconds)
{
    int fd = http_connect(host, port);
    long long total = (long long)(rate * seconds), sent = 0, errors = 0, late = 0;
    long long t0 = mono_ns();
    for (long long i = 0; i < total; i++) {
        if (!wait_until(t0 + (long long)((double)i * 1e9 / rate)) && i > 0)
            late++;
        char id[PREFIX_MAX + 16], data[256], ts[32], req[1024];
        snprintf(id, sizeof(id), "%s%ld", prefix, (long)(i % k));
        long long us = now_us();
        iso(us, ts);
        int dn = snprintf(data, sizeof(data), "{\"jobId\":\"%s\",\"progress\":%lld,\"ts_us\":%lld,\"timestamp\":\"%s\"}",
                          id, (i / k) % 101, us, ts);
        int n = snprintf(req, sizeof(req), "POST /pub/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s", id, host, port, dn, data);
        if (write(fd, req, (size_t)n) != n)
            die("write to nginx failed");
        int close_after = 0, st = http_response(fd, &close_after);
        if (st < 0)
            die("nginx closed the publisher connection");
        if (close_after) {         /* keepalive_requests reached: a new connection */
            close(fd);
            fd = http_connect(host, port);
        }
        if (st == 201 || st == 202)
            sent++;
        else
            errors++;
    }
    close(fd);
    printf("sent %lld errors %lld late %lld receivers -1\n", sent, errors, late);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: sse-publish redis|nchan HOST PORT setup|emit PREFIX ... (see the file comment)\n");
        return 2;
    }
    const char *kind = argv[1], *host = argv[2], *cmd = argv[4], *prefix = argv[5];
    check_loopback(host);
    int port = (int)parse_long(argv[3], 1, 65535, "PORT");
    check_name(prefix, PREFIX_MAX, "PREFIX");
    if (strcmp(kind, "redis") == 0 && strcmp(cmd, "setup") == 0 && argc == 8) {
        long n = parse_long(argv[6], 1, PUBLISH_MAX_JOBS, "N");
        check_name(argv[7], USER_MAX, "USER");
        redisContext *c = redis_connect(host, port);
        redis_setup(c, prefix, n, argv[7]);
        redisFree(c);
        return 0;
    }
    if (strcmp(cmd, "emit") != 0 || argc < 9)
        die("bad arguments (see the file comment)");
    long k = parse_long(argv[6], 1, PUBLISH_MAX_JOBS, "K");
    double rate = parse_dbl(argv[7], 0.001, PUBLISH_MAX_RATE, "RATE");
    double secs = parse_dbl(argv[8], 0.001, PUBLISH_MAX_SECONDS, "SECONDS");
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(kind, "redis") == 0 && (argc == 10 || argc == 11)) {
        check_name(argv[9], USER_MAX, "USER");
        long evmax = argc == 11 ? parse_long(argv[10], 1, 1000000, "EVMAX") : 200;
        redisContext *c = redis_connect(host, port);
        redis_emit(c, prefix, k, rate, secs, argv[9], evmax);
        redisFree(c);
        return 0;
    }
    if (strcmp(kind, "nchan") == 0 && argc == 9) {
        nchan_emit(host, port, prefix, k, rate, secs);
        return 0;
    }
    die("bad arguments (see the file comment)");
}
