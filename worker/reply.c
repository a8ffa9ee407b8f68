/*
 * Classifying a provider's HTTP exchange (OpenAI / Azure Chat Completions)
 * into a contract result or an error class.
 *
 * Order of decisions:
 *   1. transport errors (no usable response): timeout and connection errors are
 *      transient; a reply over PROVIDER_MAX_REPLY_BYTES (-EMSGSIZE) is permanent.
 *   2. non-2xx statuses by the providers' documented semantics: 408, 409, 5xx
 *      transient; 429 rate-limited unless the error says insufficient_quota;
 *      other 4xx permanent (auth, not found, bad request, content filter).
 *      retry-after-ms / retry-after are read for every response.
 *   3. a 2xx body: the envelope must be one JSON object (depth-capped); then
 *      choices[0].message: refusal, content filter, content; the content's JSON
 *      may be fenced or surrounded by prose, so the first candidate object
 *      (fence contents first) that has the expected key is taken; items are
 *      validated one by one, invalid ones skipped, counts and strings capped.
 *
 * Nothing from the body is echoed except a short, sanitized excerpt of the
 * provider's error message (never for auth errors, and key-like words are
 * redacted).  Pure code, any thread; the json-c trees never leave the call.
 */
#include "worker/provider.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "worker/result.h"
#include "worker/text.h"

#define REPLY_EXCERPT_BYTES  120     /* provider error message quoted in our error */
#define REPLY_REDACT_MIN     20      /* key-like words at least this long are redacted */
#define REPLY_TOKENS_MAX     1000000000000L

/* ---------------------------------------------------------------- JSON */

/* Parse one JSON value at the start of buf[0..len); *ret_end = bytes used.
 * NUL bytes end the scan (a raw NUL is never valid JSON). */
static struct json_object *parse_prefix(const char *buf, size_t len, size_t *ret_end)
{
    const char *nul = memchr(buf, '\0', len);
    struct json_tokener *tok;
    struct json_object *o;

    if (nul)
        len = (size_t)(nul - buf);
    if (len == 0 || len > INT_MAX)
        return NULL;
    tok = json_tokener_new_ex(REPLY_MAX_DEPTH);
    if (!tok)
        return NULL;
    o = json_tokener_parse_ex(tok, buf, (int)len);
    if (o && json_tokener_get_error(tok) == json_tokener_success) {
        *ret_end = json_tokener_get_parse_end(tok);
    } else {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static bool all_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

static struct json_object *member(struct json_object *o, const char *key, enum json_type t)
{
    struct json_object *v;

    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_is_type(v, t) ? v : NULL;
}

static const char *member_str(struct json_object *o, const char *key)
{
    struct json_object *v = member(o, key, json_type_string);
    return v ? json_object_get_string(v) : NULL;
}

/* A string, or a number rendered as text (a model may answer "back": 4). */
static const char *member_text(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    if (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int) ||
        json_object_is_type(v, json_type_double))
        return json_object_get_string(v);
    return NULL;
}

static bool nonblank(const char *s)
{
    size_t len, i = 0;

    if (!s)
        return false;
    len = strlen(s);
    while (i < len) {
        uint32_t cp;
        i += utf8_decode(s + i, len - i, &cp);
        if (!text_is_space(cp) && cp >= 0x20)
            return true;
    }
    return false;
}

/* First non-blank text among alias keys. */
static const char *member_text_any(struct json_object *o, const char *const *keys)
{
    for (; *keys; keys++) {
        const char *s = member_text(o, *keys);
        if (nonblank(s))
            return s;
    }
    return NULL;
}

static long member_tokens(struct json_object *o, const char *key)
{
    struct json_object *v = member(o, key, json_type_int);
    int64_t n;

    if (!v)
        return -1;
    n = json_object_get_int64(v);
    if (n < 0)
        return -1;
    return n > REPLY_TOKENS_MAX ? REPLY_TOKENS_MAX : (long)n;
}

/* ---------------------------------------------------------------- headers */

static long clamp_ms(double ms)
{
    if (ms < 0)
        return 0;
    if (ms > (double)PROVIDER_MAX_RETRY_AFTER_MS)
        return PROVIDER_MAX_RETRY_AFTER_MS;
    return (long)ceil(ms);
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static bool rest_blank(const char *s)
{
    return *skip_ws(s) == '\0';
}

static long parse_retry_after_ms(const char *v)
{
    char *end;
    double d;

    v = skip_ws(v);
    if (!*v || *v == '-' || *v == '+')
        return -1;
    errno = 0;
    d = strtod(v, &end);
    if (end == v || !rest_blank(end) || !isfinite(d) || d < 0)
        return -1;
    return clamp_ms(d);
}

static long parse_retry_after(const char *v)
{
    static const char *const date_formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",    /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT",    /* RFC 850 */
        "%a %b %d %H:%M:%S %Y",         /* asctime */
    };
    struct tm tm;
    const char *p;

    v = skip_ws(v);
    if (*v >= '0' && *v <= '9') {
        long long secs = 0;
        for (p = v; *p >= '0' && *p <= '9'; p++) {
            secs = secs * 10 + (*p - '0');
            if (secs > PROVIDER_MAX_RETRY_AFTER_MS / 1000)
                secs = PROVIDER_MAX_RETRY_AFTER_MS / 1000 + 1;   /* saturate, keep scanning */
        }
        if (!rest_blank(p))
            return -1;
        return clamp_ms((double)secs * 1000.0);
    }
    for (size_t i = 0; i < sizeof(date_formats) / sizeof(date_formats[0]); i++) {
        memset(&tm, 0, sizeof(tm));
        p = strptime(v, date_formats[i], &tm);
        if (p && rest_blank(p)) {
            time_t t = timegm(&tm), now = time(NULL);
            if (t == (time_t)-1)
                return -1;
            return clamp_ms(t > now ? difftime(t, now) * 1000.0 : 0);
        }
    }
    return -1;
}

static long retry_after(const char *(*header)(void *ud, const char *name), void *ud)
{
    const char *v;
    long ms;

    if (!header)
        return -1;
    v = header(ud, "retry-after-ms");
    if (v && (ms = parse_retry_after_ms(v)) >= 0)
        return ms;
    v = header(ud, "retry-after");
    if (v)
        return parse_retry_after(v);
    return -1;
}

/* ---------------------------------------------------------------- errors */

/* A short printable-ASCII excerpt of a provider message, key-like words
 * (long runs of letters and digits with at least one digit, or sk-...)
 * replaced by [redacted]. */
static void excerpt(const char *msg, char *out, size_t cap)
{
    size_t o = 0, i = 0, len;

    out[0] = '\0';
    if (!msg || cap < 16)
        return;
    len = strlen(msg);
    while (i < len && o + 1 < cap) {
        size_t j = i;
        bool digit = false;
        while (j < len && ((msg[j] >= 'a' && msg[j] <= 'z') || (msg[j] >= 'A' && msg[j] <= 'Z') ||
                           (msg[j] >= '0' && msg[j] <= '9') || msg[j] == '-' || msg[j] == '_')) {
            digit |= msg[j] >= '0' && msg[j] <= '9';
            j++;
        }
        if (j > i) {
            const char *w = msg + i;
            size_t wl = j - i;
            bool secret = (wl >= REPLY_REDACT_MIN && digit) || (wl > 3 && strncmp(w, "sk-", 3) == 0);
            if (secret) {
                w = "[redacted]";
                wl = strlen(w);
            }
            if (o + wl + 1 > cap)
                break;
            memcpy(out + o, w, wl);
            o += wl;
            i = j;
            continue;
        }
        unsigned char c = (unsigned char)msg[i++];
        if (c >= 0x80) {                 /* skip the whole character */
            while (i < len && ((unsigned char)msg[i] & 0xC0) == 0x80)
                i++;
            c = '?';
        } else if (c < 0x20 || c == 0x7F) {
            c = ' ';
        }
        out[o++] = (char)c;
    }
    if (i < len && o + 4 <= cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

struct provider_error {
    char code[64], type[64], message[REPLY_EXCERPT_BYTES + 8];
    bool content_filter;
};

/* Read {"error":{"code","type","message","innererror":{"code"}}} or the
 * API-management shape {"statusCode","message"} from an error body. */
static void read_error_body(const char *body, size_t len, struct provider_error *e)
{
    struct json_object *root = NULL, *err, *inner;
    const char *s;
    size_t end;

    memset(e, 0, sizeof(*e));
    if (!body || len == 0)
        return;
    root = parse_prefix(body, len, &end);
    if (!root || !json_object_is_type(root, json_type_object) || !all_space(body + end, len - end))
        goto out;
    err = member(root, "error", json_type_object);
    if (!err)
        err = root;
    s = member_text(err, "code");
    if (s)
        snprintf(e->code, sizeof(e->code), "%s", s);
    s = member_str(err, "type");
    if (s)
        snprintf(e->type, sizeof(e->type), "%s", s);
    s = member_str(err, "message");
    if (!s)
        s = member_str(root, "error");  /* {"error":"text"} */
    excerpt(s, e->message, sizeof(e->message));
    inner = member(err, "innererror", json_type_object);
    s = member_str(inner, "code");
    e->content_filter = strcmp(e->code, "content_filter") == 0 ||
                        (s && strcmp(s, "ResponsibleAIPolicyViolation") == 0);
out:
    json_object_put(root);
}

static void classify_status(long status, const char *body, size_t len, struct outcome *out)
{
    struct provider_error e;
    char suffix[sizeof(e.message) + 4] = ".";

    read_error_body(body, len, &e);
    if (e.message[0])
        snprintf(suffix, sizeof(suffix), ": %s", e.message);

    if (status == 429) {
        if (strcmp(e.code, "insufficient_quota") == 0 || strcmp(e.type, "insufficient_quota") == 0)
            outcome_fail(out, OUTCOME_QUOTA, "INSUFFICIENT_QUOTA",
                         "The AI provider account has run out of quota or credit (HTTP 429).");
        else
            outcome_fail(out, OUTCOME_RATE_LIMITED, "RATE_LIMITED",
                         "The AI provider is rate limiting requests (HTTP 429).");
        return;
    }
    if (status == 408 || status == 409 || (status >= 500 && status <= 599)) {
        const char *what = status == 408 ? "timed out the request" :
                           status == 409 ? "reported a conflict" : "had a server error";
        char code[32];
        snprintf(code, sizeof(code), "PROVIDER_HTTP_%ld", status);
        outcome_fail(out, OUTCOME_TRANSIENT, code, "The AI provider %s (HTTP %ld).", what, status);
        return;
    }
    if (status >= 400 && status <= 499) {
        if (e.content_filter) {
            outcome_fail(out, OUTCOME_PERMANENT, "CONTENT_FILTERED",
                         "The AI provider's content filter blocked this content (HTTP %ld).", status);
        } else if (status == 401 || status == 403) {
            /* The message of an auth error may quote part of the key: never echoed. */
            outcome_fail(out, OUTCOME_PERMANENT, "PROVIDER_AUTH",
                         "The AI provider refused the worker's credentials (HTTP %ld); "
                         "check the API key configuration.", status);
        } else if (status == 404) {
            outcome_fail(out, OUTCOME_PERMANENT, "PROVIDER_NOT_FOUND",
                         "The AI provider does not know the model or deployment (HTTP 404)%s", suffix);
        } else if (status == 400 || status == 422) {
            outcome_fail(out, OUTCOME_PERMANENT, "PROVIDER_BAD_REQUEST",
                         "The AI provider rejected the request (HTTP %ld)%s", status, suffix);
        } else {
            char code[32];
            snprintf(code, sizeof(code), "PROVIDER_HTTP_%ld", status);
            outcome_fail(out, OUTCOME_PERMANENT, code,
                         "The AI provider refused the request (HTTP %ld)%s", status, suffix);
        }
        return;
    }
    outcome_fail(out, OUTCOME_PERMANENT, "PROVIDER_UNEXPECTED_STATUS",
                 "The AI provider answered with unexpected HTTP status %ld.", status);
}

/* ---------------------------------------------------------------- content */

static const char *const front_keys[] = { "front", "question", "term", "word", NULL };
static const char *const back_keys[] = { "back", "answer", "definition", "meaning", NULL };
static const char *const term_keys[] = { "target_term", "term", "word", NULL };
static const char *const message_keys[] = { "message", "text", "line", NULL };

/* Does v look like the answer we asked for? */
static bool is_candidate(struct json_object *v, enum job_type type)
{
    if (json_object_is_type(v, json_type_array))
        return json_object_array_length(v) > 0 &&
               json_object_is_type(json_object_array_get_idx(v, 0), json_type_object);
    if (!json_object_is_type(v, json_type_object))
        return false;
    if (type == JOB_TYPE_LESSON)
        return member(v, "lessons", json_type_array) || member(v, "lesson", json_type_object) ||
               member(v, "vocabulary", json_type_array) || member(v, "conversation", json_type_array);
    return member(v, "flashcards", json_type_array) || member(v, "cards", json_type_array);
}

/* The first candidate value starting at a '{' or '[' in s[0..len); at most
 * REPLY_MAX_CONTENT_SCAN starts are tried (each try is linear). */
static struct json_object *scan_for_json(const char *s, size_t len, enum job_type type, int *tries,
                                         bool *saw_json)
{
    for (size_t p = 0; p < len && *tries < REPLY_MAX_CONTENT_SCAN; p++) {
        struct json_object *v;
        size_t end;

        if (s[p] != '{' && s[p] != '[')
            continue;
        ++*tries;
        v = parse_prefix(s + p, len - p, &end);
        if (v && is_candidate(v, type))
            return v;
        *saw_json |= v != NULL;
        json_object_put(v);
    }
    return NULL;
}

/* Fenced block first (```json ... ```), then the whole content.  *saw_json
 * tells whether some JSON value was found that is not the expected answer. */
static struct json_object *extract_json(const char *s, size_t len, enum job_type type, bool *saw_json)
{
    const char *fence = memmem(s, len, "```", 3);
    struct json_object *v;
    int tries = 0;

    if (fence) {
        const char *a = fence + 3, *end = s + len, *close;
        while (a < end && ((*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z') || *a == '-' || *a == '_'))
            a++;
        close = memmem(a, (size_t)(end - a), "```", 3);
        v = scan_for_json(a, (size_t)((close ? close : end) - a), type, &tries, saw_json);
        if (v)
            return v;
    }
    return scan_for_json(s, len, type, &tries, saw_json);
}

static int add_item(struct json_object *arr, struct json_object *item)
{
    if (!item)
        return -ENOMEM;
    if (json_object_array_add(arr, item) < 0) {
        json_object_put(item);
        return -ENOMEM;
    }
    return 0;
}

/* Items of the answer: the named array, or the answer itself when it is an array. */
static struct json_object *items_of(struct json_object *v, const char *key, const char *alt)
{
    struct json_object *a;

    if (json_object_is_type(v, json_type_array))
        return v;
    a = member(v, key, json_type_array);
    return a ? a : member(v, alt, json_type_array);
}

static int build_cards(const struct job_params *p, struct json_object *v, struct json_object *arr)
{
    struct json_object *items = items_of(v, "flashcards", "cards");
    size_t n = items ? json_object_array_length(items) : 0, kept = 0;

    for (size_t i = 0; i < n && kept < RESULT_MAX_CARDS; i++) {
        struct json_object *it = json_object_array_get_idx(items, i);
        const char *front, *back, *topic;

        if (!json_object_is_type(it, json_type_object))
            continue;
        front = member_text_any(it, front_keys);
        back = member_text_any(it, back_keys);
        if (!front || !back)
            continue;
        topic = member_str(it, "topic");
        if (!nonblank(topic))
            topic = p->topic;
        if (add_item(arr, result_card(front, back, topic,
                                      result_difficulty(member_str(it, "difficulty")),
                                      member_text(it, "example"),
                                      member_str(it, "pronunciation"))) < 0)
            return -ENOMEM;
        kept++;
    }
    return 0;
}

static struct json_object *build_vocab(struct json_object *lesson)
{
    struct json_object *items = member(lesson, "vocabulary", json_type_array);
    struct json_object *arr = json_object_new_array();
    size_t n = items ? json_object_array_length(items) : 0, kept = 0;

    for (size_t i = 0; arr && i < n && kept < RESULT_MAX_VOCAB; i++) {
        struct json_object *it = json_object_array_get_idx(items, i);
        const char *term;

        if (!json_object_is_type(it, json_type_object) || !(term = member_text_any(it, term_keys)))
            continue;
        if (add_item(arr, result_vocab(term, member_text(it, "definition"),
                                       member_text(it, "native_translation"),
                                       member_text(it, "example_sentence_target"),
                                       member_text(it, "example_sentence_native"))) < 0) {
            json_object_put(arr);
            return NULL;
        }
        kept++;
    }
    return arr;
}

static struct json_object *build_conversation(struct json_object *lesson)
{
    struct json_object *items = member(lesson, "conversation", json_type_array);
    struct json_object *arr = json_object_new_array();
    size_t n, kept = 0;

    if (!items)
        items = member(lesson, "dialogue", json_type_array);
    n = items ? json_object_array_length(items) : 0;
    for (size_t i = 0; arr && i < n && kept < RESULT_MAX_LINES; i++) {
        struct json_object *it = json_object_array_get_idx(items, i);
        const char *msg, *speaker;

        if (!json_object_is_type(it, json_type_object) || !(msg = member_text_any(it, message_keys)))
            continue;
        speaker = member_text(it, "speaker");
        if (add_item(arr, result_line(nonblank(speaker) ? speaker : "Speaker", msg)) < 0) {
            json_object_put(arr);
            return NULL;
        }
        kept++;
    }
    return arr;
}

static int build_lessons(const struct job_params *p, struct json_object *v, struct json_object *arr)
{
    struct json_object *items = items_of(v, "lessons", "lessons"), *one = NULL;
    size_t n, kept = 0;
    char fallback_title[RESULT_MAX_LABEL_BYTES];

    if (!items) {                       /* {"lesson":{...}} or the lesson itself */
        one = member(v, "lesson", json_type_object);
        if (!one && json_object_is_type(v, json_type_object))
            one = v;
    }
    n = items ? json_object_array_length(items) : (one ? 1 : 0);
    snprintf(fallback_title, sizeof(fallback_title), "%s%s%s", p->subject ? p->subject : "",
             p->subject && *p->subject && p->topic && *p->topic ? ": " : "", p->topic ? p->topic : "");
    for (size_t i = 0; i < n && kept < RESULT_MAX_LESSONS; i++) {
        struct json_object *it = items ? json_object_array_get_idx(items, i) : one;
        struct json_object *vocab, *conv, *lesson;
        const char *title, *subject, *topic;

        if (!json_object_is_type(it, json_type_object))
            continue;
        vocab = build_vocab(it);
        conv = build_conversation(it);
        if (!vocab || !conv) {
            json_object_put(vocab);
            json_object_put(conv);
            return -ENOMEM;
        }
        if (json_object_array_length(vocab) == 0 && json_object_array_length(conv) == 0) {
            json_object_put(vocab);
            json_object_put(conv);
            continue;
        }
        title = member_text(it, "title");
        subject = member_text(it, "subject");
        topic = member_text(it, "topicName");
        if (!nonblank(topic))
            topic = member_text(it, "topic");
        lesson = result_lesson(nonblank(title) ? title : (*fallback_title ? fallback_title : "Lesson"),
                               nonblank(subject) ? subject : p->subject,
                               nonblank(topic) ? topic : p->topic, vocab, conv);
        if (add_item(arr, lesson) < 0)
            return -ENOMEM;
        kept++;
    }
    return 0;
}

static void classify_body(const struct job_params *p, const char *provider_name, const char *model,
                          const char *body, size_t len, struct outcome *out)
{
    struct json_object *env = NULL, *answer = NULL, *choice, *msg, *usage, *arr = NULL, *choices;
    const char *content, *finish, *refusal, *reply_model;
    long total, pt, ct;
    size_t end, clen;
    bool saw_json = false;
    int r;

    if (body)
        env = parse_prefix(body, len, &end);
    if (!env || !json_object_is_type(env, json_type_object) || !all_space(body + end, len - end)) {
        outcome_fail(out, OUTCOME_PERMANENT, "REPLY_NOT_JSON",
                     "The AI provider's reply was not a valid JSON response.");
        goto out;
    }
    choices = member(env, "choices", json_type_array);
    choice = choices && json_object_array_length(choices) > 0 ? json_object_array_get_idx(choices, 0) : NULL;
    msg = member(choice, "message", json_type_object);
    if (!msg) {
        struct provider_error e;
        if (member(env, "error", json_type_object)) {
            read_error_body(body, len, &e);
            outcome_fail(out, OUTCOME_PERMANENT, "PROVIDER_ERROR",
                         "The AI provider reported an error%s%s", e.message[0] ? ": " : ".", e.message);
        } else {
            outcome_fail(out, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS",
                         "The AI provider's reply has no answer (choices[0].message is missing).");
        }
        goto out;
    }

    usage = member(env, "usage", json_type_object);
    pt = member_tokens(usage, "prompt_tokens");
    ct = member_tokens(usage, "completion_tokens");
    total = member_tokens(usage, "total_tokens");
    out->prompt_tokens = pt > 0 ? pt : 0;
    out->completion_tokens = ct > 0 ? ct : 0;
    if (total < 0)
        total = out->prompt_tokens + out->completion_tokens;

    finish = member_str(choice, "finish_reason");
    refusal = member_str(msg, "refusal");
    if (nonblank(refusal)) {
        char ex[REPLY_EXCERPT_BYTES + 8];
        excerpt(refusal, ex, sizeof(ex));
        outcome_fail(out, OUTCOME_PERMANENT, "REPLY_REFUSED", "The model refused the request%s%s",
                     ex[0] ? ": " : ".", ex);
        goto out;
    }
    if (finish && strcmp(finish, "content_filter") == 0) {
        outcome_fail(out, OUTCOME_PERMANENT, "CONTENT_FILTERED",
                     "The AI provider's content filter blocked the answer.");
        goto out;
    }
    content = member_str(msg, "content");
    clen = content ? (size_t)json_object_get_string_len(member(msg, "content", json_type_string)) : 0;
    if (content)
        answer = extract_json(content, clen, p->type, &saw_json);
    if (!answer) {
        if (finish && strcmp(finish, "length") == 0)
            outcome_fail(out, OUTCOME_PERMANENT, "REPLY_TRUNCATED",
                         "The model's answer was cut off at the token limit before its JSON was complete.");
        else if (saw_json)
            outcome_fail(out, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS",
                         "The model's answer had no \"%s\" list.",
                         p->type == JOB_TYPE_LESSON ? "lessons" : "flashcards");
        else if (!nonblank(content))
            outcome_fail(out, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS", "The model's answer was empty.");
        else
            outcome_fail(out, OUTCOME_PERMANENT, "REPLY_CONTENT_NOT_JSON",
                         "The model's answer did not contain the requested JSON %s.",
                         p->type == JOB_TYPE_LESSON ? "lessons" : "flashcards");
        goto out;
    }

    arr = json_object_new_array();
    if (!arr) {
        r = -ENOMEM;
    } else {
        r = p->type == JOB_TYPE_LESSON ? build_lessons(p, answer, arr) : build_cards(p, answer, arr);
    }
    if (r < 0) {
        outcome_fail(out, OUTCOME_TRANSIENT, "OUT_OF_MEMORY",
                     "The worker ran out of memory while reading the reply.");
        goto out;
    }
    if (json_object_array_length(arr) == 0) {
        outcome_fail(out, OUTCOME_PERMANENT, "REPLY_MISSING_FIELDS",
                     "The model's answer had no usable %s (required fields missing).",
                     p->type == JOB_TYPE_LESSON ? "lessons" : "flashcards");
        goto out;
    }
    reply_model = member_str(env, "model");
    if (!nonblank(reply_model))
        reply_model = nonblank(model) ? model : "unknown";
    outcome_set_result(out, result_new(p->type == JOB_TYPE_LESSON ? "lessons" : "flashcards", arr, total,
                                       nonblank(provider_name) ? provider_name : "openai", reply_model));
    arr = NULL;                         /* owned by the result now */
out:
    json_object_put(arr);
    json_object_put(answer);
    json_object_put(env);
}

void reply_classify(const struct job_params *p, const char *provider_name, const char *model,
                    int transport_error, long http_status,
                    const char *(*header)(void *ud, const char *name), void *ud,
                    const char *body, size_t body_len, struct outcome *out)
{
    outcome_reset(out);
    out->http_status = http_status >= 100 && http_status <= 999 ? (int)http_status : 0;

    if (transport_error < 0) {
        if (transport_error == -EMSGSIZE)
            outcome_fail(out, OUTCOME_PERMANENT, "REPLY_TOO_LARGE",
                         "The AI provider's reply was larger than the allowed maximum.");
        else if (transport_error == -ETIMEDOUT)
            outcome_fail(out, OUTCOME_TRANSIENT, "PROVIDER_TIMEOUT",
                         "The AI provider did not answer in time.");
        else
            outcome_fail(out, OUTCOME_TRANSIENT, "PROVIDER_CONNECTION",
                         "Could not reach the AI provider (connection error).");
        return;
    }
    if (out->http_status == 0) {
        outcome_fail(out, OUTCOME_TRANSIENT, "PROVIDER_CONNECTION",
                     "The AI provider's answer had no HTTP status.");
        return;
    }
    out->retry_after_ms = retry_after(header, ud);
    if (http_status >= 200 && http_status <= 299)
        classify_body(p, provider_name, model, body, body ? body_len : 0, out);
    else
        classify_status(http_status, body, body ? body_len : 0, out);
}
