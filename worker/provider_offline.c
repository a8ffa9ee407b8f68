/*
 * The offline provider: flashcards and lessons extracted from the text itself,
 * with no network and no model.
 *
 * One linear pass splits the content into sentences (text_next_sentence) and
 * words (text_next_token, UTF-8 aware; Japanese is split at script changes),
 * and counts each distinct folded word in an open-addressing hash table,
 * remembering its first OFFLINE_OCC_KEPT sentences.  Stopwords (a small
 * English list plus common Spanish, German and French function words) and
 * very short words are not terms.  Terms are scored by frequency x length
 * (capped), proper nouns a little higher; the best OFFLINE_MAX_TERMS become
 * cards: a term card (back: a definition when a sentence reads "<term> is/are/
 * means ...", else the term in context) and a cloze card (the sentence with
 * the term blanked).  Sentences are shown as windows of at most
 * OFFLINE_WINDOW_BYTES around the term, so a text without punctuation stays
 * readable and the work after the pass is bounded by the number of terms.
 *
 * Deterministic: no clock, no randomness, a fixed hash, a total order for
 * ties, and result objects built in a fixed field order.  Reentrant.
 */
#include "worker/provider.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "worker/result.h"
#include "worker/text.h"

#define OFFLINE_MAX_SCAN_BYTES  (4u << 20) /* content past this is not read */
#define OFFLINE_MAX_TERMS       10      /* terms turned into cards / vocabulary */
#define OFFLINE_MAX_TERM_BYTES  64      /* longer words are clipped and never preferred */
#define OFFLINE_OCC_KEPT        8       /* sentences remembered per term */
#define OFFLINE_WINDOW_BYTES    320     /* longest sentence excerpt shown */
#define OFFLINE_SNAP_BYTES      32      /* how far a window edge moves to reach a space */
#define OFFLINE_MIN_WORD_CP     3       /* shorter words of spaced scripts are not terms */
#define OFFLINE_MIN_CJK_CP      2       /* shorter kanji/katakana runs are not terms */
#define OFFLINE_SCORE_LEN_CAP   12      /* length counts up to this many characters */
#define OFFLINE_DEF_PREFIX_CP   3       /* "The"/"An" may precede a defined term */

static const char *const stopwords[] = {   /* sorted by bytes (strcmp) for bsearch */
    "aber", "about", "above", "after", "again", "against", "algo", "algunos", "all", "almost",
    "along", "already", "als", "also", "although", "always", "among", "and", "another", "ante",
    "any", "anyone", "anything", "aquí", "are", "aren't", "around", "auch", "auf", "aus", "aux",
    "avec", "became", "because", "become", "becomes", "been", "before", "bei", "being", "below",
    "between", "bis", "both", "but", "cada", "can", "can't", "cannot", "ces", "cette", "comme",
    "como", "con", "contra", "could", "couldn't", "cual", "cuando", "dans", "das", "dass",
    "del", "dem", "der", "des", "desde", "did", "didn't", "dies", "diese", "diesem", "diesen",
    "dieser", "doch", "does", "doesn't", "doing", "don't", "donde", "done", "down", "durante",
    "during", "each", "ein", "eine", "einem", "einen", "einer", "eines", "either", "ella",
    "ellas", "elle", "elles", "ellos", "else", "enough", "entre", "esa", "esas", "ese", "eso",
    "esos", "est", "esta", "estaba", "estas", "este", "esto", "estos", "está", "están", "etc",
    "even", "ever", "every", "few", "for", "from", "fue", "fueron", "further", "für", "get",
    "gets", "getting", "got", "haben", "had", "hadn't", "has", "hasn't", "have", "haven't",
    "having", "hay", "he's", "her", "here", "hers", "herself", "him", "himself", "his", "how",
    "however", "i'm", "i've", "ich", "ihr", "ils", "into", "isn't", "ist", "it's", "its",
    "itself", "just", "kann", "las", "least", "les", "less", "let's", "leur", "leurs", "like",
    "los", "made", "mais", "make", "makes", "many", "mas", "may", "maybe", "might", "mit",
    "more", "most", "much", "must", "muy", "myself", "más", "nach", "neither", "never", "next",
    "nicht", "noch", "nor", "nos", "nosotros", "not", "nous", "now", "oder", "off", "often",
    "once", "one", "only", "onto", "other", "others", "otherwise", "otra", "otras", "otro",
    "otros", "our", "ours", "ourselves", "out", "over", "own", "para", "pas", "per", "pero",
    "por", "porque", "pour", "que", "qui", "quien", "quite", "qué", "rather", "really", "said",
    "same", "say", "says", "see", "seem", "seemed", "seems", "sein", "several", "shall", "she",
    "she's", "should", "shouldn't", "sich", "sido", "sie", "sin", "since", "sind", "sobre",
    "some", "something", "sometimes", "sont", "still", "such", "sur", "también", "than", "that",
    "that's", "the", "their", "theirs", "them", "themselves", "then", "there", "there's",
    "these", "they", "they're", "thing", "things", "this", "those", "though", "three",
    "through", "thus", "tiene", "tienen", "todo", "todos", "together", "too", "toward",
    "towards", "two", "una", "unas", "und", "under", "une", "unless", "uno", "unos", "uns",
    "unter", "until", "upon", "use", "used", "uses", "using", "usted", "usually", "very", "via",
    "vom", "von", "vor", "vous", "waren", "was", "wasn't", "we're", "well", "were", "weren't",
    "what", "whatever", "when", "where", "whether", "which", "while", "who", "whom", "whose",
    "why", "wie", "will", "wir", "wird", "with", "within", "without", "won't", "would",
    "wouldn't", "wurde", "yet", "you", "you're", "your", "yours", "yourself", "yourselves",
    "zum", "zur", "über",
};

struct occ {
    uint32_t sent;              /* sentence index */
    uint32_t off, len;          /* the word in the text */
};

struct term {
    char *key;                  /* folded, NUL-terminated */
    uint32_t keylen;
    uint64_t hash;
    uint32_t count, mid, cap_mid;   /* occurrences; not sentence-initial; of those, capitalized */
    uint32_t ncp;               /* characters */
    enum text_class cls;
    bool clipped, stop;
    uint32_t first_off;         /* tie-break: earlier terms first */
    uint32_t surf_off, surf_len;
    bool surf_mid;
    uint8_t nocc;
    struct occ occ[OFFLINE_OCC_KEPT];
};

struct analysis {
    const char *text;
    size_t len;
    struct text_span *sents;
    size_t nsents, cap_sents;
    struct term *terms;
    size_t nterms, cap_terms;
    uint32_t *slots;            /* index + 1 into terms, 0 empty; power-of-two size */
    size_t nslots;
    size_t nwords;
};

/* What the cards and the lesson are made of, per chosen term. */
struct pick {
    const struct term *t;
    char *surface;              /* the term as written */
    char *def;                  /* definition found in the text, or NULL */
    char *context;              /* window around the term (example occurrence) */
    char *other;                /* window of a second occurrence, or NULL */
    char *cloze;                /* window with the term blanked, or NULL */
    char *cloze_full;           /* the same window unblanked */
    const char *level;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_stopword(const char *key)
{
    return bsearch(&key, stopwords, sizeof(stopwords) / sizeof(stopwords[0]), sizeof(stopwords[0]),
                   cmp_str) != NULL;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static bool is_cjk(enum text_class c)
{
    return c == TC_HAN || c == TC_HIRAGANA || c == TC_KATAKANA;
}

static int table_grow(struct analysis *A)
{
    size_t n = A->nslots ? A->nslots * 2 : 128;
    uint32_t *s = calloc(n, sizeof(*s));

    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < A->nterms; i++) {
        size_t j = A->terms[i].hash & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(A->slots);
    A->slots = s;
    A->nslots = n;
    return 0;
}

/* The term for key, created if new; NULL on ENOMEM. */
static struct term *table_get(struct analysis *A, const char *key, size_t keylen)
{
    uint64_t h = fnv1a(key, keylen);
    struct term *t;
    size_t j;

    if ((A->nterms + 1) * 10 >= A->nslots * 7 && table_grow(A) < 0)
        return NULL;
    for (j = h & (A->nslots - 1); A->slots[j]; j = (j + 1) & (A->nslots - 1)) {
        t = &A->terms[A->slots[j] - 1];
        if (t->hash == h && t->keylen == keylen && memcmp(t->key, key, keylen) == 0)
            return t;
    }
    if (A->nterms == A->cap_terms) {
        size_t n = A->cap_terms ? A->cap_terms * 2 : 64;
        struct term *nt = realloc(A->terms, n * sizeof(*nt));
        if (!nt)
            return NULL;
        A->terms = nt;
        A->cap_terms = n;
    }
    t = &A->terms[A->nterms];
    memset(t, 0, sizeof(*t));
    t->key = malloc(keylen + 1);
    if (!t->key)
        return NULL;
    memcpy(t->key, key, keylen);
    t->key[keylen] = '\0';
    t->keylen = (uint32_t)keylen;
    t->hash = h;
    A->slots[j] = (uint32_t)++A->nterms;
    return t;
}

static void add_word(struct term *t, const struct text_token *tok, size_t sent, bool initial)
{
    if (t->count == 0) {
        t->ncp = tok->ncp;
        t->cls = tok->cls;
        t->first_off = (uint32_t)tok->off;
        t->surf_off = (uint32_t)tok->off;
        t->surf_len = (uint32_t)tok->len;
    }
    t->count++;
    if (!initial) {
        t->mid++;
        t->cap_mid += tok->upper_initial;
        if (!t->surf_mid) {             /* the form used inside a sentence is the true one */
            t->surf_mid = true;
            t->surf_off = (uint32_t)tok->off;
            t->surf_len = (uint32_t)tok->len;
        }
    }
    if (t->nocc < OFFLINE_OCC_KEPT && (t->nocc == 0 || t->occ[t->nocc - 1].sent != sent))
        t->occ[t->nocc++] = (struct occ){ (uint32_t)sent, (uint32_t)tok->off, (uint32_t)tok->len };
}

static int analyze(struct analysis *A)
{
    size_t pos = 0;
    struct text_span sp;

    while (text_next_sentence(A->text, A->len, &pos, &sp)) {
        size_t tp = 0, sent = A->nsents;
        struct text_token tok;
        bool initial = true;

        if (A->nsents == A->cap_sents) {
            size_t n = A->cap_sents ? A->cap_sents * 2 : 256;
            struct text_span *ns = realloc(A->sents, n * sizeof(*ns));
            if (!ns)
                return -ENOMEM;
            A->sents = ns;
            A->cap_sents = n;
        }
        A->sents[A->nsents++] = sp;
        while (text_next_token(A->text + sp.off, sp.len, &tp, &tok)) {
            char key[OFFLINE_MAX_TERM_BYTES];
            size_t klen;
            bool clipped = false;
            struct term *t;

            if (!tok.has_letter) {
                initial = false;
                continue;
            }
            A->nwords++;
            tok.off += sp.off;
            klen = text_fold_key(A->text + tok.off, tok.len, key, sizeof(key));
            if (klen == 0) {
                /* Too long to be a term (a URL-like run, Japanese without
                 * script changes): keep a clipped form, used only as a last
                 * resort.  Folding never grows the byte length. */
                size_t i = 0;
                tok.len = utf8_clip(A->text + tok.off, tok.len, sizeof(key));
                klen = text_fold_key(A->text + tok.off, tok.len, key, sizeof(key));
                for (tok.ncp = 0; i < tok.len; tok.ncp++) {
                    uint32_t cp;
                    i += utf8_decode(A->text + tok.off + i, tok.len - i, &cp);
                }
                clipped = true;
            }
            if (klen == 0)
                continue;
            t = table_get(A, key, klen);
            if (!t)
                return -ENOMEM;
            t->clipped |= clipped;
            add_word(t, &tok, sent, initial);
            initial = false;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- choosing terms */

static bool is_candidate(const struct term *t)
{
    if (t->clipped || t->stop)
        return false;
    if (t->cls == TC_WORD)
        return t->ncp >= OFFLINE_MIN_WORD_CP;
    if (t->cls == TC_HAN || t->cls == TC_KATAKANA)
        return t->ncp >= OFFLINE_MIN_CJK_CP;
    return false;                       /* hiragana runs are mostly grammar */
}

static bool is_proper(const struct term *t)
{
    return t->mid > 0 && t->cap_mid * 2 > t->mid;
}

static uint64_t score(const struct term *t)
{
    uint64_t len = t->ncp < OFFLINE_SCORE_LEN_CAP ? t->ncp : OFFLINE_SCORE_LEN_CAP;

    if (is_cjk(t->cls))
        len = len * 3 > OFFLINE_SCORE_LEN_CAP ? OFFLINE_SCORE_LEN_CAP : len * 3;
    return (uint64_t)t->count * len * (is_proper(t) ? 5 : 4);
}

static int cmp_terms(const void *a, const void *b)
{
    const struct term *x = *(const struct term *const *)a, *y = *(const struct term *const *)b;
    uint64_t sx = score(x), sy = score(y);

    if (sx != sy)
        return sx > sy ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->first_off < y->first_off ? -1 : x->first_off > y->first_off;
}

/* The best terms into out[] (at most OFFLINE_MAX_TERMS); returns how many.
 * When no word qualifies, every word competes, so a text with words always
 * gives at least one term. */
static size_t choose_terms(struct analysis *A, const struct term **out)
{
    const struct term **all;
    size_t n = 0;

    all = malloc((A->nterms ? A->nterms : 1) * sizeof(*all));
    if (!all)
        return 0;
    for (size_t i = 0; i < A->nterms; i++) {
        A->terms[i].stop = is_stopword(A->terms[i].key);
        if (is_candidate(&A->terms[i]))
            all[n++] = &A->terms[i];
    }
    if (n == 0)
        for (size_t i = 0; i < A->nterms; i++)
            all[n++] = &A->terms[i];
    qsort(all, n, sizeof(*all), cmp_terms);
    if (n > OFFLINE_MAX_TERMS)
        n = OFFLINE_MAX_TERMS;
    memcpy(out, all, n * sizeof(*all));
    free(all);
    return n;
}

static const char *level_of(const struct term *t)
{
    unsigned len = is_cjk(t->cls) ? t->ncp * 3 : t->ncp;

    if (len >= 10 || (t->count == 1 && len >= 8))
        return "expert";
    if (len <= 5 || t->count >= 5)
        return "beginner";
    return "intermediate";
}

/* ---------------------------------------------------------------- windows */

static bool is_cont(const char *text, size_t i)
{
    return ((unsigned char)text[i] & 0xC0) == 0x80;
}

/* Window [*a, *b) of at most OFFLINE_WINDOW_BYTES of sentence s around the
 * word at o, edges moved to spaces when one is near. */
static void window(const struct analysis *A, const struct text_span *s, const struct occ *o,
                   size_t *ret_a, size_t *ret_b)
{
    const char *T = A->text;
    size_t se = s->off + s->len, oe = o->off + o->len, a, b, half;

    if (s->len <= OFFLINE_WINDOW_BYTES) {
        *ret_a = s->off;
        *ret_b = se;
        return;
    }
    half = o->len >= OFFLINE_WINDOW_BYTES ? 0 : (OFFLINE_WINDOW_BYTES - o->len) / 2;
    a = o->off - s->off > half ? o->off - half : s->off;
    b = a + OFFLINE_WINDOW_BYTES < se ? a + OFFLINE_WINDOW_BYTES : se;
    if (b < oe)
        b = oe;
    if (b - a < OFFLINE_WINDOW_BYTES && b == se)
        a = se - s->off > OFFLINE_WINDOW_BYTES ? se - OFFLINE_WINDOW_BYTES : s->off;
    if (a > o->off)
        a = o->off;
    while (a < o->off && is_cont(T, a))
        a++;
    if (a > s->off) {
        for (size_t i = a; i < o->off && i < a + OFFLINE_SNAP_BYTES; i++)
            if (T[i] == ' ' || T[i] == '\n' || T[i] == '\t') {
                a = i + 1;
                break;
            }
    }
    while (b > oe && b < A->len && is_cont(T, b))
        b--;
    if (b < se) {
        for (size_t i = b; i > oe && i + OFFLINE_SNAP_BYTES > b; i--)
            if (T[i] == ' ' || T[i] == '\n' || T[i] == '\t') {
                b = i;
                break;
            }
    }
    *ret_a = a;
    *ret_b = b;
}

struct wbuf {
    char *p;
    size_t n, cap;
};

static void wb_put(struct wbuf *w, const char *s, size_t n)
{
    if (w->n + n < w->cap) {
        memcpy(w->p + w->n, s, n);
        w->n += n;
    }
}

/* Copy with whitespace runs collapsed to one space. */
static void wb_put_text(struct wbuf *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        if (c == ' ' && w->n > 0 && w->p[w->n - 1] == ' ')
            continue;
        wb_put(w, &c, 1);
    }
}

/* The sentence window around o as clean text; with blank set, every word
 * equal to t (folded) becomes "_____".  *ret_others counts the other words.
 * NULL on ENOMEM. */
static char *render(const struct analysis *A, size_t sent, const struct occ *o,
                    const struct term *blank, unsigned *ret_others)
{
    static const char ell[] = "\xE2\x80\xA6";  /* … */
    const struct text_span *s = &A->sents[sent];
    size_t a, b, pos = 0, prev = 0;
    struct text_token tok;
    struct wbuf w;
    unsigned others = 0;
    char *ret;

    window(A, s, o, &a, &b);
    w.cap = (b - a) * 6 + 16;           /* "_____" for a 1-byte word at worst */
    w.n = 0;
    w.p = malloc(w.cap);
    if (!w.p)
        return NULL;
    if (a > s->off)
        wb_put(&w, ell, 3);
    while (text_next_token(A->text + a, b - a, &pos, &tok)) {
        char key[OFFLINE_MAX_TERM_BYTES];
        size_t klen = 0;

        if (blank && tok.has_letter)
            klen = text_fold_key(A->text + a + tok.off, tok.len, key, sizeof(key));
        wb_put_text(&w, A->text + a + prev, tok.off - prev);
        if (blank && klen == blank->keylen && memcmp(key, blank->key, klen) == 0) {
            wb_put(&w, "_____", 5);
        } else {
            wb_put_text(&w, A->text + a + tok.off, tok.len);
            others += tok.has_letter;
        }
        prev = tok.off + tok.len;
    }
    wb_put_text(&w, A->text + a + prev, b - a - prev);
    if (b < s->off + s->len)
        wb_put(&w, ell, 3);
    if (ret_others)
        *ret_others = others;
    ret = text_clean_dup(w.p, w.n, RESULT_MAX_TEXT_BYTES);
    free(w.p);
    return ret;
}

/* ---------------------------------------------------------------- definitions */

static bool starts_with_ci(const char *s, size_t n, const char *pat)
{
    size_t m = strlen(pat);
    return n >= m && strncasecmp(s, pat, m) == 0;
}

/* What follows a defining phrase, from rest up to stop (or the sentence end),
 * if it has at least min_words words. */
static char *definition_text(const struct analysis *A, size_t rest, size_t se, const char *stop,
                             unsigned min_words)
{
    const char *T = A->text;
    size_t end = rest, tp = 0;
    unsigned nwords = 0;
    struct text_token tok;

    while (end < se && !(stop && strchr(stop, T[end])))
        end++;
    while (end > rest && (T[end - 1] == '.' || T[end - 1] == '!' || T[end - 1] == ' '))
        end--;
    if (end <= rest || end - rest > OFFLINE_WINDOW_BYTES)
        return NULL;
    while (text_next_token(T + rest, end - rest, &tp, &tok))
        nwords += tok.has_letter;
    if (nwords < min_words)
        return NULL;
    return text_clean_dup(T + rest, end - rest, RESULT_MAX_TEXT_BYTES);
}

/* A definition of the word at o, or NULL:
 *   "[The] <term> is|are|means|refers to <definition>."  (term opens the sentence)
 *   "... <term>, a|an|the <definition>, ..."             (apposition) */
static char *definition_at(const struct analysis *A, const struct occ *o)
{
    static const char *const verbs[] = {   /* longer patterns before their prefixes */
        " is defined as ", " is ", " are ", " was ", " were ", " means ", " refers to ",
        " describes ", ": ", " - ", " \xE2\x80\x93 ", " \xE2\x80\x94 ",
        " es ", " son ", " ist ", " sind ", " est ", " sont ",
    };
    static const char *const appositions[] = { ", a ", ", an ", ", the " };
    const struct text_span *s = &A->sents[o->sent];
    const char *T = A->text;
    size_t se = s->off + s->len, p = o->off + o->len, tp = 0;
    struct text_token tok;
    unsigned before = 0;
    bool opens = true;

    /* At most one short word ("The", "An", "El") before the term. */
    while (text_next_token(T + s->off, o->off - s->off, &tp, &tok))
        if (++before > 1 || tok.ncp > OFFLINE_DEF_PREFIX_CP) {
            opens = false;
            break;
        }
    if (opens) {
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
            if (starts_with_ci(T + p, se - p, verbs[i]))
                return definition_text(A, p + strlen(verbs[i]), se, NULL, 2);
    }
    for (size_t i = 0; i < sizeof(appositions) / sizeof(appositions[0]); i++)
        if (starts_with_ci(T + p, se - p, appositions[i]))
            return definition_text(A, p + 2, se, ",;:()", 3);
    return NULL;
}

/* ---------------------------------------------------------------- picks */

static size_t sentence_len(const struct analysis *A, const struct occ *o)
{
    return A->sents[o->sent].len;
}

static void pick_done(struct pick *k)
{
    free(k->surface);
    free(k->def);
    free(k->context);
    free(k->other);
    free(k->cloze);
    free(k->cloze_full);
}

/* 0 or -ENOMEM. */
static int make_pick(const struct analysis *A, const struct term *t, struct pick *k)
{
    int ex = -1, cl = -1;
    unsigned others = 0;

    memset(k, 0, sizeof(*k));
    k->t = t;
    k->level = level_of(t);
    k->surface = text_clean_dup(A->text + t->surf_off, t->surf_len, RESULT_MAX_LABEL_BYTES);
    if (!k->surface)
        return -ENOMEM;
    for (int i = 0; i < t->nocc && !k->def; i++) {
        k->def = definition_at(A, &t->occ[i]);
        if (k->def)
            ex = i;
    }
    for (int i = 0; i < t->nocc && ex < 0; i++) {
        size_t l = sentence_len(A, &t->occ[i]);
        if (l >= 30 && l <= 240)
            ex = i;
    }
    if (ex < 0)
        ex = 0;
    k->context = render(A, t->occ[ex].sent, &t->occ[ex], NULL, NULL);
    if (!k->context)
        return -ENOMEM;
    /* A second occurrence for the example and the cloze, when there is one. */
    for (int i = 0; i < t->nocc; i++) {
        char *c;
        if (i == ex && t->nocc > 1)
            continue;
        c = render(A, t->occ[i].sent, &t->occ[i], t, &others);
        if (!c)
            return -ENOMEM;
        if (others >= 2) {
            k->cloze = c;
            cl = i;
            break;
        }
        free(c);
    }
    if (cl < 0 && t->nocc > 1) {          /* only the example sentence works */
        k->cloze = render(A, t->occ[ex].sent, &t->occ[ex], t, &others);
        if (!k->cloze)
            return -ENOMEM;
        if (others < 2) {
            free(k->cloze);
            k->cloze = NULL;
        } else {
            cl = ex;
        }
    }
    if (cl >= 0) {
        k->cloze_full = render(A, t->occ[cl].sent, &t->occ[cl], NULL, NULL);
        if (!k->cloze_full)
            return -ENOMEM;
        if (cl != ex) {
            k->other = strdup(k->cloze_full);
            if (!k->other)
                return -ENOMEM;
        }
    }
    return 0;
}

/* The back of a term card and a vocabulary definition. */
static char *describe(const struct pick *k)
{
    char *s;

    if (k->def)
        return strdup(k->def);
    if (asprintf(&s, "From the text: %s", k->context) < 0)
        return NULL;
    return s;
}

/* ---------------------------------------------------------------- results */

static int add_to(struct json_object *arr, struct json_object *item)
{
    if (!item)
        return -ENOMEM;
    if (json_object_array_add(arr, item) < 0) {
        json_object_put(item);
        return -ENOMEM;
    }
    return 0;
}

static struct json_object *build_cards(const struct job_params *p, const struct pick *k, size_t n)
{
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; arr && i < n; i++) {
        char *back = describe(&k[i]);
        int r;

        if (!back)
            goto fail;
        r = add_to(arr, result_card(k[i].surface, back, p->topic, k[i].level,
                                    k[i].other ? k[i].other : k[i].context, NULL));
        free(back);
        if (r < 0)
            goto fail;
        if (k[i].cloze && add_to(arr, result_card(k[i].cloze, k[i].surface, p->topic, k[i].level,
                                                  k[i].cloze_full, NULL)) < 0)
            goto fail;
    }
    return arr;
fail:
    json_object_put(arr);
    return NULL;
}

static bool same_language(const struct job_params *p)
{
    return p->native_language && p->target_language &&
           strcasecmp(p->native_language, p->target_language) == 0;
}

static struct json_object *build_vocabulary(const struct job_params *p, const struct pick *k, size_t n)
{
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; arr && i < n; i++) {
        char *def = describe(&k[i]);
        int r;

        if (!def)
            goto fail;
        /* Offline cannot translate: the translation is left empty (the lesson's
         * "note" says so) unless both languages are the same. */
        r = add_to(arr, result_vocab(k[i].surface, def, same_language(p) ? k[i].surface : "",
                                     k[i].other ? k[i].other : k[i].context, ""));
        free(def);
        if (r < 0)
            goto fail;
    }
    return arr;
fail:
    json_object_put(arr);
    return NULL;
}

static int add_line(struct json_object *arr, const char *speaker, char *message)
{
    int r;

    if (!message)
        return -ENOMEM;
    r = add_to(arr, result_line(speaker, message));
    free(message);
    return r;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;
    int r;

    va_start(ap, f);
    r = vasprintf(&s, f, ap);
    va_end(ap);
    return r < 0 ? NULL : s;
}

/* A 4-6 line dialogue between a teacher and a student, built from the
 * text's first sentence and its top terms. */
static struct json_object *build_conversation(const struct analysis *A, const struct job_params *p,
                                              const char *title, const struct pick *k, size_t n)
{
    static const char teacher[] = "Teacher", student[] = "Student";
    struct json_object *arr = json_object_new_array();
    struct occ first = { 0, (uint32_t)A->sents[0].off, 0 };
    char *opening = NULL;
    int r = 0;

    if (!arr)
        return NULL;
    opening = render(A, 0, &first, NULL, NULL);
    if (!opening)
        goto fail;
    r |= add_line(arr, teacher, fmt("Today we are studying %s. The text begins: %s",
                                    p->topic && *p->topic ? p->topic : title, opening));
    r |= add_line(arr, student, fmt("Which words should I learn first?"));
    if (n >= 3)
        r |= add_line(arr, teacher, fmt("Start with \"%s\", \"%s\" and \"%s\".",
                                        k[0].surface, k[1].surface, k[2].surface));
    else if (n == 2)
        r |= add_line(arr, teacher, fmt("Start with \"%s\" and \"%s\".", k[0].surface, k[1].surface));
    else
        r |= add_line(arr, teacher, fmt("Start with \"%s\".", k[0].surface));
    r |= add_line(arr, student, fmt("Can you show me \"%s\" in a sentence?", k[0].surface));
    r |= add_line(arr, teacher, fmt("%s", k[0].other ? k[0].other : k[0].context));
    if (n >= 2)
        r |= add_line(arr, student, fmt("Thank you! Next I will practise \"%s\".", k[1].surface));
    if (r)
        goto fail;
    free(opening);
    return arr;
fail:
    free(opening);
    json_object_put(arr);
    return NULL;
}

static struct json_object *build_lesson(const struct analysis *A, const struct job_params *p,
                                        const struct pick *k, size_t n)
{
    struct json_object *arr = NULL, *vocab = NULL, *conv = NULL, *lesson;
    const char *subject = p->subject ? p->subject : "", *topic = p->topic ? p->topic : "";
    char *title = NULL;

    if (*subject && *topic)
        title = fmt("%s: %s", subject, topic);
    else if (*subject || *topic)
        title = fmt("%s", *subject ? subject : topic);
    else if (p->source_file_name && *p->source_file_name)
        title = fmt("Lesson: %s", p->source_file_name);
    else
        title = fmt("Lesson");
    if (!title)
        goto fail;
    /* The title goes into sentences: keep it a label. */
    if (strlen(title) > RESULT_MAX_LABEL_BYTES)
        title[utf8_clip(title, strlen(title), RESULT_MAX_LABEL_BYTES)] = '\0';
    vocab = build_vocabulary(p, k, n);
    conv = build_conversation(A, p, title, k, n);
    arr = json_object_new_array();
    if (!vocab || !conv || !arr)
        goto fail;
    lesson = result_lesson(title, subject, topic, vocab, conv);
    vocab = conv = NULL;
    if (!lesson)
        goto fail;
    if (!same_language(p) &&
        result_add_cstr(lesson, "note", "Generated offline from the text itself: "
                        "terms and sentences are quoted, translations are not available.",
                        RESULT_MAX_TEXT_BYTES) < 0) {
        json_object_put(lesson);
        goto fail;
    }
    if (add_to(arr, lesson) < 0)
        goto fail;
    free(title);
    return arr;
fail:
    free(title);
    json_object_put(vocab);
    json_object_put(conv);
    json_object_put(arr);
    return NULL;
}

static void analysis_done(struct analysis *A)
{
    for (size_t i = 0; i < A->nterms; i++)
        free(A->terms[i].key);
    free(A->terms);
    free(A->slots);
    free(A->sents);
}

void offline_generate(const struct job_params *p, struct outcome *out)
{
    struct analysis A;
    const struct term *chosen[OFFLINE_MAX_TERMS];
    struct pick picks[OFFLINE_MAX_TERMS];
    struct json_object *items = NULL;
    size_t n = 0, npicks = 0;

    outcome_reset(out);
    memset(&A, 0, sizeof(A));
    A.text = p->content ? p->content : "";
    A.len = strlen(A.text);
    if (A.len > OFFLINE_MAX_SCAN_BYTES)
        A.len = utf8_clip(A.text, A.len, OFFLINE_MAX_SCAN_BYTES);

    if (analyze(&A) < 0)
        goto oom;
    if (A.nwords == 0 || A.nterms == 0) {
        outcome_fail(out, OUTCOME_PERMANENT, "EMPTY_CONTENT",
                     "The content has no words to make %s from.",
                     p->type == JOB_TYPE_LESSON ? "a lesson" : "flashcards");
        goto out;
    }
    n = choose_terms(&A, chosen);
    if (n == 0)
        goto oom;
    for (; npicks < n; npicks++)
        if (make_pick(&A, chosen[npicks], &picks[npicks]) < 0) {
            npicks++;                   /* partly filled: freed below */
            goto oom;
        }
    items = p->type == JOB_TYPE_LESSON ? build_lesson(&A, p, picks, n) : build_cards(p, picks, n);
    if (!items)
        goto oom;
    outcome_set_result(out, result_new(p->type == JOB_TYPE_LESSON ? "lessons" : "flashcards", items, 0,
                                       OFFLINE_PROVIDER, OFFLINE_MODEL));
    goto out;
oom:
    outcome_fail(out, OUTCOME_TRANSIENT, "OUT_OF_MEMORY",
                 "The worker ran out of memory while reading the content.");
out:
    for (size_t i = 0; i < npicks; i++)
        pick_done(&picks[i]);
    analysis_done(&A);
}
