/*
 * JSON-lines logging.  One object per line on stderr:
 *   {"ts":"2026-11-22T10:00:00.000Z","level":"info","msg":"...","request_id":"...",...}
 * Fields come as typed key/value pairs; strings are JSON-escaped, so user data
 * can never break a line.  Each line is written with one write(2), so lines
 * from concurrent threads never interleave.  Any thread may log.
 *
 *   log_info("job claimed", LOG_STR("job_id", id), LOG_INT("attempt", n));
 *
 * Secrets never go into logs: callers pass masked values.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_kv_type { LOG_T_END = 0, LOG_T_STR, LOG_T_INT, LOG_T_DBL, LOG_T_BOOL, LOG_T_RAW, LOG_T_SKIP };

struct log_kv {
    const char *key;
    enum log_kv_type type;
    union {
        const char *s;   /* STR (NULL prints null), RAW (already valid JSON) */
        long long i;
        double d;
        bool b;
    } v;
};

#define LOG_STR(k, x)  ((struct log_kv){ .key = (k), .type = LOG_T_STR,  .v.s = (x) })
#define LOG_INT(k, x)  ((struct log_kv){ .key = (k), .type = LOG_T_INT,  .v.i = (long long)(x) })
#define LOG_DBL(k, x)  ((struct log_kv){ .key = (k), .type = LOG_T_DBL,  .v.d = (double)(x) })
#define LOG_BOOL(k, x) ((struct log_kv){ .key = (k), .type = LOG_T_BOOL, .v.b = (x) })
#define LOG_RAW(k, x)  ((struct log_kv){ .key = (k), .type = LOG_T_RAW,  .v.s = (x) })

/* Process-wide settings; call once from main before threads start. */
void log_init(const char *service, const char *instance, enum log_level min);
/* Parse "debug|info|warn|error"; returns -1 if unknown. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level lvl);

/* kv is terminated by an entry with type LOG_T_END. */
void log_write(enum log_level lvl, const char *msg, const struct log_kv *kv);

/* kv[0] may be LOG_T_SKIP (the macros below start with one). */
#define LOG_AT_(lvl, msg, ...) \
    log_write((lvl), (msg), (const struct log_kv[]){ { .type = LOG_T_SKIP }, ##__VA_ARGS__, { .type = LOG_T_END } })
#define log_debug(msg, ...) LOG_AT_(LOG_DEBUG, msg, ##__VA_ARGS__)
#define log_info(msg, ...)  LOG_AT_(LOG_INFO,  msg, ##__VA_ARGS__)
#define log_warn(msg, ...)  LOG_AT_(LOG_WARN,  msg, ##__VA_ARGS__)
#define log_error(msg, ...) LOG_AT_(LOG_ERROR, msg, ##__VA_ARGS__)

#endif
