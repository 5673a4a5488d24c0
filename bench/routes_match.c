/* routes_match.c - the cost of matching a request's method and path against the api's route
 * table (api/routes.c), which every HTTP request pays once. Prints ns per match for three
 * typical requests. Build: make build/bench/routes_match; run: build/bench/routes_match [N]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routes.h"

static double ns_since(const struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e9 + (double)(b.tv_nsec - a->tv_nsec);
}

int main(int argc, char **argv) {
    static const char *const req[][2] = {
        {"GET", "/events"},
        {"GET", "/auth/me"},
        {"POST", "/events/64b7f0c2a1b2c3d4e5f60718/reward-requests"},
    };
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) n = 1000000;
    for (size_t k = 0; k < sizeof req / sizeof req[0]; k++) {
        const rp_api_route_t *route = NULL;
        char allow[64];
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < n; i++)
            rp_routes_match(req[k][0], req[k][1], strlen(req[k][1]), &route, NULL, allow, sizeof allow);
        double ns = ns_since(&t0) / (double)n;
        printf("%-5s %-50s %s %.0f ns per match\n", req[k][0], req[k][1], route ? "found" : "NOT FOUND", ns);
    }
    return 0;
}
