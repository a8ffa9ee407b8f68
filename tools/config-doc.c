/*
 * flashgate-config-doc: print the configuration table (Markdown) generated
 * from common/config_vars.h.  scripts/gen-config-doc.sh pastes it into
 * docs/configuration.md; tests/unit/check-config.c checks the two agree.
 */
#include <stdio.h>

#include "common/config.h"

int main(void)
{
    config_write_markdown(stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("flashgate-config-doc");
        return 1;
    }
    return 0;
}
