/* Unit tests of worker/reply.c: classifying OpenAI / Azure HTTP exchanges into
 * contract results or error classes, with the providers' real reply shapes. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "worker/provider.h"

static const struct job_params cards_job = {
    JOB_TYPE_FLASHCARDS, "Plants make food from light.", "Biology", "Photosynthesis", "Spanish", "English", NULL
};
static const struct job_params lesson_job = {
    JOB_TYPE_LESSON, "Hola. Buenos días.", "Spanish", "Greetings", "English", "Spanish", "greetings.pdf"
};

/* ---- response headers: a NULL-terminated name/value list, case-insensitive. */
struct headers {
    const char *kv[8];
};

static const char *lookup(void *ud, const char *name)
{
    struct headers *h = ud;

    for (int i = 0; h->kv[i]; i += 2)
        if (strcasecmp(h->kv[i], name) == 0)
            return h->kv[i + 1];
    return NULL;
}

/* ---- an OpenAI (or Azure) chat.completion envelope around content. */
static char *envelope(const char *content, const char *finish, const char *refusal,
                      const char *model, bool azure)
{
    struct json_object *env = json_object_new_object(), *choices = json_object_new_array();
    struct json_object *choice = json_object_new_object(), *msg = json_object_new_object();
    struct json_object *usage = json_object_new_object();
    char *s;

    json_object_object_add(env, "id", json_object_new_string("chatcmpl-9xYz"));
    json_object_object_add(env, "object", json_object_new_string("chat.completion"));
    json_object_object_add(env, "created", json_object_new_int64(1717000000));
    if (model)
        json_object_object_add(env, "model", json_object_new_string(model));
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content", content ? json_object_new_string(content) : NULL);
    if (!azure)
        json_object_object_add(msg, "refusal", refusal ? json_object_new_string(refusal) : NULL);
    json_object_object_add(choice, "message", msg);
    json_object_object_add(choice, "logprobs", NULL);
    json_object_object_add(choice, "finish_reason", json_object_new_string(finish ? finish : "stop"));
    if (azure)
        json_object_object_add(choice, "content_filter_results", json_tokener_parse(
            "{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},"
            "\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"}}"));
    json_object_array_add(choices, choice);
    json_object_object_add(env, "choices", choices);
    json_object_object_add(usage, "prompt_tokens", json_object_new_int(120));
    json_object_object_add(usage, "completion_tokens", json_object_new_int(80));
    json_object_object_add(usage, "total_tokens", json_object_new_int(200));
    json_object_object_add(env, "usage", usage);
    if (azure)
        json_object_object_add(env, "prompt_filter_results", json_tokener_parse(
            "[{\"prompt_index\":0,\"content_filter_results\":{}}]"));
    else
        json_object_object_add(env, "system_fingerprint", json_object_new_string("fp_0ba0d124f1"));
    s = strdup(json_object_to_json_string_ext(env, JSON_C_TO_STRING_PLAIN));
    json_object_put(env);
    return s;
}

static void classify(const struct job_params *p, const char *provider, int terr, long status,
                     struct headers *h, const char *body, struct outcome *o)
{
    reply_classify(p, provider, "gpt-4o-mini", terr, status, h ? lookup : NULL, h,
                   body, body ? strlen(body) : 0, o);
}

/* Classify a 200 whose assistant content is content. */
static void classify_content(const struct job_params *p, const char *content, const char *finish,
                             struct outcome *o)
{
    char *body = envelope(content, finish, NULL, "gpt-4o-mini-2024-07-18", false);
    classify(p, "openai", 0, 200, NULL, body, o);
    free(body);
}

static struct json_object *result_of(const struct outcome *o)
{
    struct json_object *r;

    ck_assert_msg(o->kind == OUTCOME_OK, "expected OK, got %s %s: %s",
                  outcome_kind_name(o->kind), o->error_code, o->error);
    ck_assert_ptr_nonnull(o->result_json);
    r = json_tokener_parse(o->result_json);
    ck_assert_ptr_nonnull(r);
    return r;
}

static struct json_object *get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "missing %s", key);
    return v;
}

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v = get(o, key);
    ck_assert_msg(json_object_is_type(v, json_type_string), "%s not a string", key);
    return json_object_get_string(v);
}

static void expect_fail(const struct outcome *o, enum outcome_kind kind, const char *code)
{
    ck_assert_msg(o->kind == kind && strcmp(o->error_code, code) == 0,
                  "expected %s %s, got %s %s (%s)", outcome_kind_name(kind), code,
                  outcome_kind_name(o->kind), o->error_code, o->error);
    ck_assert_ptr_null(o->result_json);
    ck_assert_int_gt(strlen(o->error), 10);
}

static const char good_cards[] =
    "{\"flashcards\":["
    "{\"front\":\"la fotosíntesis\",\"back\":\"photosynthesis\",\"topic\":\"Plants\","
    "\"difficulty\":\"Easy\",\"example\":\"La fotosíntesis ocurre en las hojas.\",\"pronunciation\":\"fo-to-SIN-te-sis\"},"
    "{\"front\":\"la hoja\",\"back\":\"the leaf\",\"difficulty\":\"expert\"},"
    "{\"front\":\"la luz\",\"back\":\"the light\",\"topic\":\"\",\"difficulty\":\"legendary\",\"example\":\"Hay luz.\"}"
    "]}";

/* ---------------------------------------------------------------- success */

START_TEST(openai_success)
{
    struct outcome o;
    struct json_object *r, *cards, *c;

    classify_content(&cards_job, good_cards, "stop", &o);
    r = result_of(&o);
    ck_assert(json_object_get_boolean(get(r, "success")));
    ck_assert_str_eq(get_str(r, "provider"), "openai");
    ck_assert_str_eq(get_str(r, "model"), "gpt-4o-mini-2024-07-18");
    ck_assert_int_eq(json_object_get_int(get(r, "tokenUsage")), 200);
    ck_assert_int_eq(o.prompt_tokens, 120);
    ck_assert_int_eq(o.completion_tokens, 80);
    ck_assert_int_eq(o.http_status, 200);
    ck_assert_str_eq(o.error_code, "");
    cards = get(r, "flashcards");
    ck_assert_int_eq(json_object_array_length(cards), 3);
    c = json_object_array_get_idx(cards, 0);
    ck_assert_str_eq(get_str(c, "front"), "la fotosíntesis");
    ck_assert_str_eq(get_str(c, "back"), "photosynthesis");
    ck_assert_str_eq(get_str(c, "topic"), "Plants");
    ck_assert_str_eq(get_str(c, "difficulty"), "beginner");      /* "Easy" normalized */
    ck_assert_str_eq(get_str(c, "example"), "La fotosíntesis ocurre en las hojas.");
    ck_assert_str_eq(get_str(c, "pronunciation"), "fo-to-SIN-te-sis");
    c = json_object_array_get_idx(cards, 1);
    ck_assert_str_eq(get_str(c, "topic"), "Photosynthesis");      /* the job's topic */
    ck_assert_str_eq(get_str(c, "difficulty"), "expert");
    ck_assert_str_eq(get_str(c, "example"), "");
    ck_assert(!json_object_object_get_ex(c, "pronunciation", NULL));
    c = json_object_array_get_idx(cards, 2);
    ck_assert_str_eq(get_str(c, "topic"), "Photosynthesis");      /* "" counts as missing */
    ck_assert_str_eq(get_str(c, "difficulty"), "intermediate");   /* unknown word */
    json_object_put(r);
    outcome_done(&o);
    ck_assert_ptr_null(o.result_json);
    outcome_done(NULL);
}
END_TEST

START_TEST(azure_success_lesson)
{
    static const char lesson[] =
        "{\"lessons\":[{\"title\":\"Saludos\",\"subject\":\"Spanish\",\"topicName\":\"Greetings\","
        "\"vocabulary\":["
        "{\"target_term\":\"hola\",\"definition\":\"a greeting\",\"native_translation\":\"hello\","
        "\"example_sentence_target\":\"¡Hola, Ana!\",\"example_sentence_native\":\"Hello, Ana!\"},"
        "{\"target_term\":\"buenos días\"},"
        "{\"definition\":\"no term: skipped\"}],"
        "\"conversation\":[{\"speaker\":\"Ana\",\"message\":\"¡Hola!\"},{\"speaker\":\"Luis\",\"message\":\"Buenos días.\"},"
        "{\"speaker\":\"Ana\"}]}]}";
    char *body = envelope(lesson, "stop", NULL, "gpt-4o-mini", true);
    struct outcome o;
    struct json_object *r, *l, *vocab, *v, *conv;

    reply_classify(&lesson_job, "azure", NULL, 0, 200, NULL, NULL, body, strlen(body), &o);
    free(body);
    r = result_of(&o);
    ck_assert_str_eq(get_str(r, "provider"), "azure");
    ck_assert_str_eq(get_str(r, "model"), "gpt-4o-mini");
    ck_assert(!json_object_object_get_ex(r, "flashcards", NULL));
    ck_assert_int_eq(json_object_array_length(get(r, "lessons")), 1);
    l = json_object_array_get_idx(get(r, "lessons"), 0);
    ck_assert_str_eq(get_str(l, "title"), "Saludos");
    ck_assert_str_eq(get_str(l, "subject"), "Spanish");
    ck_assert_str_eq(get_str(l, "topicName"), "Greetings");
    vocab = get(l, "vocabulary");
    ck_assert_int_eq(json_object_array_length(vocab), 2);
    v = json_object_array_get_idx(vocab, 1);
    ck_assert_str_eq(get_str(v, "target_term"), "buenos días");
    ck_assert_str_eq(get_str(v, "definition"), "");
    ck_assert_str_eq(get_str(v, "native_translation"), "");
    ck_assert_str_eq(get_str(v, "example_sentence_target"), "");
    ck_assert_str_eq(get_str(v, "example_sentence_native"), "");
    conv = get(l, "conversation");
    ck_assert_int_eq(json_object_array_length(conv), 2);
    ck_assert_str_eq(get_str(json_object_array_get_idx(conv, 1), "speaker"), "Luis");
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(model_falls_back_to_configured_one)
{
    char *body = envelope(good_cards, "stop", NULL, NULL, false);
    struct outcome o;
    struct json_object *r;

    reply_classify(&cards_job, "openai", "gpt-4o-mini", 0, 200, NULL, NULL, body, strlen(body), &o);
    r = result_of(&o);
    ck_assert_str_eq(get_str(r, "model"), "gpt-4o-mini");
    json_object_put(r);
    outcome_done(&o);
    free(body);
}
END_TEST

START_TEST(fenced_content)
{
    static const char fenced[] =
        "Here are your flashcards:\n```json\n"
        "{\"flashcards\":[{\"front\":\"el sol\",\"back\":\"the sun\",\"difficulty\":\"beginner\"}]}\n"
        "```\nLet me know if you want more {or fewer}.";
    struct outcome o;
    struct json_object *r;

    classify_content(&cards_job, fenced, "stop", &o);
    r = result_of(&o);
    ck_assert_str_eq(get_str(json_object_array_get_idx(get(r, "flashcards"), 0), "back"), "the sun");
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(prose_around_json)
{
    static const char prose[] =
        "Sure! Note: {this} is not JSON. "
        "{\"flashcards\":[{\"front\":\"la luna\",\"back\":\"the moon\"}]} Hope it helps {x}";
    struct outcome o;
    struct json_object *r;

    classify_content(&cards_job, prose, "stop", &o);
    r = result_of(&o);
    ck_assert_int_eq(json_object_array_length(get(r, "flashcards")), 1);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(bare_array_of_cards)
{
    struct outcome o;
    struct json_object *r;

    classify_content(&cards_job, "[{\"front\":\"uno\",\"back\":\"one\"},{\"front\":\"dos\",\"back\":2}]", "stop", &o);
    r = result_of(&o);
    ck_assert_int_eq(json_object_array_length(get(r, "flashcards")), 2);
    ck_assert_str_eq(get_str(json_object_array_get_idx(get(r, "flashcards"), 1), "back"), "2");
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(truncated_at_length)
{
    struct outcome o;

    classify_content(&cards_job,
                     "{\"flashcards\":[{\"front\":\"el agua\",\"back\":\"the water\"},{\"front\":\"la ti", "length", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_TRUNCATED");
    ck_assert_int_eq(o.completion_tokens, 80);   /* usage is still recorded */
    outcome_done(&o);
}
END_TEST

START_TEST(length_but_complete_json_is_ok)
{
    struct outcome o;

    classify_content(&cards_job, good_cards, "length", &o);
    ck_assert_int_eq(o.kind, OUTCOME_OK);
    outcome_done(&o);
}
END_TEST

START_TEST(refusal)
{
    char *body = envelope(NULL, "stop", "I'm sorry, I can't help with that.", "gpt-4o", false);
    struct outcome o;

    classify(&cards_job, "openai", 0, 200, NULL, body, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_REFUSED");
    ck_assert_ptr_nonnull(strstr(o.error, "can't help"));
    outcome_done(&o);
    free(body);
}
END_TEST

START_TEST(content_filter_finish)
{
    struct outcome o;

    classify_content(&cards_job, NULL, "content_filter", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "CONTENT_FILTERED");
    outcome_done(&o);
}
END_TEST

START_TEST(missing_fields)
{
    static const char *const bad[] = {
        ("{\"flashcards\":[{\"front\":\"a\"},{\"back\":\"b\"},\"x\",{\"front\":\"  \",\"back\":\"c\"},"
         "{\"front\":[1],\"back\":{\"x\":1}}]}"),
        "{\"flashcards\":[]}",
        "{\"answer\":\"none\",\"cards\":{\"front\":\"a\",\"back\":\"b\"}}",
        "   ",
    };
    struct outcome o;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        classify_content(&cards_job, bad[i], "stop", &o);
        expect_fail(&o, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS");
        outcome_done(&o);
    }
    classify_content(&cards_job, NULL, "stop", &o);            /* content null */
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS");
    outcome_done(&o);
    classify_content(&lesson_job, "{\"lessons\":[{\"title\":\"t\",\"vocabulary\":[],\"conversation\":[]}]}", "stop", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS");
    outcome_done(&o);
    /* A flashcards answer to a lesson job is not a lesson. */
    classify_content(&lesson_job, good_cards, "stop", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS");
    outcome_done(&o);
}
END_TEST

START_TEST(content_not_json)
{
    struct outcome o;

    classify_content(&cards_job, "Here are some flashcards: sol = sun, luna = moon.", "stop", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_CONTENT_NOT_JSON");
    outcome_done(&o);
}
END_TEST

START_TEST(partially_valid_items)
{
    static const char mixed[] =
        "{\"flashcards\":[{\"front\":\"uno\",\"back\":\"one\"},{\"front\":\"\",\"back\":\"x\"},7,null,"
        "{\"question\":\"dos\",\"answer\":\"two\"},{\"front\":\"tres\"},{\"front\":\"cuatro\",\"back\":\"four\","
        "\"example\":5,\"pronunciation\":[\"x\"]}]}";
    struct outcome o;
    struct json_object *r, *cards;

    classify_content(&cards_job, mixed, "stop", &o);
    r = result_of(&o);
    cards = get(r, "flashcards");
    ck_assert_int_eq(json_object_array_length(cards), 3);
    ck_assert_str_eq(get_str(json_object_array_get_idx(cards, 1), "front"), "dos");
    ck_assert_str_eq(get_str(json_object_array_get_idx(cards, 2), "back"), "four");
    ck_assert(!json_object_object_get_ex(json_object_array_get_idx(cards, 2), "pronunciation", NULL));
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(huge_reply_is_capped)
{
    size_t n = 1000, cap = n * 64 + RESULT_MAX_TEXT_BYTES * 3 + 64;
    char *content = malloc(cap), *p = content, *longtext = malloc(RESULT_MAX_TEXT_BYTES * 3 + 1);
    struct outcome o;
    struct json_object *r, *cards;

    memset(longtext, 'x', RESULT_MAX_TEXT_BYTES * 3);
    longtext[RESULT_MAX_TEXT_BYTES * 3] = '\0';
    p += sprintf(p, "{\"flashcards\":[{\"front\":\"%s\",\"back\":\"b\"}", longtext);
    for (size_t i = 1; i < n; i++)
        p += sprintf(p, ",{\"front\":\"f%zu\",\"back\":\"b%zu\"}", i, i);
    strcpy(p, "]}");
    classify_content(&cards_job, content, "stop", &o);
    r = result_of(&o);
    cards = get(r, "flashcards");
    ck_assert_int_eq(json_object_array_length(cards), RESULT_MAX_CARDS);
    ck_assert_int_le(strlen(get_str(json_object_array_get_idx(cards, 0), "front")), RESULT_MAX_TEXT_BYTES);
    ck_assert_int_gt(strlen(get_str(json_object_array_get_idx(cards, 0), "front")), RESULT_MAX_TEXT_BYTES / 2);
    json_object_put(r);
    outcome_done(&o);
    free(content);
    free(longtext);
}
END_TEST

START_TEST(invalid_utf8_is_cleaned)
{
    /* json-c passes raw invalid bytes through; the result must still be valid UTF-8. */
    static const char body[] =
        "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"{\\\"flashcards\\\":[{\\\"front\\\":\\\"a\xff\xfe"
        "b\\\",\\\"back\\\":\\\"\xe6\x97\\\"}]}\"},\"finish_reason\":\"stop\"}]}";
    struct outcome o;
    struct json_tokener *tok = json_tokener_new();
    struct json_object *r;

    classify(&cards_job, "openai", 0, 200, NULL, body, &o);
    ck_assert_int_eq(o.kind, OUTCOME_OK);
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    r = json_tokener_parse_ex(tok, o.result_json, (int)strlen(o.result_json));
    ck_assert_msg(r != NULL, "result is not valid UTF-8 JSON: %s", o.result_json);
    json_object_put(r);
    json_tokener_free(tok);
    outcome_done(&o);
}
END_TEST

START_TEST(usage_without_total)
{
    static const char body[] =
        "{\"choices\":[{\"message\":{\"content\":\"{\\\"flashcards\\\":[{\\\"front\\\":\\\"a\\\",\\\"back\\\":\\\"b\\\"}]}\"}}],"
        "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":22}}";
    struct outcome o;
    struct json_object *r;

    classify(&cards_job, "openai", 0, 200, NULL, body, &o);
    r = result_of(&o);
    ck_assert_int_eq(json_object_get_int(get(r, "tokenUsage")), 33);
    ck_assert_int_eq(o.prompt_tokens, 11);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

/* ---------------------------------------------------------------- envelope */

START_TEST(malformed_envelope)
{
    static const char *const bad[] = {
        "not json", "{\"choices\":", "[1,2]", "", "{} trailing", "\"text\"", "<html>502</html>",
    };
    struct outcome o;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        classify(&cards_job, "openai", 0, 200, NULL, bad[i], &o);
        expect_fail(&o, OUTCOME_PERMANENT, "REPLY_NOT_JSON");
        outcome_done(&o);
    }
    reply_classify(&cards_job, "openai", "m", 0, 200, NULL, NULL, NULL, 0, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_NOT_JSON");
    outcome_done(&o);
    /* A NUL inside the declared length. */
    reply_classify(&cards_job, "openai", "m", 0, 200, NULL, NULL, "{\"a\":1}\0", 8, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_NOT_JSON");
    outcome_done(&o);
    /* Valid JSON without choices. */
    classify(&cards_job, "openai", 0, 200, NULL, "{\"id\":\"x\"}", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS");
    outcome_done(&o);
}
END_TEST

START_TEST(deep_nesting_is_refused)
{
    size_t n = 100000;
    char *body = malloc(2 * n + 1);
    struct outcome o;

    memset(body, '[', n);
    memset(body + n, ']', n);
    body[2 * n] = '\0';
    classify(&cards_job, "openai", 0, 200, NULL, body, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_NOT_JSON");
    outcome_done(&o);
    free(body);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(transport_errors)
{
    struct outcome o;

    classify(&cards_job, "openai", -ETIMEDOUT, 0, NULL, NULL, &o);
    expect_fail(&o, OUTCOME_TRANSIENT, "PROVIDER_TIMEOUT");
    ck_assert_int_eq(o.http_status, 0);
    ck_assert_int_eq(o.retry_after_ms, -1);
    outcome_done(&o);
    classify(&cards_job, "openai", -ECONNRESET, 0, NULL, NULL, &o);
    expect_fail(&o, OUTCOME_TRANSIENT, "PROVIDER_CONNECTION");
    outcome_done(&o);
    classify(&cards_job, "openai", -ECONNREFUSED, 0, NULL, NULL, &o);
    expect_fail(&o, OUTCOME_TRANSIENT, "PROVIDER_CONNECTION");
    outcome_done(&o);
    classify(&cards_job, "openai", -EIO, 0, NULL, NULL, &o);
    expect_fail(&o, OUTCOME_TRANSIENT, "PROVIDER_CONNECTION");
    outcome_done(&o);
    classify(&cards_job, "openai", -EMSGSIZE, 200, NULL, "{\"choices\":[", &o);
    expect_fail(&o, OUTCOME_PERMANENT, "REPLY_TOO_LARGE");
    ck_assert_int_eq(o.http_status, 200);
    outcome_done(&o);
    classify(&cards_job, "openai", 0, 0, NULL, NULL, &o);
    expect_fail(&o, OUTCOME_TRANSIENT, "PROVIDER_CONNECTION");
    outcome_done(&o);
}
END_TEST

START_TEST(status_classes)
{
    static const struct {
        long status;
        enum outcome_kind kind;
        const char *code;
    } cases[] = {
        { 408, OUTCOME_TRANSIENT, "PROVIDER_HTTP_408" },
        { 409, OUTCOME_TRANSIENT, "PROVIDER_HTTP_409" },
        { 429, OUTCOME_RATE_LIMITED, "RATE_LIMITED" },
        { 500, OUTCOME_TRANSIENT, "PROVIDER_HTTP_500" },
        { 502, OUTCOME_TRANSIENT, "PROVIDER_HTTP_502" },
        { 503, OUTCOME_TRANSIENT, "PROVIDER_HTTP_503" },
        { 504, OUTCOME_TRANSIENT, "PROVIDER_HTTP_504" },
        { 520, OUTCOME_TRANSIENT, "PROVIDER_HTTP_520" },
        { 400, OUTCOME_PERMANENT, "PROVIDER_BAD_REQUEST" },
        { 401, OUTCOME_PERMANENT, "PROVIDER_AUTH" },
        { 403, OUTCOME_PERMANENT, "PROVIDER_AUTH" },
        { 404, OUTCOME_PERMANENT, "PROVIDER_NOT_FOUND" },
        { 422, OUTCOME_PERMANENT, "PROVIDER_BAD_REQUEST" },
        { 418, OUTCOME_PERMANENT, "PROVIDER_HTTP_418" },
        { 302, OUTCOME_PERMANENT, "PROVIDER_UNEXPECTED_STATUS" },
    };
    static const char *const bodies[] = {
        NULL, "", "<html>Bad Gateway</html>",
        "{\"error\":{\"message\":\"Something happened\",\"type\":\"server_error\",\"param\":null,\"code\":null}}",
    };
    struct outcome o;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
            classify(&cards_job, "openai", 0, cases[i].status, NULL, bodies[b], &o);
            expect_fail(&o, cases[i].kind, cases[i].code);
            ck_assert_int_eq(o.http_status, cases[i].status);
            ck_assert_ptr_null(strstr(o.error, "<html>"));
            outcome_done(&o);
        }
}
END_TEST

START_TEST(insufficient_quota)
{
    static const char openai[] =
        "{\"error\":{\"message\":\"You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.\","
        "\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}";
    static const char type_only[] = "{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\",\"code\":null}}";
    static const char rate[] =
        "{\"error\":{\"message\":\"Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1.\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
    static const char azure_rate[] =
        "{\"error\":{\"code\":\"429\",\"message\":\"Requests to the ChatCompletions_Create Operation under Azure OpenAI "
        "API version 2024-06-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after 6 seconds.\"}}";
    struct headers h = { { "retry-after", "6", NULL } };
    struct outcome o;

    classify(&cards_job, "openai", 0, 429, NULL, openai, &o);
    expect_fail(&o, OUTCOME_QUOTA, "INSUFFICIENT_QUOTA");
    outcome_done(&o);
    classify(&cards_job, "openai", 0, 429, NULL, type_only, &o);
    expect_fail(&o, OUTCOME_QUOTA, "INSUFFICIENT_QUOTA");
    outcome_done(&o);
    classify(&cards_job, "openai", 0, 429, NULL, rate, &o);
    expect_fail(&o, OUTCOME_RATE_LIMITED, "RATE_LIMITED");
    outcome_done(&o);
    classify(&cards_job, "azure", 0, 429, &h, azure_rate, &o);
    expect_fail(&o, OUTCOME_RATE_LIMITED, "RATE_LIMITED");
    ck_assert_int_eq(o.retry_after_ms, 6000);
    outcome_done(&o);
}
END_TEST

START_TEST(azure_content_filter_400)
{
    static const char body[] =
        "{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy.\",\"type\":null,\"param\":\"prompt\",\"code\":\"content_filter\",\"status\":400,"
        "\"innererror\":{\"code\":\"ResponsibleAIPolicyViolation\",\"content_filter_result\":"
        "{\"hate\":{\"filtered\":true,\"severity\":\"high\"}}}}}";
    struct outcome o;

    classify(&cards_job, "azure", 0, 400, NULL, body, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "CONTENT_FILTERED");
    outcome_done(&o);
}
END_TEST

START_TEST(auth_error_never_echoes_the_key)
{
    static const char body[] =
        "{\"error\":{\"message\":\"Incorrect API key provided: sk-proj-AbCdEf1234567890XyZ. You can find your API key "
        "at https://platform.openai.com/account/api-keys.\",\"type\":\"invalid_request_error\",\"param\":null,"
        "\"code\":\"invalid_api_key\"}}";
    struct outcome o;

    classify(&cards_job, "openai", 0, 401, NULL, body, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "PROVIDER_AUTH");
    ck_assert_ptr_null(strstr(o.error, "sk-"));
    ck_assert_ptr_null(strstr(o.error, "1234567890"));
    outcome_done(&o);
}
END_TEST

START_TEST(bad_request_excerpt_is_sanitized)
{
    static const char body[] =
        "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens.\\nHowever, your messages "
        "resulted in 200000 tokens (key sk-abcdef and token ABCDEFGHIJ0123456789KLMN). Please reduce the length of the "
        "messages. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.\","
        "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}";
    struct outcome o;

    classify(&cards_job, "openai", 0, 400, NULL, body, &o);
    expect_fail(&o, OUTCOME_PERMANENT, "PROVIDER_BAD_REQUEST");
    ck_assert_ptr_nonnull(strstr(o.error, "maximum context length"));
    ck_assert_ptr_null(strchr(o.error, '\n'));
    ck_assert_ptr_null(strstr(o.error, "sk-abcdef"));
    ck_assert_ptr_null(strstr(o.error, "0123456789"));
    ck_assert_ptr_null(strstr(o.error, "incididunt"));   /* a short excerpt only */
    outcome_done(&o);
}
END_TEST

/* ---------------------------------------------------------------- retry-after */

static long retry_for(long status, struct headers *h)
{
    struct outcome o;
    long ms;

    classify(&cards_job, "openai", 0, status, h, "{}", &o);
    ms = o.retry_after_ms;
    outcome_done(&o);
    return ms;
}

START_TEST(retry_after_variants)
{
    struct headers ms_float = { { "retry-after-ms", "1500.5", NULL } };
    struct headers secs = { { "Retry-After", "7", NULL } };
    struct headers both = { { "retry-after", "7", "Retry-After-Ms", "250", NULL } };
    struct headers bad_ms = { { "retry-after-ms", "soon", "retry-after", "3", NULL } };
    struct headers garbage = { { "retry-after", "tomorrow-ish", NULL } };
    struct headers huge = { { "retry-after", "99999999999999999999", NULL } };
    struct headers huge_ms = { { "retry-after-ms", "1e300", NULL } };
    struct headers negative = { { "retry-after-ms", "-5", "retry-after", "-5", NULL } };
    struct headers past = { { "retry-after", "Wed, 21 Oct 2015 07:28:00 GMT", NULL } };
    struct headers none = { { NULL } };
    char date[64];
    time_t later = time(NULL) + 30;
    struct tm tm;
    struct headers future = { { "retry-after", date, NULL } };
    long ms;

    ck_assert_int_eq(retry_for(429, &ms_float), 1501);
    ck_assert_int_eq(retry_for(429, &secs), 7000);
    ck_assert_int_eq(retry_for(429, &both), 250);
    ck_assert_int_eq(retry_for(429, &bad_ms), 3000);
    ck_assert_int_eq(retry_for(429, &garbage), -1);
    ck_assert_int_eq(retry_for(429, &huge), PROVIDER_MAX_RETRY_AFTER_MS);
    ck_assert_int_eq(retry_for(429, &huge_ms), PROVIDER_MAX_RETRY_AFTER_MS);
    ck_assert_int_eq(retry_for(429, &negative), -1);
    ck_assert_int_eq(retry_for(429, &past), 0);
    ck_assert_int_eq(retry_for(429, &none), -1);
    ck_assert_int_eq(retry_for(429, NULL), -1);
    ck_assert_int_eq(retry_for(503, &secs), 7000);              /* any status may carry it */

    gmtime_r(&later, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ms = retry_for(429, &future);
    ck_assert_msg(ms >= 25000 && ms <= 31000, "HTTP-date gave %ld ms", ms);
}
END_TEST

static Suite *reply_suite(void)
{
    Suite *s = suite_create("reply");
    TCase *ok = tcase_create("success"), *bad = tcase_create("reply-errors"), *err = tcase_create("http-errors");

    tcase_add_test(ok, openai_success);
    tcase_add_test(ok, azure_success_lesson);
    tcase_add_test(ok, model_falls_back_to_configured_one);
    tcase_add_test(ok, fenced_content);
    tcase_add_test(ok, prose_around_json);
    tcase_add_test(ok, bare_array_of_cards);
    tcase_add_test(ok, length_but_complete_json_is_ok);
    tcase_add_test(ok, partially_valid_items);
    tcase_add_test(ok, huge_reply_is_capped);
    tcase_add_test(ok, invalid_utf8_is_cleaned);
    tcase_add_test(ok, usage_without_total);
    suite_add_tcase(s, ok);

    tcase_add_test(bad, truncated_at_length);
    tcase_add_test(bad, refusal);
    tcase_add_test(bad, content_filter_finish);
    tcase_add_test(bad, missing_fields);
    tcase_add_test(bad, content_not_json);
    tcase_add_test(bad, malformed_envelope);
    tcase_add_test(bad, deep_nesting_is_refused);
    suite_add_tcase(s, bad);

    tcase_add_test(err, transport_errors);
    tcase_add_test(err, status_classes);
    tcase_add_test(err, insufficient_quota);
    tcase_add_test(err, azure_content_filter_400);
    tcase_add_test(err, auth_error_never_echoes_the_key);
    tcase_add_test(err, bad_request_excerpt_is_sanitized);
    tcase_add_test(err, retry_after_variants);
    suite_add_tcase(s, err);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reply_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
