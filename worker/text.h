/*
 * UTF-8 text helpers for the providers (private to worker/).
 *
 * Everything works on (pointer, length) byte ranges and never splits a
 * multibyte character.  Invalid UTF-8 is tolerated on input: an invalid byte
 * decodes as U+FFFD and consumes one byte, so every loop advances.
 * Pure functions, no allocation except text_clean_dup(); any thread.
 */
#ifndef WORKER_TEXT_H
#define WORKER_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode one code point at s[0..len); len must be > 0.  Returns the bytes
 * consumed (1..4); overlong forms, surrogates and values past U+10FFFF give
 * U+FFFD and 1. */
size_t utf8_decode(const char *s, size_t len, uint32_t *ret_cp);
/* Encode cp into out (4 bytes room); returns the byte count. */
size_t utf8_encode(uint32_t cp, char *out);
/* The largest n <= cap such that s[0..n) does not end inside a character. */
size_t utf8_clip(const char *s, size_t len, size_t cap);

/* A malloc'ed copy of s[0..len) that is valid UTF-8 (invalid bytes become
 * U+FFFD, NUL and other C0 controls except \t \n become spaces), with outer
 * whitespace trimmed, at most cap bytes (cut at a character boundary; "..."
 * appended when cut, within cap).  NULL on ENOMEM only.  s may be NULL. */
char *text_clean_dup(const char *s, size_t len, size_t cap);

/* Character classes used by the tokenizer. */
enum text_class {
    TC_OTHER = 0,   /* spaces, punctuation, symbols */
    TC_DIGIT,
    TC_WORD,        /* letters of space-separated scripts (Latin, Greek, Cyrillic, Hangul...) and combining marks */
    TC_HAN,         /* CJK ideographs */
    TC_HIRAGANA,
    TC_KATAKANA,
};
enum text_class text_class_of(uint32_t cp);
bool text_is_space(uint32_t cp);
/* Simple case folding for Latin-1, Latin Extended-A, Greek and Cyrillic. */
uint32_t text_fold(uint32_t cp);

/* Tokens: a run of TC_WORD/TC_DIGIT characters (with inner ' ’ - joining two
 * such runs), or a run of one CJK class (HAN, HIRAGANA, KATAKANA). */
struct text_token {
    size_t off, len;          /* bytes within the scanned buffer */
    enum text_class cls;      /* class of the first letter (TC_DIGIT if none) */
    unsigned ncp;             /* code points */
    bool has_letter;          /* a word, not just a number */
    bool upper_initial;       /* first character is an upper-case letter */
};
/* Next token at or after *pos in s[0..len); advances *pos past it.
 * Returns false when there is none. */
bool text_next_token(const char *s, size_t len, size_t *pos, struct text_token *ret);

/* Folded key of s[0..len) into out (cap bytes); returns its length, or 0 if it
 * does not fit. */
size_t text_fold_key(const char *s, size_t len, char *out, size_t cap);

/* Sentences: split at . ! ? (followed by space or end), … , CJK 。！？,
 * and line breaks (a single line break followed by a lower-case letter joins
 * a hard-wrapped line instead).  Leading bullets (- * • #) and outer spaces
 * are trimmed.  Returns false when no sentence is left; empty sentences are
 * skipped. */
struct text_span { size_t off, len; };
bool text_next_sentence(const char *s, size_t len, size_t *pos, struct text_span *ret);

#endif
