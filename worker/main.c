/*
 * flashgate-worker: wires configuration, logging, the health server and the
 * job engine, then waits for a signal and runs the drain:
 *   SIGTERM/SIGINT -> stop claiming (/ready 503), let in-flight jobs finish
 *                     within WORKER_DRAIN_SECONDS, hand the rest back to
 *                     waiting at once (no lease wait), exit 0
 *   second signal  -> hand back what is in flight and exit at once
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"
#include "common/redisx.h"
#include "worker/engine.h"
#include "worker/health.h"
#include "worker/worker.h"

int main(int argc, char **argv)
{
    struct config cfg;
    sigset_t sigs;
    int status = process_start(argc, argv, "worker", CFG_SCOPE_WK, &cfg, &sigs);
    if (status >= 0)
        return status;
    char err[512];
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        config_done(&cfg);
        return 1;
    }

    struct worker w;
    memset(&w, 0, sizeof(w));
    w.cfg = &cfg;
    w.started_ms = clock_now_ms();
    snprintf(w.instance_id, sizeof(w.instance_id), "%s", cfg.instance_id);
    if (redisx_target_from_config(&cfg, &w.redis, err, sizeof(err)) != 0) {
        process_fail("worker", "invalid configuration", err);
        curl_global_cleanup();
        config_done(&cfg);
        return 2;
    }
    redisx_thread_setup(&w.redis);
    if (strcmp(cfg.ai_provider, "offline") == 0)
        log_info("provider: offline (no network, extractive cards from the text itself)");

    struct health_server *hs = NULL;
    if (health_start(&w, &hs) != 0) {
        snprintf(err, sizeof(err), "cannot listen on WORKER_HEALTH_PORT=%lld", cfg.worker_health_port);
        process_fail("worker", "cannot start the health server", err);
        curl_global_cleanup();
        config_done(&cfg);
        return 1;
    }
    struct engine *eng = NULL;
    if (engine_start(&w, &eng, err, sizeof(err)) != 0) {
        process_fail("worker", "cannot start the job engine", err);
        health_stop(hs);
        curl_global_cleanup();
        config_done(&cfg);
        return 1;
    }
    log_info("worker started", LOG_STR("provider", cfg.ai_provider),
             LOG_INT("concurrency", cfg.queue_concurrency), LOG_INT("health_port", cfg.worker_health_port));

    int sig;
    do
        sig = sigwaitinfo(&sigs, NULL);
    while (sig < 0 && errno == EINTR);

    log_info("shutdown: draining", LOG_STR("signal", strsignal(sig)),
             LOG_INT("inflight", engine_inflight(eng)), LOG_INT("drain_seconds", cfg.worker_drain_seconds));
    atomic_store(&w.stopping, true);
    engine_stop_claiming(eng);

    int64_t deadline = clock_mono_ms() + cfg.worker_drain_seconds * 1000;
    const struct timespec tick = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };
    bool forced = false;
    while (engine_inflight(eng) > 0 && clock_mono_ms() < deadline) {
        if (sigtimedwait(&sigs, NULL, &tick) > 0) {
            log_warn("second signal: handing back in-flight jobs now");
            forced = true;
            break;
        }
    }
    long handed = engine_release_all(eng);
    if (handed > 0)
        log_warn("drain: jobs handed back to waiting", LOG_INT("count", handed), LOG_BOOL("forced", forced));
    engine_free(eng);
    health_stop(hs);
    curl_global_cleanup();
    log_info("shutdown complete");
    config_done(&cfg);
    return forced ? 1 : 0;
}
