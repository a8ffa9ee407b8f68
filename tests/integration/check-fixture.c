/*
 * The fixture library against real processes: a private redis-server that
 * answers PING, keeps data across a restart (and a kill -9) with appendonly
 * and loses it without; spawned programs' environment, exit status, signals
 * and logs; the HTTP client against a small libmicrohttpd server in the test.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <microhttpd.h>
#include <libpq-fe.h>

#include "tests/support/fixture.h"

static char *redis_get(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    ck_assert_ptr_nonnull(r);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

static void redis_set(struct fx_redis *rs, const char *key, const char *val)
{
    redisContext *c = fx_redis_connect(rs);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "SET %s %s", key, val);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
}

START_TEST(free_port_is_bindable)
{
    int port = fixture_free_port();
    ck_assert_int_gt(port, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
}
END_TEST

START_TEST(redis_answers_ping)
{
    struct fx_redis rs;
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    ck_assert_int_gt(rs.port, 0);
    ck_assert_int_gt(rs.pid, 0);
    redisContext *c = fx_redis_connect(&rs);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "PING");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
    ck_assert_int_eq(fx_redis_stop(&rs), 0);
    ck_assert_int_eq(rs.pid, -1);
    /* Stopped means stopped: nobody answers on the port any more. */
    ck_assert_ptr_null(fx_redis_connect(&rs));
    fx_redis_done(&rs);
}
END_TEST

START_TEST(redis_appendonly_keeps_data_across_restart)
{
    struct fx_redis rs;
    ck_assert_int_eq(fx_redis_start(&rs, true), 0);
    int port = rs.port;
    redis_set(&rs, "fixture:key", "kept");
    ck_assert_int_eq(fx_redis_restart(&rs), 0);
    ck_assert_int_eq(rs.port, port);

    redisContext *c = fx_redis_connect(&rs);
    ck_assert_ptr_nonnull(c);
    char *v = redis_get(c, "fixture:key");
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "kept");
    free(v);
    redisFree(c);

    /* A crash (SIGKILL) after an acknowledged write keeps it too: Redis
     * writes the append-only file before it replies. */
    redis_set(&rs, "fixture:crash", "survives");
    ck_assert_int_eq(fx_redis_kill(&rs), 0);
    ck_assert_int_eq(fx_redis_restart(&rs), 0);
    c = fx_redis_connect(&rs);
    ck_assert_ptr_nonnull(c);
    v = redis_get(c, "fixture:crash");
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "survives");
    free(v);
    redisFree(c);
    fx_redis_done(&rs);
}
END_TEST

START_TEST(redis_without_appendonly_forgets)
{
    struct fx_redis rs;
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    redis_set(&rs, "fixture:key", "gone");
    ck_assert_int_eq(fx_redis_restart(&rs), 0);
    redisContext *c = fx_redis_connect(&rs);
    ck_assert_ptr_nonnull(c);
    char *v = redis_get(c, "fixture:key");
    ck_assert_ptr_null(v);
    redisFree(c);
    fx_redis_done(&rs);
}
END_TEST

START_TEST(proc_env_exit_status_and_log)
{
    struct fx_proc p;
    const char *argv[] = { "/bin/sh", "-c", "echo \"foo=$FOO home=$HOME\"; exit 3", NULL };
    const char *env[] = { "FOO=bar", NULL };
    ck_assert_int_eq(fx_proc_start(&p, "sh-exit", "/bin/sh", argv, env), 0);
    ck_assert_int_eq(fx_proc_wait_exit(&p, 10000), 3);
    ck_assert(!fx_proc_running(&p));
    char *log = fx_proc_log(&p);
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_nonnull(strstr(log, "foo=bar"));
    /* HOME is the process's own temp dir. */
    ck_assert_ptr_nonnull(strstr(log, p.dir));
    free(log);
    char *dir = strdup(p.dir);
    fx_proc_done(&p);
    ck_assert_int_ne(access(dir, F_OK), 0);
    free(dir);
}
END_TEST

START_TEST(proc_signals_and_timeouts)
{
    struct fx_proc p;
    const char *argv[] = { "/bin/sh", "-c", "trap 'echo got-hup' HUP; while :; do sleep 0.05; done", NULL };
    ck_assert_int_eq(fx_proc_start(&p, "sh-loop", "/bin/sh", argv, NULL), 0);
    ck_assert(fx_proc_running(&p));
    ck_assert_int_eq(fx_proc_wait_exit(&p, 100), -ETIMEDOUT);
    ck_assert_int_eq(fx_proc_signal(&p, SIGHUP), 0);
    /* The shell notes the HUP between two loop turns. */
    char *log = NULL;
    for (int i = 0; i < 500; i++) {
        free(log);
        log = fx_proc_log(&p);
        if (log && strstr(log, "got-hup"))
            break;
        usleep(10000);
    }
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_nonnull(strstr(log, "got-hup"));
    free(log);
    ck_assert_int_eq(fx_proc_stop(&p, 5000), 128 + SIGTERM);
    ck_assert_int_eq(fx_proc_signal(&p, SIGTERM), -ESRCH);
    fx_proc_done(&p);
}
END_TEST

START_TEST(proc_wait_http_fails_fast_when_process_exits)
{
    struct fx_proc p;
    const char *argv[] = { "/bin/sh", "-c", "echo dying; exit 7", NULL };
    int port = fixture_free_port();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
    ck_assert_int_eq(fx_proc_start(&p, "sh-dies", "/bin/sh", argv, NULL), 0);
    ck_assert_int_eq(fx_proc_wait_http(&p, url, 20000), -ECHILD);
    ck_assert_int_eq(fx_proc_wait_exit(&p, 1000), 7);
    fx_proc_done(&p);
}
END_TEST

START_TEST(proc_missing_program)
{
    struct fx_proc p;
    ck_assert_int_eq(fx_proc_start(&p, "missing", NULL, NULL, NULL), -ENOENT);
    fx_proc_done(&p);
    ck_assert_int_eq(fx_proc_start(&p, "nonexistent", "/nonexistent/program", NULL, NULL), 0);
    ck_assert_int_eq(fx_proc_wait_exit(&p, 10000), 127);
    fx_proc_done(&p);
}
END_TEST

START_TEST(pg_database_and_restart)
{
    struct fx_pg pg;
    ck_assert_int_eq(fx_pg_start(&pg), 0);
    ck_assert_int_gt(pg.port, 0);
    ck_assert_ptr_nonnull(strstr(pg.url, "/flashgate"));
    ck_assert_int_eq(fx_pg_exec(&pg, "CREATE TABLE fx_t (v text); INSERT INTO fx_t VALUES ('kept')"), 0);
    ck_assert_int_eq(fx_pg_exec(&pg, "SELECT * FROM no_such_table"), -EIO);
    ck_assert_int_eq(fx_pg_restart(&pg), 0);

    PGconn *c = PQconnectdb(pg.url);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SELECT v FROM fx_t");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "kept");
    PQclear(r);
    PQfinish(c);

    ck_assert_int_eq(fx_pg_stop(&pg), 0);
    ck_assert_int_eq(PQping(pg.url), PQPING_NO_RESPONSE);
    fx_pg_done(&pg);
}
END_TEST

START_TEST(gateway_starts_answers_and_stops)
{
    struct fx_redis rs;
    struct fx_proc gw;
    int port = 0;
    char url[96];
    struct fx_http_resp resp;
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    const char *env[] = { "LOG_LEVEL=debug", NULL };
    ck_assert_int_eq(fx_gateway_start(&gw, rs.url, env, &port), 0);
    ck_assert_int_gt(port, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
    ck_assert_int_eq(fx_http_get(url, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_ptr_nonnull(strstr(resp.body, "\"status\":\"OK\""));
    fx_http_resp_done(&resp);
    /* SIGTERM is a clean shutdown. */
    ck_assert_int_eq(fx_proc_stop(&gw, 0), 0);
    ck_assert_int_eq(fx_http_get(url, &resp), -ECONNREFUSED);
    fx_http_resp_done(&resp);
    fx_proc_done(&gw);
    fx_redis_done(&rs);
}
END_TEST

/* A small server: /ok answers JSON with a header, /echo echoes the method
 * and body, /stream sends one event and then stays open. */
struct echo_state {
    char *buf;
    size_t len;
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    static const char ev[] = "event: hello\ndata: {}\n\n";
    if (pos == 0 && max >= sizeof(ev) - 1) {
        memcpy(buf, ev, sizeof(ev) - 1);
        return (ssize_t)(sizeof(ev) - 1);
    }
    usleep(20000);      /* nothing more to say: keep the stream open */
    return 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version,
                               const char *upload, size_t *upload_size, void **ctx)
{
    (void)cls; (void)version;
    struct echo_state *st = *ctx;
    if (!st) {
        st = calloc(1, sizeof(*st));
        *ctx = st;
        return MHD_YES;
    }
    if (*upload_size) {
        st->buf = realloc(st->buf, st->len + *upload_size + 1);
        memcpy(st->buf + st->len, upload, *upload_size);
        st->len += *upload_size;
        st->buf[st->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned code = 200;
    if (strcmp(url, "/ok") == 0) {
        const char *body = "{\"status\":\"OK\"}";
        r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "X-Test", "yes");
    } else if (strcmp(url, "/echo") == 0) {
        char *body = NULL;
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        const char *xh = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Hello");
        if (asprintf(&body, "%s %s %s %s", method, ct ? ct : "-", xh ? xh : "-",
                     st->buf ? st->buf : "-") < 0)
            abort();
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        code = 201;
    } else if (strcmp(url, "/stream") == 0) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256, stream_reader, NULL, NULL);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
    } else {
        r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        code = 404;
    }
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
    (void)cls; (void)c; (void)t;
    struct echo_state *st = *ctx;
    if (st) {
        free(st->buf);
        free(st);
    }
}

static struct MHD_Daemon *server_start(int *ret_port)
{
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
        0, NULL, NULL, handler, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    ck_assert_ptr_nonnull(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    ck_assert_ptr_nonnull(info);
    *ret_port = info->port;
    return d;
}

START_TEST(http_status_headers_body)
{
    int port;
    struct MHD_Daemon *d = server_start(&port);
    char url[128];
    struct fx_http_resp resp;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
    ck_assert_int_eq(fx_http_get(url, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body, "{\"status\":\"OK\"}");
    ck_assert_str_eq(fx_http_header(&resp, "x-test"), "yes");
    ck_assert_str_eq(fx_http_header(&resp, "Content-Length"), "15");
    ck_assert_ptr_null(fx_http_header(&resp, "X-Absent"));
    fx_http_resp_done(&resp);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", port);
    const char *hdrs[] = { "X-Hello: world", NULL };
    ck_assert_int_eq(fx_http_post_json(url, "{\"a\":1}", hdrs, &resp), 0);
    ck_assert_int_eq(resp.status, 201);
    ck_assert_str_eq(resp.body, "POST application/json world {\"a\":1}");
    fx_http_resp_done(&resp);

    struct fx_http_req del = { .method = "DELETE", .url = url };
    ck_assert_int_eq(fx_http_do(&del, &resp), 0);
    ck_assert_str_eq(resp.body, "DELETE - - -");
    fx_http_resp_done(&resp);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/nothing", port);
    ck_assert_int_eq(fx_http_get(url, &resp), 0);
    ck_assert_int_eq(resp.status, 404);
    ck_assert_uint_eq(resp.body_len, 0);
    fx_http_resp_done(&resp);

    MHD_stop_daemon(d);
    /* Nobody listens now. */
    ck_assert_int_eq(fx_http_get(url, &resp), -ECONNREFUSED);
    ck_assert_int_eq(resp.status, 0);
    fx_http_resp_done(&resp);
}
END_TEST

START_TEST(http_stream_until_and_timeout)
{
    int port;
    struct MHD_Daemon *d = server_start(&port);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream", port);
    struct fx_http_resp resp;

    struct fx_http_req req = { .url = url, .until = "data: {}\n\n", .timeout_ms = 10000 };
    ck_assert_int_eq(fx_http_do(&req, &resp), 0);
    ck_assert(resp.until_found);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(fx_http_header(&resp, "Content-Type"), "text/event-stream");
    ck_assert_ptr_nonnull(strstr(resp.body, "event: hello"));
    fx_http_resp_done(&resp);

    /* Waiting for something that never comes ends at the timeout, with what did come. */
    struct fx_http_req never = { .url = url, .until = "event: never", .timeout_ms = 300 };
    ck_assert_int_eq(fx_http_do(&never, &resp), -ETIMEDOUT);
    ck_assert(!resp.until_found);
    ck_assert_ptr_nonnull(strstr(resp.body, "event: hello"));
    fx_http_resp_done(&resp);
    MHD_stop_daemon(d);
}
END_TEST

static Suite *fixture_suite(void)
{
    Suite *s = suite_create("fixture");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, free_port_is_bindable);
    tcase_add_test(tc, redis_answers_ping);
    tcase_add_test(tc, redis_appendonly_keeps_data_across_restart);
    tcase_add_test(tc, redis_without_appendonly_forgets);
    suite_add_tcase(s, tc);

    tc = tcase_create("postgresql");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pg_database_and_restart);
    suite_add_tcase(s, tc);

    tc = tcase_create("proc");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, proc_env_exit_status_and_log);
    tcase_add_test(tc, proc_signals_and_timeouts);
    tcase_add_test(tc, proc_wait_http_fails_fast_when_process_exits);
    tcase_add_test(tc, proc_missing_program);
    suite_add_tcase(s, tc);

    tc = tcase_create("programs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, gateway_starts_answers_and_stops);
    suite_add_tcase(s, tc);

    tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, http_status_headers_body);
    tcase_add_test(tc, http_stream_until_and_timeout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fixture_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
