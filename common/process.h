/*
 * Process start-up shared by both programs: the signal mask (SIGTERM and
 * SIGINT blocked in main and, by inheritance, every thread started later, so
 * main takes them with sigwaitinfo/sigtimedwait and no handler ever runs
 * inside library code; SIGPIPE ignored), the configuration for the
 * program's scope, and logging.  Call first thing in main.
 */
#ifndef COMMON_PROCESS_H
#define COMMON_PROCESS_H

#include <signal.h>

#include "common/config.h"

/*
 * Handles --version, sets up signals, loads and logs the configuration.
 * Returns -1 to continue (*cfg loaded, *ret_sigs holds the signals to wait
 * for), or an exit status: 0 after --version, 2 after an invalid
 * configuration (already reported, naming the variable).
 */
int process_start(int argc, char **argv, const char *service, enum cfg_scope scope,
                  struct config *cfg, sigset_t *ret_sigs);

/* Report a start-up failure on stderr and in the log (one place for both). */
void process_fail(const char *service, const char *what, const char *detail);

#endif
