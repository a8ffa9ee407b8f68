/*
 * embed: turn a text file into a C translation unit defining
 *   const char <name>[] = "...";   and   const unsigned long <name>_len;
 * Used at build time to embed the Lua scripts (common/lua/ *.lua) so the
 * binaries are self-contained.  Usage: embed NAME INPUT OUTPUT
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: embed NAME INPUT OUTPUT\n");
        return 2;
    }
    FILE *in = fopen(argv[2], "rb");
    FILE *out = fopen(argv[3], "wb");
    if (!in || !out) {
        perror("embed");
        return 1;
    }
    fprintf(out, "/* generated from %s; do not edit */\nconst char %s[] =\n\"", argv[2], argv[1]);
    unsigned long n = 0;
    int c;
    while ((c = fgetc(in)) != EOF) {
        n++;
        if (c == '\n')
            fputs("\\n\"\n\"", out);
        else if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 32 || c > 126)
            fprintf(out, "\\%03o", (unsigned)c);
        else
            fputc(c, out);
    }
    fprintf(out, "\";\nconst unsigned long %s_len = %luUL;\n", argv[1], n);
    if (fclose(out) != 0 || ferror(in)) {
        perror("embed");
        return 1;
    }
    fclose(in);
    return 0;
}
