/*
 * Configuration from the environment.
 *
 * The one table is common/config_vars.h (name, default, kind/parser, range,
 * scope, doc).  config_load() reads every variable of the program's scope,
 * validates it and fills struct config; an invalid value is reported with the
 * variable's name and the program exits.  config_log() writes the effective
 * configuration as one JSON log line with SECRET values masked.
 *
 * Threads: load once in main() before any thread starts; afterwards the struct
 * is read-only and may be read from any thread.
 */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_kind { CFG_INT, CFG_STR, CFG_SECRET, CFG_BOOL, CFG_USD, CFG_LIST, CFG_ENUM };
enum cfg_scope { CFG_SCOPE_GW = 1, CFG_SCOPE_WK = 2, CFG_SCOPE_ALL = 3 };

#define CFG_T_INT    long long
#define CFG_T_STR    char *
#define CFG_T_SECRET char *
#define CFG_T_BOOL   bool
#define CFG_T_USD    long long
#define CFG_T_LIST   char *
#define CFG_T_ENUM   char *

struct config {
#define CFG(field, name, def, kind, lo, hi, choices, scope, doc) CFG_T_##kind field;
#include "config_vars.h"
#undef CFG
};

struct cfg_var {
    const char *name;
    const char *def;           /* "" = unset */
    enum cfg_kind kind;
    long long min, max;        /* INT and USD (micro-dollars) */
    const char *choices;       /* ENUM: "a|b|c" */
    enum cfg_scope scope;
    const char *doc;
    size_t offset;             /* into struct config */
};

extern const struct cfg_var cfg_vars[];
extern const size_t cfg_vars_count;

/*
 * Parse the environment (getenv) for every variable whose scope includes
 * `scope`; variables of other scopes get their defaults.  Derived defaults
 * (INSTANCE_ID, PUBLIC_DIR, HTTP_THREADS, AI_PROVIDER, ...) are filled in.
 * Returns 0, or -EINVAL with a message naming the variable in err.
 * Strings in *c are heap-owned by *c; release with config_done().
 * A variable set to the empty string counts as unset (its default applies).
 * Derived defaults and the cross-checks (AI_PROVIDER needs its keys,
 * ALERT_*_CRITICAL >= ALERT_*_HIGH, CB_MIN_CALLS <= CB_WINDOW_CALLS) apply
 * only to variables of `scope`.  On failure *c holds nothing to release.
 */
int config_load(struct config *c, enum cfg_scope scope, char *err, size_t errlen);

/* Same, reading values through a lookup function instead of getenv (tests). */
int config_load_from(struct config *c, enum cfg_scope scope,
                     const char *(*lookup)(const char *name, void *ud), void *ud,
                     char *err, size_t errlen);

void config_done(struct config *c);

/* Log the effective configuration (one JSON line, secrets masked as "***"). */
void config_log(const struct config *c, enum cfg_scope scope);

/* Write the Markdown table of docs/configuration.md (name, default, scope, doc). */
void config_write_markdown(FILE *out);

/* Parse "12.50" dollars into micro-dollars; 0 or -EINVAL. Exposed for tests. */
int config_parse_usd(const char *s, long long *ret_micro);

/* Format micro-dollars as decimal dollars without trailing zeros ("0.15", "100"). */
#define CONFIG_USD_LEN 32
void config_format_usd(long long micro, char out[CONFIG_USD_LEN]);

/* Iterate the items of a LIST value:
 *   const char *cur = c->cors_origins, *item; size_t n;
 *   while ((item = config_list_next(&cur, &n))) ... item[0..n) ...
 * Items are trimmed of blanks and not NUL-terminated; they point into the
 * list string.  A NULL or empty list yields nothing. */
const char *config_list_next(const char **cursor, size_t *ret_len);

/* The table entry of a variable by its NAME, or NULL. */
const struct cfg_var *config_find(const char *name);

#endif
