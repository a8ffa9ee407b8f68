/*
 * flashgate-gateway: wires the configuration, logging, Redis, the router and
 * the HTTP daemon, then waits for a signal and runs the shutdown order:
 *   SIGTERM/SIGINT  -> draining (/ready 503), stop accepting, end streams,
 *                      let in-flight requests finish within SHUTDOWN_GRACE_MS,
 *                      stop the daemon, exit 0
 *   second signal   -> exit at once (status 1)
 * Signals are blocked in every thread (the mask is inherited) and taken here
 * with sigtimedwait, so no handler runs inside library code.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"
#include "common/redisx.h"
#include "gateway/app.h"
#include "gateway/gateway.h"
#include "gateway/router.h"
#include "gateway/server.h"

#define FD_RESERVE 64    /* descriptors kept for Redis, PostgreSQL, the listen socket, epoll, files */

static unsigned raise_nofile(unsigned wanted)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return wanted;
    rlim_t need = (rlim_t)wanted + FD_RESERVE;
    rlim_t target = rl.rlim_max == RLIM_INFINITY ? need : (need < rl.rlim_max ? need : rl.rlim_max);
    if (target > rl.rlim_cur) {
        rl.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        unsigned clamped = rl.rlim_cur > FD_RESERVE + 16 ? (unsigned)(rl.rlim_cur - FD_RESERVE) : 16;
        log_warn("connection limit clamped to the open-file limit",
                 LOG_INT("HTTP_MAX_CONNECTIONS", wanted), LOG_INT("effective", clamped),
                 LOG_INT("RLIMIT_NOFILE", (long long)rl.rlim_cur));
        return clamped;
    }
    return wanted;
}

int main(int argc, char **argv)
{
    struct config cfg;
    sigset_t sigs;
    int status = process_start(argc, argv, "gateway", CFG_SCOPE_GW, &cfg, &sigs);
    if (status >= 0)
        return status;
    char err[512];

    struct gw gw;
    int rc = app_init(&gw, &cfg, err, sizeof(err));
    if (rc != 0) {
        process_fail("gateway", "start-up failed", err);
        app_done(&gw);
        config_done(&cfg);
        return 2;
    }
    unsigned max_conn = raise_nofile((unsigned)cfg.http_max_connections);
    struct server *srv = NULL;
    rc = server_start(&gw, max_conn, &srv, err, sizeof(err));
    if (rc != 0) {
        process_fail("gateway", "cannot start the HTTP server", err);
        app_done(&gw);
        config_done(&cfg);
        return 1;
    }
    app_started(&gw);
    log_info("listening", LOG_INT("port", server_port(srv)), LOG_STR("address", cfg.listen_address),
             LOG_INT("threads", cfg.http_threads), LOG_INT("max_connections", max_conn),
             LOG_STR("auth", cfg.auth_jwt_secret ? "jwt" : "insecure-dev"));

    int sig;
    do
        sig = sigwaitinfo(&sigs, NULL);
    while (sig < 0 && errno == EINTR);

    log_info("shutdown: draining", LOG_STR("signal", strsignal(sig)),
             LOG_INT("grace_ms", cfg.shutdown_grace_ms));
    atomic_store(&gw.draining, true);
    server_quiesce(srv);
    app_drain(&gw);

    int64_t deadline = clock_mono_ms() + cfg.shutdown_grace_ms;
    const struct timespec tick = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };
    while (atomic_load(&gw.inflight) > 0 && clock_mono_ms() < deadline) {
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig > 0) {
            log_warn("second signal: exiting now", LOG_INT("inflight", atomic_load(&gw.inflight)));
            _exit(1);
        }
    }
    long left = atomic_load(&gw.inflight);
    if (left > 0)
        log_warn("shutdown grace expired", LOG_INT("inflight", left));
    server_stop(srv);
    app_done(&gw);
    log_info("shutdown complete");
    config_done(&cfg);
    return 0;
}
