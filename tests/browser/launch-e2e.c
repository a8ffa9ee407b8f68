/*
 * launch-e2e: the browser-e2e launcher (contract: tests/browser/README.md).
 *
 *   launch-e2e <command> [args...]
 *
 * Starts a private redis-server, the real gateway (PUBLIC_DIR = the
 * repository's public/, a random ADMIN_TOKEN, ADMIN_ALLOW_CIDRS outside
 * loopback so the token is what grants admin access, AUTH_JWT_SECRET unset:
 * insecure development mode) and one worker (AI_PROVIDER=offline), all on
 * free loopback ports through tests/support/fixture.h; waits until both
 * answer GET /ready (polling with a deadline); runs the command with
 * FLASHGATE_BASE_URL and FLASHGATE_ADMIN_TOKEN added to its environment
 * (FLASHGATE_SCREENSHOT_DIR is passed through as meson set it); stops
 * everything and exits with the command's status.
 *
 * The command's stdout is the launcher's stdout, untouched (TAP for meson);
 * everything the launcher and the fixtures say goes to stderr.  The exit
 * status is non-zero also when the gateway or the worker died before the
 * command ended, did not exit cleanly on SIGTERM, or logged a sanitizer
 * report (their logs are printed then).  SIGTERM/SIGINT to the launcher
 * (meson's timeout) is passed to the command, then everything is stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/fixture.h"

#define READY_TIMEOUT_MS 60000

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    fputs("launch-e2e: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static bool log_clean(const struct fx_proc *p)
{
    char *log = fx_proc_log(p);
    bool bad = log && (strstr(log, "AddressSanitizer") || strstr(log, "LeakSanitizer") ||
                       strstr(log, "runtime error:") || strstr(log, "ThreadSanitizer"));
    free(log);
    return !bad;
}

/* Stop p; false (and its log printed) if it had died, exited non-zero or logged a sanitizer report. */
static bool stop_checked(struct fx_proc *p)
{
    if (p->pid < 0 && !p->exited)
        return true;                      /* never started */
    bool ok = true;
    if (!fx_proc_running(p)) {
        say("%s died before the tests ended", p->name);
        fx_proc_print_log(p);
        ok = false;
    } else if (fx_proc_stop(p, 0) != 0) {
        say("%s did not exit cleanly on SIGTERM", p->name);
        ok = false;                       /* fx_proc_stop printed the log */
    } else if (!log_clean(p)) {
        say("%s logged a sanitizer report", p->name);
        fx_proc_print_log(p);
        ok = false;
    }
    fx_proc_done(p);
    return ok;
}

static int run_command(char **argv, const char *base_url, const char *admin_token)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch-e2e: fork");
        return 1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        setenv("FLASHGATE_BASE_URL", base_url, 1);
        setenv("FLASHGATE_ADMIN_TOKEN", admin_token, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "launch-e2e: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    bool forwarded = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            perror("launch-e2e: waitpid");
            return 1;
        }
        if (got_signal && !forwarded) {
            say("%s: stopping the tests", strsignal(got_signal));
            kill(pid, SIGTERM);
            forwarded = true;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <command> [args...]\n", argv[0]);
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART: waitpid returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct fx_redis rs = { .pid = -1 };
    struct fx_proc gw = { .pid = -1 }, wk = { .pid = -1 };
    char *public_dir = fixture_source_path("public");
    char token[33], token_kv[64], public_kv[4096], base[64], ready[96];
    unsigned char rnd[16];
    int rc = 1, gwport = 0, wkport = 0;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        perror("launch-e2e: getrandom");
        goto out;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    snprintf(token_kv, sizeof(token_kv), "ADMIN_TOKEN=%s", token);
    snprintf(public_kv, sizeof(public_kv), "PUBLIC_DIR=%s", public_dir ? public_dir : "public");

    if (fx_redis_start(&rs, false) != 0) {
        say("%s", "redis-server did not start");
        goto out;
    }
    const char *gw_env[] = {
        public_kv, token_kv,
        "ADMIN_ALLOW_CIDRS=192.0.2.0/32",  /* not loopback: the token decides (wrong-token test) */
        "INSTANCE_ID=browser-e2e", "LOG_LEVEL=info", NULL,
    };
    if (fx_gateway_start(&gw, rs.url, gw_env, &gwport) != 0) {
        say("%s", "the gateway did not start");
        goto out;
    }
    const char *wk_env[] = { "AI_PROVIDER=offline", "INSTANCE_ID=browser-e2e-worker", "LOG_LEVEL=info", NULL };
    if (fx_worker_start(&wk, rs.url, wk_env, &wkport) != 0) {
        say("%s", "the worker did not start");
        goto out;
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", gwport);
    snprintf(ready, sizeof(ready), "%s/ready", base);
    if (fx_proc_wait_http(&gw, ready, READY_TIMEOUT_MS) != 0) {
        say("%s", "the gateway is not ready");
        goto out;
    }
    snprintf(ready, sizeof(ready), "http://127.0.0.1:%d/ready", wkport);
    if (fx_proc_wait_http(&wk, ready, READY_TIMEOUT_MS) != 0) {
        say("%s", "the worker is not ready");
        goto out;
    }
    say("gateway at %s, worker ready; running the tests", base);
    rc = run_command(argv + 1, base, token);

out:
    if (!stop_checked(&wk) && rc == 0)
        rc = 1;
    if (!stop_checked(&gw) && rc == 0)
        rc = 1;
    fx_redis_done(&rs);
    free(public_dir);
    return rc;
}
