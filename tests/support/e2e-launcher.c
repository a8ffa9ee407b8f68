/*
 * browser-e2e launcher (the contract is tests/browser/README.md):
 *
 *   e2e-launcher <command> [args...]
 *
 * Starts a private redis-server, the real gateway (PUBLIC_DIR = the
 * repository's public/, a random ADMIN_TOKEN, ADMIN_ALLOW_CIDRS that does not
 * contain loopback, no AUTH_JWT_SECRET: insecure development mode) and the
 * real worker (AI_PROVIDER=offline), waits until both answer GET /ready, then
 * runs the command with FLASHGATE_BASE_URL and FLASHGATE_ADMIN_TOKEN added to
 * its environment.  The command's stdout (TAP) passes through untouched; our
 * own messages go to stderr.  Afterwards everything is stopped, and the exit
 * status is the command's, or 1 if the gateway or the worker died meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "common/ids.h"
#include "tests/support/fixture.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static int run_command(char **argv)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("e2e-launcher: fork");
        return 1;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "e2e-launcher: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno == EINTR) {
            if (stop_signal)   /* pass SIGTERM/SIGINT on to the command */
                kill(pid, stop_signal);
            continue;
        }
        perror("e2e-launcher: waitpid");
        return 1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int main(int argc, char **argv)
{
    struct fx_redis redis = { .pid = -1 };
    struct fx_proc gw = { .pid = -1 }, wk = { .pid = -1 };
    char token[ID_HEX_LEN], url[128], base[64];
    char *public_dir = NULL, *env_public = NULL, *env_token = NULL;
    int gw_port = 0, wk_port = 0, rc = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <command> [args...]\n", argv[0]);
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ids_new(token);
    public_dir = fixture_source_path("public");
    if (asprintf(&env_public, "PUBLIC_DIR=%s", public_dir) < 0 ||
        asprintf(&env_token, "ADMIN_TOKEN=%s", token) < 0)
        goto out;

    if (fx_redis_start(&redis, false) < 0)
        goto out;
    const char *gw_env[] = {
        env_public, env_token,
        "ADMIN_ALLOW_CIDRS=192.0.2.0/32",     /* not loopback: the wrong-token test gets 403 */
        "RATE_LIMIT_IP_PER_MIN=1000000",      /* the pages poll; limits have their own tests */
        "RATE_LIMIT_AI_PER_MIN=1000",
        NULL,
    };
    if (fx_gateway_start(&gw, redis.url, gw_env, &gw_port) < 0)
        goto out;
    const char *wk_env[] = { "AI_PROVIDER=offline", NULL };
    if (fx_worker_start(&wk, redis.url, wk_env, &wk_port) < 0)
        goto out;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", gw_port);
    if (fx_proc_wait_http(&gw, url, 0) < 0)
        goto out;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", wk_port);
    if (fx_proc_wait_http(&wk, url, 0) < 0)
        goto out;

    snprintf(base, sizeof(base), "http://127.0.0.1:%d", gw_port);
    if (setenv("FLASHGATE_BASE_URL", base, 1) < 0 || setenv("FLASHGATE_ADMIN_TOKEN", token, 1) < 0)
        goto out;
    fprintf(stderr, "e2e-launcher: gateway %s, worker health port %d; running %s\n",
            base, wk_port, argv[1]);
    rc = run_command(argv + 1);

    if (!fx_proc_running(&gw) || !fx_proc_running(&wk)) {
        fprintf(stderr, "e2e-launcher: %s died during the tests\n",
                !fx_proc_running(&gw) ? "the gateway" : "the worker");
        fx_proc_print_log(&gw);
        fx_proc_print_log(&wk);
        rc = rc ? rc : 1;
    }
out:
    /* fx_proc_stop prints a program's log when it does not exit 0. */
    if (wk.pid > 0 && fx_proc_stop(&wk, 0) != 0 && rc == 0)
        rc = 1;
    if (gw.pid > 0 && fx_proc_stop(&gw, 0) != 0 && rc == 0)
        rc = 1;
    if (rc == 0) {
        fx_proc_done(&wk);
        fx_proc_done(&gw);
        fx_redis_done(&redis);
    } else {
        /* Keep the logs for whoever reads the failure. */
        fx_redis_stop(&redis);
    }
    free(public_dir);
    free(env_public);
    free(env_token);
    return rc;
}
