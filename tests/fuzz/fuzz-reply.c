/*
 * fuzz-reply: reply_classify on arbitrary bytes as a provider's reply body.
 *
 * Each input is classified as a 200 for a flashcards job and for a lesson job,
 * then as a 429 and as a 400 error body.  Properties:
 *   - no crash, no leak, no read past the body (it is not NUL-terminated);
 *   - a 200 is OUTCOME_OK with a result, or a permanent failure (transient
 *     only for OUT_OF_MEMORY) with a code and a sentence and no result;
 *   - an OK result is one strict, valid UTF-8 JSON object with
 *     "success":true, the job type's item array (non-empty, within the caps)
 *     and no other item array;
 *   - every error sentence is valid UTF-8 (it may quote the provider);
 *   - a 429 is rate-limited or quota; a 400 is permanent.
 */
#include <string.h>

#include <json-c/json.h>

#include "tests/fuzz/fuzz.h"
#include "worker/provider.h"

static const struct job_params cards_job = {
    JOB_TYPE_FLASHCARDS, "Plants make food from light.", "Biology", "Photosynthesis", "Spanish", "English", NULL
};
static const struct job_params lesson_job = {
    JOB_TYPE_LESSON, "Hola. Buenos días.", "Spanish", "Greetings", "English", "Spanish", "greetings.pdf"
};

static struct json_object *parse_strict(const char *s)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o;

    FUZZ_CHECK(tok != NULL);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, s, (int)strlen(s));
    json_tokener_free(tok);
    return o;
}

static void check_text(const char *s)
{
    struct json_object *o;
    struct json_object *str = json_object_new_string(s);

    /* Valid UTF-8: its JSON string literal parses back under validation. */
    o = parse_strict(json_object_to_json_string_ext(str, JSON_C_TO_STRING_PLAIN));
    FUZZ_CHECK(o != NULL);
    json_object_put(o);
    json_object_put(str);
}

static void check_result(const struct job_params *p, const struct outcome *o)
{
    struct json_object *r, *v, *items;
    const char *key = p->type == JOB_TYPE_LESSON ? "lessons" : "flashcards";
    const char *other = p->type == JOB_TYPE_LESSON ? "flashcards" : "lessons";
    size_t n;

    FUZZ_CHECK(o->result_json != NULL);
    FUZZ_CHECK(o->error_code[0] == '\0');
    r = parse_strict(o->result_json);
    FUZZ_CHECK(r != NULL && json_object_is_type(r, json_type_object));
    FUZZ_CHECK(json_object_object_get_ex(r, "success", &v) && json_object_get_boolean(v));
    FUZZ_CHECK(json_object_object_get_ex(r, key, &items) && json_object_is_type(items, json_type_array));
    FUZZ_CHECK(!json_object_object_get_ex(r, other, NULL));
    n = json_object_array_length(items);
    FUZZ_CHECK(n >= 1 && n <= (p->type == JOB_TYPE_LESSON ? RESULT_MAX_LESSONS : RESULT_MAX_CARDS));
    FUZZ_CHECK(json_object_object_get_ex(r, "tokenUsage", &v) && json_object_get_int64(v) >= 0);
    FUZZ_CHECK(json_object_object_get_ex(r, "model", &v) && json_object_get_string_len(v) > 0);
    for (size_t i = 0; i < n && p->type == JOB_TYPE_FLASHCARDS; i++) {
        struct json_object *c = json_object_array_get_idx(items, i);
        const char *d;
        FUZZ_CHECK(json_object_object_get_ex(c, "front", &v) && json_object_get_string_len(v) > 0);
        FUZZ_CHECK(json_object_get_string_len(v) <= RESULT_MAX_TEXT_BYTES);
        FUZZ_CHECK(json_object_object_get_ex(c, "back", &v) && json_object_get_string_len(v) > 0);
        FUZZ_CHECK(json_object_object_get_ex(c, "difficulty", &v));
        d = json_object_get_string(v);
        FUZZ_CHECK(!strcmp(d, "beginner") || !strcmp(d, "intermediate") || !strcmp(d, "expert"));
    }
    json_object_put(r);
}

static void run(const struct job_params *p, long status, const uint8_t *data, size_t size)
{
    struct outcome o;

    reply_classify(p, "openai", "gpt-4o-mini", 0, status, NULL, NULL, (const char *)data, size, &o);
    FUZZ_CHECK(o.http_status == status);
    if (o.kind == OUTCOME_OK) {
        FUZZ_CHECK(status == 200);
        check_result(p, &o);
    } else {
        FUZZ_CHECK(o.result_json == NULL);
        FUZZ_CHECK(o.error_code[0] != '\0' && o.error[0] != '\0');
        check_text(o.error);
        if (status == 200)
            FUZZ_CHECK(o.kind == OUTCOME_PERMANENT || !strcmp(o.error_code, "OUT_OF_MEMORY"));
        else if (status == 429)
            FUZZ_CHECK(o.kind == OUTCOME_RATE_LIMITED || o.kind == OUTCOME_QUOTA);
        else
            FUZZ_CHECK(o.kind == OUTCOME_PERMANENT);
    }
    outcome_done(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(&cards_job, 200, data, size);
    run(&lesson_job, 200, data, size);
    run(&cards_job, 429, data, size);
    run(&cards_job, 400, data, size);
    return 0;
}
