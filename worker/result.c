/*
 * Result objects and outcome helpers shared by reply.c and provider_offline.c.
 *
 * Field order in the objects is fixed (json-c keeps insertion order), so a
 * result serializes byte-identically for the same input: the offline
 * provider's determinism depends on that.
 */
#include "worker/result.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "worker/text.h"

void outcome_reset(struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->kind = OUTCOME_OK;
    o->retry_after_ms = -1;
}

void outcome_done(struct outcome *o)
{
    if (!o)
        return;
    free(o->result_json);
    outcome_reset(o);
}

const char *outcome_kind_name(enum outcome_kind k)
{
    switch (k) {
    case OUTCOME_OK:           return "ok";
    case OUTCOME_TRANSIENT:    return "transient";
    case OUTCOME_RATE_LIMITED: return "rate_limited";
    case OUTCOME_PERMANENT:    return "permanent";
    case OUTCOME_QUOTA:        return "quota";
    }
    return "unknown";
}

void outcome_fail(struct outcome *o, enum outcome_kind kind, const char *code, const char *fmt, ...)
{
    va_list ap;

    free(o->result_json);
    o->result_json = NULL;
    o->kind = kind;
    snprintf(o->error_code, sizeof(o->error_code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof(o->error), fmt, ap);
    va_end(ap);
    /* vsnprintf may cut inside a multibyte character: drop an incomplete tail. */
    size_t n = strlen(o->error), i = n;
    while (i > 0 && ((unsigned char)o->error[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0) {
        unsigned char c = (unsigned char)o->error[i - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < need)
            o->error[i - 1] = '\0';
    }
}

void outcome_set_result(struct outcome *o, struct json_object *result)
{
    const char *s;

    if (!result)
        goto oom;
    s = json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s)
        goto oom;
    free(o->result_json);
    o->result_json = strdup(s);
    json_object_put(result);
    if (!o->result_json)
        goto oom2;
    o->kind = OUTCOME_OK;
    o->error_code[0] = '\0';
    o->error[0] = '\0';
    return;
oom:
    json_object_put(result);
oom2:
    outcome_fail(o, OUTCOME_TRANSIENT, "OUT_OF_MEMORY", "The worker ran out of memory while building the result.");
}

int result_add_str(struct json_object *obj, const char *key, const char *s, size_t len, size_t cap)
{
    char *c = text_clean_dup(s, s ? len : 0, cap);
    struct json_object *v;

    if (!c)
        return -ENOMEM;
    v = json_object_new_string(c);
    free(c);
    if (!v)
        return -ENOMEM;
    if (json_object_object_add(obj, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

int result_add_cstr(struct json_object *obj, const char *key, const char *s, size_t cap)
{
    return result_add_str(obj, key, s, s ? strlen(s) : 0, cap);
}

static int add_owned(struct json_object *obj, const char *key, struct json_object *v)
{
    if (!v)
        return -ENOMEM;
    if (json_object_object_add(obj, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

struct json_object *result_card(const char *front, const char *back, const char *topic,
                                const char *difficulty, const char *example,
                                const char *pronunciation)
{
    struct json_object *c = json_object_new_object();
    int r = 0;

    if (!c)
        return NULL;
    r |= result_add_cstr(c, "front", front, RESULT_MAX_TEXT_BYTES);
    r |= result_add_cstr(c, "back", back, RESULT_MAX_TEXT_BYTES);
    r |= result_add_cstr(c, "topic", topic, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(c, "difficulty", difficulty, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(c, "example", example, RESULT_MAX_TEXT_BYTES);
    if (pronunciation && *pronunciation)
        r |= result_add_cstr(c, "pronunciation", pronunciation, RESULT_MAX_LABEL_BYTES);
    if (r) {
        json_object_put(c);
        return NULL;
    }
    return c;
}

struct json_object *result_vocab(const char *target_term, const char *definition,
                                 const char *native_translation, const char *example_target,
                                 const char *example_native)
{
    struct json_object *v = json_object_new_object();
    int r = 0;

    if (!v)
        return NULL;
    r |= result_add_cstr(v, "target_term", target_term, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(v, "definition", definition, RESULT_MAX_TEXT_BYTES);
    r |= result_add_cstr(v, "native_translation", native_translation, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(v, "example_sentence_target", example_target, RESULT_MAX_TEXT_BYTES);
    r |= result_add_cstr(v, "example_sentence_native", example_native, RESULT_MAX_TEXT_BYTES);
    if (r) {
        json_object_put(v);
        return NULL;
    }
    return v;
}

struct json_object *result_line(const char *speaker, const char *message)
{
    struct json_object *l = json_object_new_object();
    int r = 0;

    if (!l)
        return NULL;
    r |= result_add_cstr(l, "speaker", speaker, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(l, "message", message, RESULT_MAX_TEXT_BYTES);
    if (r) {
        json_object_put(l);
        return NULL;
    }
    return l;
}

struct json_object *result_lesson(const char *title, const char *subject, const char *topic_name,
                                  struct json_object *vocabulary, struct json_object *conversation)
{
    struct json_object *l = json_object_new_object();
    int r = 0;

    if (!l) {
        json_object_put(vocabulary);
        json_object_put(conversation);
        return NULL;
    }
    r |= result_add_cstr(l, "title", title, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(l, "subject", subject, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(l, "topicName", topic_name, RESULT_MAX_LABEL_BYTES);
    r |= add_owned(l, "vocabulary", vocabulary);
    r |= add_owned(l, "conversation", conversation);
    if (r) {
        json_object_put(l);
        return NULL;
    }
    return l;
}

struct json_object *result_new(const char *items_key, struct json_object *items,
                               long token_usage, const char *provider, const char *model)
{
    struct json_object *o = json_object_new_object();
    int r = 0;

    if (!o) {
        json_object_put(items);
        return NULL;
    }
    r |= add_owned(o, "success", json_object_new_boolean(1));
    r |= add_owned(o, items_key, items);
    r |= add_owned(o, "tokenUsage", json_object_new_int64(token_usage < 0 ? 0 : token_usage));
    r |= result_add_cstr(o, "provider", provider, RESULT_MAX_LABEL_BYTES);
    r |= result_add_cstr(o, "model", model, RESULT_MAX_LABEL_BYTES);
    if (r) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

const char *result_difficulty(const char *s)
{
    static const struct { const char *word; const char *level; } map[] = {
        { "beginner", "beginner" }, { "easy", "beginner" }, { "basic", "beginner" },
        { "elementary", "beginner" }, { "novice", "beginner" }, { "a1", "beginner" },
        { "a2", "beginner" },
        { "intermediate", "intermediate" }, { "medium", "intermediate" },
        { "moderate", "intermediate" }, { "b1", "intermediate" }, { "b2", "intermediate" },
        { "expert", "expert" }, { "advanced", "expert" }, { "hard", "expert" },
        { "difficult", "expert" }, { "c1", "expert" }, { "c2", "expert" },
    };
    size_t n;

    if (!s)
        return "intermediate";
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].word) == n && strncasecmp(s, map[i].word, n) == 0)
            return map[i].level;
    return "intermediate";
}
