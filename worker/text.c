/*
 * UTF-8 text helpers: decoding, character classes, case folding, a tokenizer
 * and a sentence splitter (see text.h).
 *
 * Design: one forward pass, no look-behind beyond a character, no tables that
 * need initialisation, so every function is reentrant and linear in its input.
 * The character classes are coarse block ranges: good enough to tell letters
 * from punctuation in the scripts users write study material in, and to split
 * Japanese (which has no spaces) at script changes (kanji / hiragana /
 * katakana), which approximates word boundaries well enough for term picking.
 */
#include "worker/text.h"

#include <stdlib.h>
#include <string.h>

size_t utf8_decode(const char *s, size_t len, uint32_t *ret_cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    uint32_t v, min;
    size_t n;

    if (c < 0x80) {
        *ret_cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2; v = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3; v = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4; v = c & 0x07; min = 0x10000;
    } else {
        goto bad;
    }
    if (len < n)
        goto bad;
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            goto bad;
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *ret_cp = v;
    return n;
bad:
    *ret_cp = 0xFFFD;
    return 1;
}

size_t utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;

    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_clip(const char *s, size_t len, size_t cap)
{
    size_t n;

    if (len <= cap)
        return len;
    n = cap;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

bool text_is_space(uint32_t cp)
{
    switch (cp) {
    case ' ': case '\t': case '\n': case '\r': case '\v': case '\f':
    case 0x85: case 0xA0: case 0x1680: case 0x200B: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

/* Punctuation and symbols inside the mostly-letter block U+0530..U+1FFF. */
static bool is_script_punct(uint32_t cp)
{
    switch (cp) {
    case 0x589: case 0x5BE: case 0x5C0: case 0x5C3: case 0x5F3: case 0x5F4:
    case 0x60C: case 0x61B: case 0x61F: case 0x6D4: case 0x964: case 0x965:
    case 0x970: case 0xE4F: case 0xE5A: case 0xE5B: case 0x10FB: case 0x166D:
    case 0x166E: case 0x169B: case 0x169C:
        return true;
    default:
        return (cp >= 0x66A && cp <= 0x66D) || (cp >= 0x1360 && cp <= 0x1368) ||
               (cp >= 0x16EB && cp <= 0x16ED) || (cp >= 0x17D4 && cp <= 0x17DA) ||
               (cp >= 0x1800 && cp <= 0x180A);
    }
}

enum text_class text_class_of(uint32_t cp)
{
    if (cp < 0x80) {
        if (cp >= '0' && cp <= '9')
            return TC_DIGIT;
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return TC_WORD;
        return TC_OTHER;
    }
    if (cp < 0xC0)
        return (cp == 0xAA || cp == 0xB5 || cp == 0xBA) ? TC_WORD : TC_OTHER;
    if (cp == 0xD7 || cp == 0xF7)
        return TC_OTHER;
    if (cp < 0x370)                      /* Latin-1 letters .. combining marks */
        return TC_WORD;
    if (cp < 0x530)                      /* Greek, Cyrillic */
        return (cp == 0x37E || cp == 0x387 || cp == 0x482) ? TC_OTHER : TC_WORD;
    if (cp < 0x2000) {
        if ((cp >= 0x660 && cp <= 0x669) || (cp >= 0x6F0 && cp <= 0x6F9) ||
            (cp >= 0x966 && cp <= 0x96F))
            return TC_DIGIT;
        return is_script_punct(cp) ? TC_OTHER : TC_WORD;
    }
    if (cp < 0x2C00)                     /* general punctuation, symbols, arrows */
        return TC_OTHER;
    if (cp < 0x2E00)
        return TC_WORD;
    if (cp < 0x2E80)
        return TC_OTHER;
    if (cp < 0x2FE0)                     /* CJK radicals */
        return TC_HAN;
    if (cp < 0x3000)
        return TC_OTHER;
    if (cp < 0x3040)                     /* CJK punctuation; 々 〆 〇 are ideographic */
        return (cp >= 0x3005 && cp <= 0x3007) ? TC_HAN : TC_OTHER;
    if (cp < 0x30A0)
        return TC_HIRAGANA;
    if (cp < 0x3100)
        return (cp == 0x30A0 || cp == 0x30FB) ? TC_OTHER : TC_KATAKANA;
    if (cp < 0x3190)                     /* Bopomofo, Hangul compatibility jamo */
        return TC_WORD;
    if (cp >= 0x31F0 && cp < 0x3200)
        return TC_KATAKANA;
    if (cp < 0x3400)
        return TC_OTHER;
    if (cp < 0x4DC0)
        return TC_HAN;
    if (cp < 0x4E00)
        return TC_OTHER;
    if (cp < 0xA000)
        return TC_HAN;
    if (cp < 0xD800)                     /* Yi, various scripts, Hangul syllables */
        return TC_WORD;
    if (cp < 0xF900)                     /* surrogates, private use */
        return TC_OTHER;
    if (cp < 0xFB00)
        return TC_HAN;
    if (cp < 0xFE00)
        return (cp == 0xFD3E || cp == 0xFD3F) ? TC_OTHER : TC_WORD;
    if (cp < 0xFE70)
        return TC_OTHER;
    if (cp < 0xFEFF)
        return TC_WORD;
    if (cp >= 0xFF10 && cp <= 0xFF19)
        return TC_DIGIT;
    if ((cp >= 0xFF21 && cp <= 0xFF3A) || (cp >= 0xFF41 && cp <= 0xFF5A))
        return TC_WORD;
    if (cp >= 0xFF66 && cp <= 0xFF9F)
        return TC_KATAKANA;
    if (cp >= 0xFFA0 && cp <= 0xFFDC)
        return TC_WORD;
    if (cp < 0x10000)
        return TC_OTHER;
    if (cp < 0x1D000)
        return TC_WORD;
    if (cp < 0x20000)                    /* music, math symbols, emoji */
        return TC_OTHER;
    if (cp < 0x40000)
        return TC_HAN;
    return TC_OTHER;
}

uint32_t text_fold(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        return cp + 32;
    if (cp == 0x130)
        return 'i';
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
        return (cp & 1) ? cp : cp + 1;
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
        return (cp & 1) ? cp + 1 : cp;
    if (cp == 0x178)
        return 0xFF;
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2)
        return cp + 32;
    if (cp == 0x3C2)
        return 0x3C3;
    if (cp == 0x386)
        return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A)
        return cp + 37;
    if (cp == 0x38C)
        return 0x3CC;
    if (cp == 0x38E || cp == 0x38F)
        return cp + 63;
    if (cp >= 0x410 && cp <= 0x42F)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 80;
    if (cp >= 0x1E00 && cp <= 0x1EFF && !(cp >= 0x1E96 && cp <= 0x1E9F))
        return (cp & 1) ? cp : cp + 1;
    return cp;
}

static bool is_joiner(uint32_t cp)
{
    return cp == '\'' || cp == 0x2019 || cp == '-';
}

static bool is_wordish(enum text_class c)
{
    return c == TC_WORD || c == TC_DIGIT;
}

bool text_next_token(const char *s, size_t len, size_t *pos, struct text_token *ret)
{
    size_t p = *pos, start, n;
    uint32_t cp, first_cp;
    enum text_class cls;
    struct text_token t;

    for (;;) {
        if (p >= len) {
            *pos = len;
            return false;
        }
        n = utf8_decode(s + p, len - p, &cp);
        cls = text_class_of(cp);
        if (cls != TC_OTHER)
            break;
        p += n;
    }
    memset(&t, 0, sizeof(t));
    start = p;
    first_cp = cp;
    if (is_wordish(cls)) {
        bool letter = false;
        while (p < len) {
            n = utf8_decode(s + p, len - p, &cp);
            enum text_class c = text_class_of(cp);
            if (is_wordish(c)) {
                letter |= c == TC_WORD;
                p += n;
                t.ncp++;
                continue;
            }
            if (is_joiner(cp) && p + n < len) {
                uint32_t nx;
                size_t n2 = utf8_decode(s + p + n, len - p - n, &nx);
                if (is_wordish(text_class_of(nx))) {
                    p += n + n2;
                    t.ncp += 2;
                    letter |= text_class_of(nx) == TC_WORD;
                    continue;
                }
            }
            break;
        }
        t.cls = letter ? TC_WORD : TC_DIGIT;
        t.has_letter = letter;
    } else {
        while (p < len) {
            n = utf8_decode(s + p, len - p, &cp);
            if (text_class_of(cp) != cls)
                break;
            p += n;
            t.ncp++;
        }
        t.cls = cls;
        t.has_letter = true;
    }
    t.off = start;
    t.len = p - start;
    t.upper_initial = text_fold(first_cp) != first_cp;
    *ret = t;
    *pos = p;
    return true;
}

size_t text_fold_key(const char *s, size_t len, char *out, size_t cap)
{
    size_t p = 0, o = 0;

    while (p < len) {
        uint32_t cp;
        char buf[4];
        p += utf8_decode(s + p, len - p, &cp);
        if (cp == 0x2019)               /* one apostrophe */
            cp = '\'';
        size_t n = utf8_encode(text_fold(cp), buf);
        if (o + n > cap)
            return 0;
        memcpy(out + o, buf, n);
        o += n;
    }
    return o;
}

char *text_clean_dup(const char *s, size_t len, size_t cap)
{
    static const char ellipsis[] = "...";
    size_t p = 0, o = 0, keep = 0, alloc;
    bool cut = false;
    char *out;

    if (!s)
        len = 0;
    if (cap < 8)
        cap = 8;
    alloc = (len < cap / 3 ? len * 3 : cap) + 1;
    out = malloc(alloc);
    if (!out)
        return NULL;
    /* Leading whitespace and controls. */
    while (p < len) {
        uint32_t cp;
        size_t n = utf8_decode(s + p, len - p, &cp);
        if (!text_is_space(cp) && cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp < 0xA0))
            break;
        p += n;
    }
    while (p < len) {
        uint32_t cp;
        char buf[4];
        size_t n = utf8_decode(s + p, len - p, &cp);
        size_t m;
        if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
            cp = ' ';
        m = utf8_encode(cp, buf);
        if (o + m > alloc - 1) {
            cut = true;
            break;
        }
        memcpy(out + o, buf, m);
        o += m;
        if (!text_is_space(cp))
            keep = o;
        p += n;
    }
    o = keep;                            /* trailing whitespace */
    if (cut) {
        while (o > 0 && o + sizeof(ellipsis) - 1 > alloc - 1) {
            o--;
            while (o > 0 && ((unsigned char)out[o] & 0xC0) == 0x80)
                o--;
        }
        while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\n' || out[o - 1] == '\t'))
            o--;
        memcpy(out + o, ellipsis, sizeof(ellipsis) - 1);
        o += sizeof(ellipsis) - 1;
    }
    out[o] = '\0';
    return out;
}

static bool is_bullet(uint32_t cp)
{
    return cp == '-' || cp == '*' || cp == '#' || cp == '>' || cp == 0xB7 ||
           cp == 0x2022 || cp == 0x25AA || cp == 0x25CF || cp == 0x2013 || cp == 0x2014;
}

static bool is_closer(uint32_t cp)
{
    switch (cp) {
    case '.': case '!': case '?': case '"': case '\'': case ')': case ']':
    case 0x2026: case 0x2019: case 0x201D: case 0xBB:
    case 0x300D: case 0x300F: case 0x3009: case 0x300B: case 0xFF09:
        return true;
    default:
        return false;
    }
}

/* End of the closers after a terminator at p (n bytes). */
static size_t skip_closers(const char *s, size_t len, size_t q)
{
    while (q < len) {
        uint32_t c;
        size_t n = utf8_decode(s + q, len - q, &c);
        if (!is_closer(c))
            break;
        q += n;
    }
    return q;
}

bool text_next_sentence(const char *s, size_t len, size_t *pos, struct text_span *ret)
{
    size_t p = *pos;

    while (p < len) {
        size_t start, end, n;
        uint32_t cp;

        while (p < len) {                /* spaces and bullets */
            n = utf8_decode(s + p, len - p, &cp);
            if (!text_is_space(cp) && !is_bullet(cp) && cp >= 0x20)
                break;
            p += n;
        }
        if (p >= len)
            break;
        start = end = p;
        while (p < len) {
            n = utf8_decode(s + p, len - p, &cp);
            if (cp == '\n' || cp == 0x2028 || cp == 0x2029) {
                size_t q = p + n;
                while (q < len && (s[q] == ' ' || s[q] == '\t' || s[q] == '\r'))
                    q++;
                if (cp == '\n' && q < len && s[q] >= 'a' && s[q] <= 'z') {
                    p = q;               /* hard-wrapped line */
                    continue;
                }
                p += n;
                break;
            }
            if (cp == '.' || cp == '!' || cp == '?' || cp == 0x2026) {
                size_t q = skip_closers(s, len, p + n);
                uint32_t nx = ' ';
                if (q < len)
                    utf8_decode(s + q, len - q, &nx);
                p = end = q;
                if (text_is_space(nx))
                    break;
                continue;
            }
            if (cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F) {
                p = end = skip_closers(s, len, p + n);
                break;
            }
            p += n;
            if (!text_is_space(cp))
                end = p;
        }
        if (end > start) {
            ret->off = start;
            ret->len = end - start;
            *pos = p;
            return true;
        }
    }
    *pos = len;
    return false;
}
