/*
 * Building contract result objects and filling struct outcome (private to the
 * provider files: reply.c and provider_offline.c).
 *
 * Every string put into a result goes through text_clean_dup(): valid UTF-8,
 * trimmed, and capped (RESULT_MAX_TEXT_BYTES / RESULT_MAX_LABEL_BYTES), so a
 * provider or a document can never make a result field unbounded.
 * json-c trees built here stay in the calling thread.
 */
#ifndef WORKER_RESULT_H
#define WORKER_RESULT_H

#include <stddef.h>

#include "worker/provider.h"

struct json_object;

/* Clear *o to the "nothing yet" state (kind OK, retry_after_ms -1); frees nothing. */
void outcome_reset(struct outcome *o);
/* Set a failure (result_json stays NULL); fmt gives the sentence for a person. */
void outcome_fail(struct outcome *o, enum outcome_kind kind, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Serialize result into o->result_json and set OUTCOME_OK; takes ownership of
 * result (put here, also on failure: ENOMEM becomes a transient OUT_OF_MEMORY). */
void outcome_set_result(struct outcome *o, struct json_object *result);

/* Add key: cleaned copy of s[0..len) capped at cap bytes.  s NULL adds "".
 * Returns 0 or -ENOMEM. */
int result_add_str(struct json_object *obj, const char *key, const char *s, size_t len, size_t cap);
int result_add_cstr(struct json_object *obj, const char *key, const char *s, size_t cap);

/* One flashcard object (NULL on ENOMEM).  example may be NULL (""), pronunciation
 * NULL or "" (member omitted).  difficulty must already be normalized. */
struct json_object *result_card(const char *front, const char *back, const char *topic,
                                const char *difficulty, const char *example,
                                const char *pronunciation);
/* Lesson pieces (NULL on ENOMEM); NULL strings are "".  result_lesson takes
 * ownership of vocabulary and conversation (arrays). */
struct json_object *result_vocab(const char *target_term, const char *definition,
                                 const char *native_translation, const char *example_target,
                                 const char *example_native);
struct json_object *result_line(const char *speaker, const char *message);
struct json_object *result_lesson(const char *title, const char *subject, const char *topic_name,
                                  struct json_object *vocabulary, struct json_object *conversation);

/* {"success":true,<items_key>:items,"tokenUsage":n,"provider":...,"model":...};
 * takes ownership of items.  NULL on ENOMEM. */
struct json_object *result_new(const char *items_key, struct json_object *items,
                               long token_usage, const char *provider, const char *model);

/* beginner|intermediate|expert from a provider's word (easy/medium/hard/advanced...);
 * unknown or NULL gives intermediate.  Returns a static string. */
const char *result_difficulty(const char *s);

#endif
