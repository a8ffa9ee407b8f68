/*
 * load-jobs: preload N jobs into the queue for bench/worker.sh, through
 * common/queue.h's queue_enqueue (the same atomic script the gateway runs
 * for POST /api/ai/generate-flashcards), so the worker can then be timed
 * alone from a full queue.
 *
 *   load-jobs N [THREADS] [TYPE]     TYPE: flashcards (default) or lesson
 *
 * Configuration as the programs read it (REDIS_URL, QUEUE_MAX_WAITING,
 * IDEMPOTENCY_TTL, ...).  Every job has its own user and document, so no
 * idempotency hit.  Each thread owns its Redis connection.  Prints
 * "loaded N jobs in T ms (R jobs/s)"; exits 1 if any enqueue failed or hit
 * an existing job.
 *
 * Built by bench/meson.build (target bench/load-jobs).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/job.h"
#include "common/queue.h"
#include "common/redisx.h"

#define LOAD_MAX_JOBS    10000000L
#define LOAD_MAX_THREADS 64

static struct config cfg;
static struct redis_target target;
static struct queue_limits lim;
static enum job_type type = JOB_TYPE_FLASHCARDS;
static long total;
static atomic_long next_job, failed, hits;
static long long run_id;

static void *loader(void *arg)
{
    (void)arg;
    struct redisx *rx = redisx_new(&target);
    struct queue *q = rx ? queue_new(rx, &lim) : NULL;
    if (!q) {
        fprintf(stderr, "load-jobs: cannot set up a queue\n");
        exit(1);
    }
    for (;;) {
        long i = atomic_fetch_add(&next_job, 1);
        if (i >= total)
            break;
        char content[512], user[64];
        snprintf(content, sizeof content,
                 "Die Katze schlaeft auf dem Sofa, waehrend der Hund im Garten mit dem roten Ball spielt. "
                 "Photosynthesis converts sunlight into chemical energy inside chloroplasts. (%lld-%ld)",
                 run_id, i);
        snprintf(user, sizeof user, "bench-user-%ld", i % 10000);
        struct job_params p = {
            .type = type,
            .content = content,
            .subject = "German",
            .topic = "Animals",
            .native_language = "English",
            .target_language = "German",
            .source_file_name = type == JOB_TYPE_LESSON ? "bench.txt" : NULL,
        };
        struct queue_enqueue_result res;
        memset(&res, 0, sizeof res);
        int rc = queue_enqueue(q, user, &p, NULL, &res);
        if (rc != 0) {
            if (atomic_fetch_add(&failed, 1) < 3)
                fprintf(stderr, "load-jobs: enqueue failed: %s (%s)\n", strerror(-rc), queue_last_error(q));
        } else if (res.existing) {
            atomic_fetch_add(&hits, 1);
        }
        queue_enqueue_result_done(&res);
    }
    queue_free(q);
    redisx_free(rx);
    return NULL;
}

int main(int argc, char **argv)
{
    char err[512];
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: load-jobs N [THREADS] [flashcards|lesson]\n");
        return 2;
    }
    total = strtol(argv[1], NULL, 10);
    long nthreads = argc > 2 ? strtol(argv[2], NULL, 10) : 4;
    if (total < 1 || total > LOAD_MAX_JOBS || nthreads < 1 || nthreads > LOAD_MAX_THREADS) {
        fprintf(stderr, "load-jobs: N must be 1..%ld and THREADS 1..%d\n", LOAD_MAX_JOBS, LOAD_MAX_THREADS);
        return 2;
    }
    if (argc > 3 && strcmp(argv[3], "lesson") == 0)
        type = JOB_TYPE_LESSON;
    else if (argc > 3 && strcmp(argv[3], "flashcards") != 0) {
        fprintf(stderr, "load-jobs: TYPE must be flashcards or lesson\n");
        return 2;
    }
    if (config_load(&cfg, CFG_SCOPE_ALL, err, sizeof err) != 0 ||
        redisx_target_from_config(&cfg, &target, err, sizeof err) != 0) {
        fprintf(stderr, "load-jobs: %s\n", err);
        return 2;
    }
    queue_limits_from_config(&cfg, &lim);
    run_id = clock_now_us();

    pthread_t th[LOAD_MAX_THREADS];
    int64_t t0 = clock_mono_ms();
    for (long i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, loader, NULL) != 0) {
            fprintf(stderr, "load-jobs: pthread_create failed\n");
            return 1;
        }
    for (long i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    int64_t ms = clock_mono_ms() - t0;
    long bad = atomic_load(&failed), dup = atomic_load(&hits);
    printf("loaded %ld jobs in %lld ms (%.0f jobs/s)%s\n", total - bad - dup, (long long)ms,
           ms > 0 ? (double)(total - bad - dup) * 1000.0 / (double)ms : 0.0,
           bad || dup ? " with errors" : "");
    if (bad || dup)
        fprintf(stderr, "load-jobs: %ld failed, %ld idempotency hits\n", bad, dup);
    config_done(&cfg);
    return bad || dup ? 1 : 0;
}
