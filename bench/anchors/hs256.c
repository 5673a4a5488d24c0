/* hs256.c - benchmark anchor: bare.c plus what every authenticated route of the platform pays
 * before its RPC: the HS256 bearer token of the Authorization header verified with libjwt (the
 * signature, the algorithm and the expiry, as lib/token.c checks them), 401 when it fails.
 *   hs256 PORT          serve (JWT_SECRET in the environment, at least 32 bytes)
 *   hs256 --issue [TTL] print a token signed with JWT_SECRET, valid TTL seconds (default 3600) */
#include "anchor.h"

#include <errno.h>
#include <jwt.h>
#include <time.h>

static const unsigned char *secret;
static int secret_len;

static const char unauthorized[] =
    "{\"error\":{\"code\":\"INVALID_TOKEN\",\"message\":\"the access token is invalid\",\"details\":[]}}";

static int token_ok(const char *auth) {
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *token = auth + 7;
    size_t len = strlen(token);
    if (len == 0 || len > 4096) return 0;
    jwt_t *j = NULL;
    int ok = 0;
    if (jwt_decode(&j, token, secret, secret_len) == 0 && j && jwt_get_alg(j) == JWT_ALG_HS256) {
        errno = 0;
        long exp = jwt_get_grant_int(j, "exp");
        const char *sub = jwt_get_grant(j, "sub");
        ok = errno == 0 && exp > (long)time(NULL) && sub && *sub;
    }
    jwt_free(j);
    return ok;
}

static int handle(struct mg_connection *conn, void *ud) {
    (void)ud;
    if (!token_ok(mg_get_header(conn, "Authorization"))) return anchor_send(conn, 401, "Unauthorized", unauthorized);
    return anchor_send(conn, 200, "OK", anchor_body);
}

static int issue(long ttl) {
    jwt_t *j = NULL;
    char *out = NULL;
    long now = (long)time(NULL);
    if (jwt_new(&j) == 0 && jwt_add_grant(j, "sub", "65f000000000000000000001") == 0 &&
        jwt_add_grant(j, "username", "bench_player") == 0 && jwt_add_grant_int(j, "iat", now) == 0 &&
        jwt_add_grant_int(j, "exp", now + ttl) == 0 && jwt_set_alg(j, JWT_ALG_HS256, secret, secret_len) == 0)
        out = jwt_encode_str(j);
    jwt_free(j);
    if (!out) {
        fprintf(stderr, "hs256: cannot sign a token\n");
        return 1;
    }
    printf("%s\n", out);
    free(out);
    return 0;
}

int main(int argc, char **argv) {
    const char *s = getenv("JWT_SECRET");
    if (!s || strlen(s) < 32) {
        fprintf(stderr, "hs256: JWT_SECRET must be set, at least 32 bytes\n");
        return 2;
    }
    secret = (const unsigned char *)s;
    secret_len = (int)strlen(s);
    if (argc > 1 && strcmp(argv[1], "--issue") == 0) return issue(argc > 2 ? strtol(argv[2], NULL, 10) : 3600);
    return anchor_serve(argc, argv, handle);
}
