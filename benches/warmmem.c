/* warmmem [MiB]: touch MiB (default 512) of fresh anonymous memory, one write
 * per page, then free it.  On a VM that backs guest memory lazily this makes
 * the next benchmark's page faults cheap; run before each measured process. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    uint64_t mb = 512;
    if (argc > 1 && (parse_count(argv[1], &mb) != 0 || argc > 2)) {
        fprintf(stderr, "usage: warmmem [MiB]\n");
        return 2;
    }
    uint64_t t0 = now_ns();
    warm_memory((size_t)mb);
    printf("warmmem: touched %llu MiB in %.2f s\n", (unsigned long long)mb, (double)(now_ns() - t0) / 1e9);
    return 0;
}
