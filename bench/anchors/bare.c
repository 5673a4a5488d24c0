/* bare.c - benchmark anchor: civetweb with the platform's options and one handler that answers a
 * fixed small JSON. The ceiling of any route of the platform on the same machine: HTTP parsing
 * and one write, no token, no RPC, no store. Usage: bare PORT (bench/compare.sh runs it). */
#include "anchor.h"

static int handle(struct mg_connection *conn, void *ud) {
    (void)ud;
    return anchor_send(conn, 200, "OK", anchor_body);
}

int main(int argc, char **argv) {
    return anchor_serve(argc, argv, handle);
}
