/* Unit tests of worker/provider_offline.c: extractive flashcards and lessons
 * built from the text itself, deterministic, UTF-8 aware, fast on large input. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "worker/provider.h"

static const char biology[] =
    "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water.\n"
    "It takes place mainly in the leaves, inside small structures called chloroplasts.\n"
    "Chloroplasts contain chlorophyll, a green pigment that absorbs light energy.\n"
    "During photosynthesis, plants release oxygen into the air. The oxygen we breathe comes largely from\n"
    "photosynthesis in plants and algae. Without chlorophyll, plants could not capture the energy of sunlight!";

static struct job_params job(enum job_type type, const char *content)
{
    return (struct job_params){ type, (char *)content, "Biology", "Plants", "Spanish", "English", NULL };
}

/* Run the provider and parse its result, checking it is valid UTF-8 JSON. */
static struct json_object *run(const struct job_params *p, struct outcome *o)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *r, *v;

    offline_generate(p, o);
    ck_assert_msg(o->kind == OUTCOME_OK, "offline failed: %s %s", o->error_code, o->error);
    ck_assert_ptr_nonnull(o->result_json);
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8 | JSON_TOKENER_STRICT);
    r = json_tokener_parse_ex(tok, o->result_json, (int)strlen(o->result_json));
    json_tokener_free(tok);
    ck_assert_msg(r != NULL, "result is not valid UTF-8 JSON");
    ck_assert(json_object_object_get_ex(r, "success", &v) && json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(r, "provider", &v));
    ck_assert_str_eq(json_object_get_string(v), "offline");
    ck_assert(json_object_object_get_ex(r, "model", &v));
    ck_assert_str_eq(json_object_get_string(v), "offline-extractive-v1");
    ck_assert(json_object_object_get_ex(r, "tokenUsage", &v));
    ck_assert_int_eq(json_object_get_int(v), 0);
    ck_assert_int_eq(o->prompt_tokens + o->completion_tokens, 0);
    return r;
}

static const char *str(struct json_object *o, const char *key)
{
    struct json_object *v;

    ck_assert_msg(json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string),
                  "missing string %s", key);
    return json_object_get_string(v);
}

static struct json_object *cards_of(struct json_object *r)
{
    struct json_object *v;

    ck_assert(json_object_object_get_ex(r, "flashcards", &v));
    ck_assert(json_object_is_type(v, json_type_array));
    return v;
}

static bool is_cloze(struct json_object *card)
{
    return strstr(str(card, "front"), "_____") != NULL;
}

/* Every card is well formed and made of the text. */
static void check_cards(struct json_object *cards, const char *content, const char *topic)
{
    size_t n = json_object_array_length(cards), terms = 0;

    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, 20);
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(cards, i);
        const char *d = str(c, "difficulty");

        ck_assert_str_eq(str(c, "topic"), topic);
        ck_assert(!strcmp(d, "beginner") || !strcmp(d, "intermediate") || !strcmp(d, "expert"));
        ck_assert_int_gt(strlen(str(c, "back")), 0);
        ck_assert_int_le(strlen(str(c, "example")), RESULT_MAX_TEXT_BYTES);
        if (is_cloze(c)) {
            /* The blank hides the answer, and the answer is a word of the text. */
            ck_assert_ptr_null(strcasestr(str(c, "front"), str(c, "back")));
            ck_assert_ptr_nonnull(strstr(content, str(c, "back")));
            ck_assert_ptr_nonnull(strcasestr(str(c, "example"), str(c, "back")));
        } else {
            terms++;
            ck_assert_ptr_nonnull(strstr(content, str(c, "front")));
        }
    }
    ck_assert_int_ge(terms, 1);
    ck_assert_int_le(terms, 10);
}

static bool has_front(struct json_object *cards, const char *front)
{
    for (size_t i = 0; i < json_object_array_length(cards); i++)
        if (strcmp(str(json_object_array_get_idx(cards, i), "front"), front) == 0)
            return true;
    return false;
}

static struct json_object *card_with_front(struct json_object *cards, const char *front)
{
    for (size_t i = 0; i < json_object_array_length(cards); i++)
        if (strcmp(str(json_object_array_get_idx(cards, i), "front"), front) == 0)
            return json_object_array_get_idx(cards, i);
    ck_abort_msg("no card with front %s", front);
    return NULL;
}

START_TEST(flashcards_from_the_text)
{
    struct job_params p = job(JOB_TYPE_FLASHCARDS, biology);
    struct outcome o;
    struct json_object *r = run(&p, &o), *cards = cards_of(r), *c;
    bool cloze = false;

    check_cards(cards, biology, "Plants");
    /* Key terms are found; stopwords and short words are not cards. */
    ck_assert(has_front(cards, "photosynthesis") || has_front(cards, "Photosynthesis"));
    ck_assert(has_front(cards, "chlorophyll"));
    ck_assert(!has_front(cards, "the"));
    ck_assert(!has_front(cards, "from"));
    ck_assert(!has_front(cards, "in"));
    /* "X is ..." gives a definition; "X, a ..." too. */
    c = card_with_front(cards, has_front(cards, "photosynthesis") ? "photosynthesis" : "Photosynthesis");
    ck_assert_str_eq(str(c, "back"), "the process by which green plants use sunlight to make food from carbon dioxide and water");
    ck_assert_str_eq(str(c, "difficulty"), "expert");
    c = card_with_front(cards, "chlorophyll");
    ck_assert_str_eq(str(c, "back"), "a green pigment that absorbs light energy");
    for (size_t i = 0; i < json_object_array_length(cards); i++)
        cloze |= is_cloze(json_object_array_get_idx(cards, i));
    ck_assert(cloze);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(cloze_blanks_every_occurrence)
{
    static const char text[] = "Later Darwin wrote that Darwin had changed his mind.";
    struct job_params p = job(JOB_TYPE_FLASHCARDS, text);
    struct outcome o;
    struct json_object *r = run(&p, &o), *cards = cards_of(r);
    bool found = false;

    for (size_t i = 0; i < json_object_array_length(cards); i++) {
        struct json_object *c = json_object_array_get_idx(cards, i);
        if (is_cloze(c) && strcmp(str(c, "back"), "Darwin") == 0) {
            ck_assert_str_eq(str(c, "front"), "Later _____ wrote that _____ had changed his mind.");
            ck_assert_str_eq(str(c, "example"), "Later Darwin wrote that Darwin had changed his mind.");
            found = true;
        }
    }
    ck_assert(found);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(deterministic)
{
    struct job_params p = job(JOB_TYPE_FLASHCARDS, biology), l = job(JOB_TYPE_LESSON, biology);
    struct outcome a, b;

    offline_generate(&p, &a);
    offline_generate(&p, &b);
    ck_assert_int_eq(a.kind, OUTCOME_OK);
    ck_assert_str_eq(a.result_json, b.result_json);
    outcome_done(&a);
    outcome_done(&b);
    offline_generate(&l, &a);
    offline_generate(&l, &b);
    ck_assert_int_eq(a.kind, OUTCOME_OK);
    ck_assert_str_eq(a.result_json, b.result_json);
    outcome_done(&a);
    outcome_done(&b);
}
END_TEST

START_TEST(lesson_shape)
{
    struct job_params p = job(JOB_TYPE_LESSON, biology);
    struct outcome o;
    struct json_object *r = run(&p, &o), *lessons, *l, *vocab, *conv;
    size_t nv, nc;

    ck_assert(json_object_object_get_ex(r, "lessons", &lessons));
    ck_assert(!json_object_object_get_ex(r, "flashcards", NULL));
    ck_assert_int_eq(json_object_array_length(lessons), 1);
    l = json_object_array_get_idx(lessons, 0);
    ck_assert_str_eq(str(l, "title"), "Biology: Plants");
    ck_assert_str_eq(str(l, "subject"), "Biology");
    ck_assert_str_eq(str(l, "topicName"), "Plants");
    ck_assert(json_object_object_get_ex(l, "vocabulary", &vocab));
    nv = json_object_array_length(vocab);
    ck_assert_int_ge(nv, 1);
    ck_assert_int_le(nv, 10);
    for (size_t i = 0; i < nv; i++) {
        struct json_object *v = json_object_array_get_idx(vocab, i);
        ck_assert_ptr_nonnull(strstr(biology, str(v, "target_term")));
        ck_assert_int_gt(strlen(str(v, "definition")), 0);
        ck_assert_str_eq(str(v, "native_translation"), "");     /* offline cannot translate */
        ck_assert_ptr_nonnull(strcasestr(str(v, "example_sentence_target"), str(v, "target_term")));
        ck_assert_str_eq(str(v, "example_sentence_native"), "");
    }
    ck_assert_int_gt(strlen(str(l, "note")), 0);
    ck_assert(json_object_object_get_ex(l, "conversation", &conv));
    nc = json_object_array_length(conv);
    ck_assert_int_ge(nc, 4);
    ck_assert_int_le(nc, 6);
    ck_assert_str_ne(str(json_object_array_get_idx(conv, 0), "speaker"),
                     str(json_object_array_get_idx(conv, 1), "speaker"));
    for (size_t i = 0; i < nc; i++)
        ck_assert_int_gt(strlen(str(json_object_array_get_idx(conv, i), "message")), 0);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(lesson_same_language_keeps_the_term)
{
    struct job_params p = { JOB_TYPE_LESSON, "Gravity pulls objects toward each other.", NULL, NULL, "English",
                            "english", "physics.txt" };
    struct outcome o;
    struct json_object *r = run(&p, &o), *lessons, *l, *vocab, *v, *conv;

    ck_assert(json_object_object_get_ex(r, "lessons", &lessons));
    l = json_object_array_get_idx(lessons, 0);
    ck_assert_str_eq(str(l, "title"), "Lesson: physics.txt");
    ck_assert(json_object_object_get_ex(l, "vocabulary", &vocab));
    v = json_object_array_get_idx(vocab, 0);
    ck_assert_str_eq(str(v, "native_translation"), str(v, "target_term"));
    ck_assert(json_object_object_get_ex(l, "conversation", &conv));
    ck_assert_int_ge(json_object_array_length(conv), 4);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(utf8_european)
{
    static const char text[] =
        "La fotosíntesis es el proceso mediante el cual las plantas convierten la luz en energía química. "
        "Las plantas necesitan agua y luz.\n"
        "Die Photosynthese ist ein Prozess, bei dem Pflanzen Lichtenergie nutzen. Die Blätter enthalten "
        "Chlorophyll. Ohne Chlorophyll können Pflanzen keine Energie gewinnen. ÉCOLE, ÉCOLE, école.";
    struct job_params p = job(JOB_TYPE_FLASHCARDS, text);
    struct outcome o;
    struct json_object *r = run(&p, &o), *cards = cards_of(r);

    check_cards(cards, text, "Plants");
    ck_assert(has_front(cards, "fotosíntesis"));
    ck_assert(has_front(cards, "Chlorophyll"));
    ck_assert_str_eq(str(card_with_front(cards, "fotosíntesis"), "back"),
                     "el proceso mediante el cual las plantas convierten la luz en energía química");
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(utf8_japanese_without_spaces)
{
    static const char text[] =
        "日本語を勉強します。東京は日本の首都です。東京タワーはとても高いです！カタカナのコンピューターを使います。";
    struct job_params p = job(JOB_TYPE_FLASHCARDS, text);
    struct outcome o;
    struct json_object *r = run(&p, &o), *cards = cards_of(r);

    check_cards(cards, text, "Plants");
    ck_assert(has_front(cards, "東京"));
    ck_assert(has_front(cards, "コンピューター"));
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(only_hiragana_still_gives_a_card)
{
    struct job_params p = job(JOB_TYPE_FLASHCARDS, "ひらがなだけのぶんしょうです");
    struct outcome o;
    struct json_object *r = run(&p, &o);

    ck_assert_int_ge(json_object_array_length(cards_of(r)), 1);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(only_stopwords_still_gives_a_card)
{
    struct job_params p = job(JOB_TYPE_FLASHCARDS, "It is. It was. Is it?");
    struct outcome o;
    struct json_object *r = run(&p, &o);

    ck_assert_int_ge(json_object_array_length(cards_of(r)), 1);
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(invalid_utf8_input)
{
    static const char text[] = "Caf\xc3 au lait \xff\xfe is a dr\xe2\x82ink. Mitochondria \xed\xa0\x80 produce energy. "
                               "Mitochondria\xc0\xaf are organelles.";
    struct job_params p = job(JOB_TYPE_FLASHCARDS, text);
    struct outcome o;
    struct json_object *r = run(&p, &o);   /* run() checks the result is valid UTF-8 */

    ck_assert(has_front(cards_of(r), "Mitochondria"));
    json_object_put(r);
    outcome_done(&o);
}
END_TEST

START_TEST(empty_content)
{
    static const char *const empties[] = { "", "   \n\t ", "123 456 7.89 !!! ... ---", "😀 ★ → ✓", NULL };
    struct outcome o;

    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct job_params p = job(i % 2 ? JOB_TYPE_LESSON : JOB_TYPE_FLASHCARDS, empties[i]);
        offline_generate(&p, &o);
        ck_assert_int_eq(o.kind, OUTCOME_PERMANENT);
        ck_assert_str_eq(o.error_code, "EMPTY_CONTENT");
        ck_assert_ptr_null(o.result_json);
        ck_assert_int_gt(strlen(o.error), 10);
        outcome_done(&o);
    }
}
END_TEST

/* 100k characters of prose from a small vocabulary, deterministic. */
static char *big_text(size_t n, bool punctuation)
{
    static const char *const words[] = {
        "the", "river", "carries", "sediment", "toward", "delta", "where", "mangroves", "grow", "and",
        "fishermen", "navigate", "channels", "of", "a", "estuary", "tides", "shape", "Amazon", "basin",
    };
    char *s = malloc(n + 1);
    size_t o = 0;
    unsigned x = 12345;

    while (o < n) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        size_t l = strlen(w);
        if (o + l + 2 > n)
            break;
        memcpy(s + o, w, l);
        o += l;
        s[o++] = punctuation && (x >> 8) % 9 == 0 ? '.' : ' ';
        if (s[o - 1] == '.')
            s[o++] = ' ';
    }
    while (o < n)
        s[o++] = ' ';
    s[n] = '\0';
    return s;
}

START_TEST(large_content)
{
    char *text = big_text(100000, true);
    struct job_params p = job(JOB_TYPE_FLASHCARDS, text);
    struct outcome o;
    struct json_object *r = run(&p, &o), *cards = cards_of(r);

    check_cards(cards, text, "Plants");
    ck_assert(!has_front(cards, "the"));
    json_object_put(r);
    outcome_done(&o);
    p.type = JOB_TYPE_LESSON;
    json_object_put(run(&p, &o));
    outcome_done(&o);
    free(text);
}
END_TEST

START_TEST(large_content_without_punctuation)
{
    char *text = big_text(100000, false);
    struct job_params p = job(JOB_TYPE_FLASHCARDS, text);
    struct outcome o;
    struct json_object *r = run(&p, &o), *cards = cards_of(r);

    check_cards(cards, text, "Plants");
    /* One 100k "sentence": examples are windows around the term. */
    for (size_t i = 0; i < json_object_array_length(cards); i++)
        ck_assert_ptr_nonnull(strstr(str(json_object_array_get_idx(cards, i), "example"), "\xE2\x80\xA6"));
    json_object_put(r);
    outcome_done(&o);
    free(text);
}
END_TEST

START_TEST(one_huge_word)
{
    char *text = malloc(100001);
    struct job_params p;
    struct outcome o;
    struct json_object *r;

    memset(text, 'x', 100000);
    text[100000] = '\0';
    p = job(JOB_TYPE_LESSON, text);
    r = run(&p, &o);
    json_object_put(r);
    outcome_done(&o);
    free(text);
}
END_TEST

static Suite *offline_suite(void)
{
    Suite *s = suite_create("offline");
    TCase *tc = tcase_create("offline");

    tcase_add_test(tc, flashcards_from_the_text);
    tcase_add_test(tc, cloze_blanks_every_occurrence);
    tcase_add_test(tc, deterministic);
    tcase_add_test(tc, lesson_shape);
    tcase_add_test(tc, lesson_same_language_keeps_the_term);
    tcase_add_test(tc, utf8_european);
    tcase_add_test(tc, utf8_japanese_without_spaces);
    tcase_add_test(tc, only_hiragana_still_gives_a_card);
    tcase_add_test(tc, only_stopwords_still_gives_a_card);
    tcase_add_test(tc, invalid_utf8_input);
    tcase_add_test(tc, empty_content);
    tcase_add_test(tc, large_content);
    tcase_add_test(tc, large_content_without_punctuation);
    tcase_add_test(tc, one_huge_word);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(offline_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
