/*
 * app.c: the gateway context and the route table.  The order of routes_*()
 * calls does not matter except that static files (the catch-all route) come last.
 */
#include "gateway/app.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/redisx.h"
#include "gateway/bus.h"
#include "gateway/cidr.h"
#include "gateway/hub.h"
#include "gateway/gateway.h"
#include "gateway/jobs.h"
#include "gateway/metrics.h"
#include "gateway/resilience.h"
#include "gateway/router.h"
#include "gateway/static.h"

int app_init(struct gw *gw, const struct config *cfg, char *err, size_t errlen)
{
    memset(gw, 0, sizeof(*gw));
    gw->cfg = cfg;
    gw->public_fd = -1;
    gw->started_ms = clock_now_ms();
    gw->pid = (int)getpid();
    snprintf(gw->instance_id, sizeof(gw->instance_id), "%s", cfg->instance_id);

    int rc = redisx_target_from_config(cfg, &gw->redis, err, errlen);
    if (rc)
        return rc;
    redisx_thread_setup(&gw->redis);

    char why[256];
    if (cidr_list_parse(cfg->admin_allow_cidrs, &gw->admin_cidrs, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "invalid value for ADMIN_ALLOW_CIDRS: %s", why);
        return -EINVAL;
    }

    gw->public_fd = static_open_root(cfg->public_dir);
    if (gw->public_fd < 0)
        log_warn("PUBLIC_DIR cannot be opened: static pages disabled",
                 LOG_STR("PUBLIC_DIR", cfg->public_dir), LOG_STR("error", strerror(-gw->public_fd)));

    if (!cfg->auth_jwt_secret)
        log_warn("AUTH_JWT_SECRET is unset: insecure development mode, identity comes from the "
                 "user-id header or the body's userId; never run this way in production");

    gw->router = router_new();
    if (!gw->router)
        return -ENOMEM;
    gw->hub = hub_new(gw);
    if (!gw->hub)
        return -ENOMEM;
    if (!metrics_new(gw))
        return -ENOMEM;
    jobs_setup(cfg);
    routes_health(gw->router);
    routes_jobs(gw->router);
    routes_events(gw->router);
    resilience_setup(gw);
    routes_resilience(gw->router);
    routes_metrics(gw->router);
    routes_static(gw->router);   /* last: catch-all */
    return 0;
}

void app_started(struct gw *gw)
{
    gw->bus = bus_start(gw, gw->hub);
    if (!gw->bus)
        log_error("cannot start the Redis subscriber thread: live events disabled");
    if (metrics_start(gw->metrics) != 0)
        log_error("cannot start the metrics flusher thread: this gateway's requests are not counted");
}

void app_drain(struct gw *gw)
{
    hub_drain(gw->hub);
}

void app_done(struct gw *gw)
{
    metrics_free(gw->metrics);   /* last flush; needs the hub */
    bus_stop(gw->bus);
    gw->bus = NULL;
    hub_free(gw->hub);
    gw->hub = NULL;
    router_free(gw->router);
    gw->router = NULL;
    if (gw->public_fd >= 0)
        close(gw->public_fd);
    gw->public_fd = -1;
}
