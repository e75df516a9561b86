/* clusterf-ipvs.c -- placeholder main until its issue lands: says so and exits 2. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-help") == 0)) {
        printf("clusterf-ipvs: not implemented yet\n");
        return 0;
    }
    fprintf(stderr, "clusterf-ipvs: not implemented yet\n");
    return 2;
}
