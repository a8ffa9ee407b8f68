/*
 * bus.c: see bus.h.  The subscribed hiredis context is read without
 * blocking the thread forever: poll() on its socket and on an eventfd that
 * bus_stop() signals, then redisBufferRead + redisGetReplyFromReader.  A PING
 * (answered ["pong",""] in subscribed mode) goes out after PING_IDLE_MS of
 * silence; no answer within PING_TIMEOUT_MS means the connection is dead.
 */
#include "gateway/bus.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/job.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "gateway/gateway.h"
#include "gateway/hub.h"

#define PING_IDLE_MS 5000
#define PING_TIMEOUT_MS 5000
#define PATTERN QUEUE_CHANNEL_JOB_PREFIX "*"

struct bus {
    struct gw *gw;
    struct hub *hub;
    pthread_t thread;
    int stop_fd;                   /* eventfd */
    atomic_bool stop;
    atomic_bool connected;
    atomic_llong messages;
};

static void handle(struct bus *b, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "pmessage") == 0 && r->elements == 4 && r->element[3]->type == REDIS_REPLY_STRING) {
        struct job_event e;
        if (job_event_decode(r->element[3]->str, r->element[3]->len, &e) == 0) {
            atomic_fetch_add(&b->messages, 1);
            hub_publish(b->hub, &e);
            job_event_done(&e);
        }
    }
}

/* Read and dispatch until the connection fails or stop.  Returns when it must reconnect. */
static void pump(struct bus *b, struct redisx *rx)
{
    redisContext *c = redisx_context(rx);
    if (!c)
        return;
    int64_t last_rx = clock_mono_ms(), ping_sent = 0;
    while (!atomic_load(&b->stop)) {
        struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = b->stop_fd, .events = POLLIN } };
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR)
            break;
        int64_t now = clock_mono_ms();
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (redisBufferRead(c) != REDIS_OK)
                break;
            void *reply;
            int rc;
            while ((rc = redisGetReplyFromReader(c, &reply)) == REDIS_OK && reply) {
                handle(b, reply);
                freeReplyObject(reply);
            }
            if (rc != REDIS_OK)
                break;
            last_rx = now;
            ping_sent = 0;
        }
        if (!ping_sent && now - last_rx > PING_IDLE_MS) {
            int done = 0;
            if (redisAppendCommand(c, "PING") != REDIS_OK || redisBufferWrite(c, &done) != REDIS_OK)
                break;
            ping_sent = now;
        } else if (ping_sent && now - ping_sent > PING_TIMEOUT_MS) {
            log_warn("redis subscriber: no answer to PING, reconnecting");
            break;
        }
    }
}

static void *bus_main(void *arg)
{
    struct bus *b = arg;
    struct redisx *rx = redisx_new(&b->gw->redis);
    while (!atomic_load(&b->stop)) {
        redisReply *r = redisx_command(rx, "PSUBSCRIBE %s", PATTERN);
        bool ok = r && r->type == REDIS_REPLY_ARRAY;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisx_reset(rx);
            struct pollfd p = { .fd = b->stop_fd, .events = POLLIN };
            poll(&p, 1, 200);      /* redisx spaces the attempts (backoff) */
            continue;
        }
        atomic_store(&b->connected, true);
        log_info("redis subscriber ready", LOG_STR("pattern", PATTERN));
        hub_gap(b->hub);           /* anything published while we were away: replay */
        pump(b, rx);
        atomic_store(&b->connected, false);
        redisx_reset(rx);
    }
    redisx_free(rx);
    return NULL;
}

struct bus *bus_start(struct gw *gw, struct hub *hub)
{
    struct bus *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->gw = gw;
    b->hub = hub;
    b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->stop_fd < 0 || pthread_create(&b->thread, NULL, bus_main, b) != 0) {
        if (b->stop_fd >= 0)
            close(b->stop_fd);
        free(b);
        return NULL;
    }
    return b;
}

void bus_stop(struct bus *b)
{
    if (!b)
        return;
    atomic_store(&b->stop, true);
    uint64_t one = 1;
    if (write(b->stop_fd, &one, sizeof(one)) < 0)
        log_warn("bus: cannot signal stop");
    pthread_join(b->thread, NULL);
    close(b->stop_fd);
    free(b);
}

bool bus_connected(const struct bus *b)
{
    return b && atomic_load(&b->connected);
}

long long bus_messages(const struct bus *b)
{
    return b ? atomic_load(&b->messages) : 0;
}
