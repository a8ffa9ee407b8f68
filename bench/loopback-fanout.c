/*
 * loopback-fanout: the machine's floor for bench/sse.sh scenario (a).  N
 * TCP connections over loopback; S sender threads write one 300-byte message
 * to each server-side socket (non-blocking send(), nothing else: no HTTP,
 * no locks, no queues), R receiver threads read them with epoll, as
 * sse-bench does.  Prints, per round, when the sends were done and when the
 * last message was read: what any server pays to put one event on N sockets
 * here, since on loopback the sender's send() also runs the receiver's TCP
 * input and wakeup.
 *
 *   loopback-fanout [N [SENDERS [RECEIVERS [ROUNDS]]]]   (9000 2 2 6)
 *
 * N is capped by RLIMIT_NOFILE (two descriptors per connection); raise it
 * with `ulimit -n` first.  Built by bench/meson.build.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16
#define MSG_BYTES 300

static int nconn, *srv;
static atomic_long got;
static char msg[MSG_BYTES];
static int ep[MAX_THREADS];

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void *receiver(void *arg)
{
    int e = ep[(long)arg];
    struct epoll_event ev[256];
    char buf[4096];
    for (;;) {
        int n = epoll_wait(e, ev, 256, -1);
        for (int k = 0; k < n; k++)
            if (recv(ev[k].data.fd, buf, sizeof(buf), 0) > 0)
                atomic_fetch_add(&got, 1);
    }
    return NULL;
}

struct range {
    int from, to;
};

static void *sender(void *arg)
{
    const struct range *r = arg;
    for (int i = r->from; i < r->to; i++)
        if (send(srv[i], msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
            fprintf(stderr, "loopback-fanout: short send on %d\n", i);
    return NULL;
}

static int arg_int(int argc, char **argv, int i, int def, int lo, int hi)
{
    int v = argc > i ? atoi(argv[i]) : def;
    if (v < lo || v > hi) {
        fprintf(stderr, "loopback-fanout: argument %d must be %d..%d\n", i, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    nconn = arg_int(argc, argv, 1, 9000, 1, 1000000);
    int ns = arg_int(argc, argv, 2, 2, 1, MAX_THREADS);
    int nr = arg_int(argc, argv, 3, 2, 1, MAX_THREADS);
    int rounds = arg_int(argc, argv, 4, 6, 1, 1000);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)nconn * 2 + 16 > rl.rlim_cur) {
        fprintf(stderr, "loopback-fanout: %d connections need %d descriptors (RLIMIT_NOFILE %llu)\n", nconn,
                nconn * 2 + 16, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    memset(msg, 'x', sizeof(msg));
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4096) ||
        getsockname(l, (struct sockaddr *)&sa, &sl)) {
        perror("loopback-fanout: listen");
        return 1;
    }
    srv = calloc((size_t)nconn, sizeof(*srv));
    if (!srv)
        return 1;
    for (int i = 0; i < nr; i++)
        ep[i] = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) || (srv[i] = accept(l, NULL, NULL)) < 0) {
            perror("loopback-fanout: connect");
            return 1;
        }
        struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
        epoll_ctl(ep[i % nr], EPOLL_CTL_ADD, c, &e);
    }
    pthread_t t;
    for (long i = 0; i < nr; i++)
        if (pthread_create(&t, NULL, receiver, (void *)i) != 0)
            return 1;
    printf("loopback-fanout: %d connections, %d sender(s), %d receiver(s), %d-byte messages\n", nconn, ns, nr,
           MSG_BYTES);
    for (int round = 0; round < rounds; round++) {
        usleep(300000);                    /* let delayed ACKs of the last round go out */
        long base = atomic_load(&got);
        double t0 = now_ms();
        pthread_t th[MAX_THREADS];
        struct range rg[MAX_THREADS];
        for (int i = 0; i < ns; i++) {
            rg[i] = (struct range){ (int)((long)nconn * i / ns), (int)((long)nconn * (i + 1) / ns) };
            if (pthread_create(&th[i], NULL, sender, &rg[i]) != 0)
                return 1;
        }
        for (int i = 0; i < ns; i++)
            pthread_join(th[i], NULL);
        double sent = now_ms() - t0;
        double all;
        while (atomic_load(&got) - base < nconn) {           /* 50 us steps: no spinning CPU */
            struct timespec step = { 0, 50000 };
            nanosleep(&step, NULL);
        }
        all = now_ms() - t0;
        printf("round %d: sends done %.1f ms, last message read %.1f ms (%.2f us per message)\n", round, sent,
               all, all * 1000 / nconn);
    }
    return 0;
}
