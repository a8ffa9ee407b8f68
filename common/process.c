/*
 * process.c: see process.h.
 */
#include "common/process.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

void process_fail(const char *service, const char *what, const char *detail)
{
    log_error(what, LOG_STR("error", detail));
    fprintf(stderr, "flashgate-%s: %s: %s\n", service, what, detail);
}

int process_start(int argc, char **argv, const char *service, enum cfg_scope scope,
                  struct config *cfg, sigset_t *ret_sigs)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("flashgate-%s %s\n", service, FLASHGATE_VERSION);
        return 0;
    }
    sigemptyset(ret_sigs);
    sigaddset(ret_sigs, SIGTERM);
    sigaddset(ret_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, ret_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    if (config_load(cfg, scope, err, sizeof(err)) != 0) {
        log_init(service, "-", LOG_INFO);
        process_fail(service, "invalid configuration", err);
        return 2;
    }
    log_init(service, cfg->instance_id, (enum log_level)log_level_parse(cfg->log_level));
    config_log(cfg, scope);
    return -1;
}
