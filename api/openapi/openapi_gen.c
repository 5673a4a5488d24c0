/* openapi_gen.c - the build-time generator of the OpenAPI 3.1 document (make runs it; not part of
 * any binary): it reads the route table (api/routes.c, linked in), the request body schemas of
 * schemas/, the response schemas of schemas/responses/ and one documentation entry per route
 * (schemas/openapi/routes.json), and writes the document and a C file that embeds it together
 * with the reference page's assets. It refuses (exit 1, one line per problem) a table route
 * without documentation, documentation of a route the table does not have, and names of schemas
 * that do not exist, so the document cannot drift from the code. Single-threaded.
 *
 * Usage: openapi_gen SKELETON ROUTES_DOC SCHEMA_DIR RESPONSES_DIR OUT_JSON OUT_C [NAME=FILE ...]
 *   SKELETON       the document's fixed parts (info, servers, tags, components.securitySchemes)
 *   ROUTES_DOC     {"METHOD /pattern": {summary, description, tag, pathParams, parameters, responses}}
 *   NAME=FILE      extra files embedded beside the document (the reference page's assets) */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roles.h"
#include "routes.h"

static int problems;

static void problem(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("openapi_gen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    problems++;
}

static json_t *load(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j) problem("%s:%d: %s", path, e.line, e.text);
    return j;
}

/* Rewrites the $ref members of a schema file for its place in components.schemas: "#/$defs/x"
 * (inside the file) becomes "#/components/schemas/<name>/$defs/x", and "other.json" or
 * "other.json#/$defs/x" (a sibling file) becomes "#/components/schemas/other...". Collects the
 * sibling names in used. */
static void rewrite_refs(json_t *node, const char *name, json_t *used) {
    if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v) rewrite_refs(v, name, used);
        return;
    }
    if (!json_is_object(node)) return;
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v) {
        if (strcmp(k, "$ref") != 0 || !json_is_string(v)) {
            rewrite_refs(v, name, used);
            continue;
        }
        const char *ref = json_string_value(v);
        char out[512];
        if (ref[0] == '#') {
            snprintf(out, sizeof out, "#/components/schemas/%s%s", name, ref + 1);
        } else {
            const char *dot = strstr(ref, ".json");
            if (!dot) {
                problem("schema %s: $ref %s is neither local nor a sibling file", name, ref);
                continue;
            }
            char other[128];
            snprintf(other, sizeof other, "%.*s", (int)(dot - ref), ref);
            json_array_append_new(used, json_string(other));
            const char *frag = dot + 5;
            snprintf(out, sizeof out, "#/components/schemas/%s%s", other, frag[0] == '#' ? frag + 1 : "");
        }
        json_string_set(v, out);
    }
}

/* Adds schema file dir/name.json to components (once); false when it cannot be read. */
static bool add_schema(json_t *components, const char *dir, const char *name) {
    if (json_object_get(components, name)) return true;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    json_t *s = load(path);
    if (!s) return false;
    json_object_del(s, "$id");
    json_object_del(s, "$schema");
    json_t *used = json_array();
    rewrite_refs(s, name, used);
    json_object_set_new(components, name, s);
    size_t i;
    json_t *u;
    json_array_foreach(used, i, u) {
        if (!add_schema(components, dir, json_string_value(u)))
            problem("schema %s refers to a missing %s", name, json_string_value(u));
    }
    json_decref(used);
    return true;
}

static json_t *ref_to(const char *name) {
    char r[256];
    snprintf(r, sizeof r, "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", r);
}

/* ---- the generic answers of the gateway (api/gateway.c), derived from the route's properties ---- */

typedef struct answer {
    int status;
    json_t *codes; /* error codes, or an empty array for a success */
} answer_t;

static void add_codes(json_t *responses_codes, int status, const char *const *codes) {
    char key[8];
    snprintf(key, sizeof key, "%d", status);
    json_t *arr = json_object_get(responses_codes, key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(responses_codes, key, arr);
    }
    for (; *codes; codes++) {
        bool dup = false;
        size_t i;
        json_t *c;
        json_array_foreach(arr, i, c) dup = dup || strcmp(json_string_value(c), *codes) == 0;
        if (!dup) json_array_append_new(arr, json_string(*codes));
    }
}

/* status -> [codes] that the gateway itself may answer for route, before or around the worker. */
static json_t *generic_codes(const rp_api_route_t *r) {
    static const char *const every[] = {"INVALID_QUERY", "INVALID_IDEMPOTENCY_KEY", NULL};
    static const char *const conns[] = {"TOO_MANY_CONNECTIONS", NULL};
    static const char *const stopping[] = {"SHUTTING_DOWN", NULL};
    static const char *const limited[] = {"RATE_LIMITED", NULL};
    static const char *const logins[] = {"TOO_MANY_LOGINS", NULL};
    static const char *const token[] = {"UNAUTHORIZED",     "INVALID_TOKEN",   "TOKEN_EXPIRED",   "TOKEN_REVOKED",
                                        "ACCOUNT_DISABLED", "INVALID_API_KEY", "API_KEY_REVOKED", NULL};
    static const char *const roles[] = {"FORBIDDEN", NULL};
    static const char *const session[] = {"AUTH_UNAVAILABLE",  "UNAVAILABLE", "OVERLOADED", "WORKER_TIMEOUT",
                                          "STORE_UNAVAILABLE", "STORE_BUSY",  "STORE_FULL", NULL};
    static const char *const body[] = {"INVALID_JSON", "INCOMPLETE_BODY", NULL};
    static const char *const schema[] = {"VALIDATION_FAILED", NULL};
    static const char *const too_large[] = {"PAYLOAD_TOO_LARGE", NULL};
    static const char *const media[] = {"UNSUPPORTED_MEDIA_TYPE", NULL};
    static const char *const internal[] = {"INTERNAL", "STORE_ERROR", NULL};
    static const char *const bad_reply[] = {"BAD_REPLY", NULL};
    static const char *const down[] = {"UNAVAILABLE", "OVERLOADED", "STORE_UNAVAILABLE",
                                       "STORE_BUSY",  "STORE_FULL", NULL};
    static const char *const timeout[] = {"WORKER_TIMEOUT", NULL};
    static const char *const unmatched[] = {"NOT_FOUND", NULL};
    json_t *out = json_object();
    add_codes(out, 400, every);
    /* a parameter that is not UTF-8 once percent-decoded matches no route */
    if (strchr(r->pattern, '{')) add_codes(out, 404, unmatched);
    add_codes(out, 429, conns);
    add_codes(out, 503, stopping); /* an api process that is stopping refuses every request */
    if (r->component != RP_ROUTE_LOCAL) add_codes(out, 429, limited);
    if (r->component == RP_COMP_LOGIN && r->is_public) add_codes(out, 429, logins);
    if (!r->is_public) {
        add_codes(out, 401, token);
        add_codes(out, 503, session);
        if (r->roles) add_codes(out, 403, roles);
    }
    if (r->body != RP_BODY_NONE) {
        add_codes(out, 400, body);
        if (r->schema) add_codes(out, 400, schema);
        add_codes(out, 413, too_large);
        add_codes(out, 415, media);
    }
    if (r->component >= 0 || r->component == RP_ROUTE_EXPORT) {
        add_codes(out, 500, internal);
        add_codes(out, 502, bad_reply);
        add_codes(out, 503, down);
        add_codes(out, 504, timeout);
    }
    return out;
}

/* ---- one operation ---- */

static const char *status_text(int s) {
    switch (s) {
    case 400: return "The request is invalid.";
    case 401: return "No token, or a token that is invalid, expired or revoked.";
    case 403: return "The caller's roles do not allow this.";
    case 404: return "Not found.";
    case 409: return "Conflict with the current state.";
    case 413: return "The request body is larger than the limit.";
    case 415: return "The request body is not application/json.";
    case 422: return "Refused by a business rule.";
    case 429: return "Too many requests or connections (see Retry-After).";
    case 500: return "An unexpected failure.";
    case 502: return "A worker answered something unusable.";
    case 503: return "A dependency is unavailable or overloaded, or this api process is stopping (see Retry-After).";
    case 504: return "A worker did not answer in time.";
    default: return "Error.";
    }
}

/* The schema of an error answer whose code is one of codes: the shared error schema, narrowed. */
static json_t *error_schema(const char *schema, const json_t *codes) {
    return json_pack("{s:[o], s:{s:{s:{s:{s:O}}}}}", "allOf", ref_to(schema), "properties", "error", "properties",
                     "code", "enum", codes);
}

static json_t *codes_text(const char *lead, const json_t *codes) {
    size_t n = strlen(lead) + 16, i;
    json_t *c;
    json_array_foreach(codes, i, c) n += strlen(json_string_value(c)) + 4;
    char *s = malloc(n);
    size_t used = (size_t)snprintf(s, n, "%s Codes:", lead);
    json_array_foreach(codes, i, c) used +=
        (size_t)snprintf(s + used, n - used, "%s `%s`", i ? "," : "", json_string_value(c));
    snprintf(s + used, n - used, ".");
    json_t *out = json_string(s);
    free(s);
    return out;
}

static const char *role_list(const rp_api_route_t *r, char *buf, size_t cap, json_t *x_roles) {
    if (r->is_public) {
        json_array_append_new(x_roles, json_string("PUBLIC"));
        snprintf(buf, cap, "public (no token)");
        return buf;
    }
    if (r->roles == 0) {
        json_array_append_new(x_roles, json_string("ANY"));
        snprintf(buf, cap, "any signed-in account");
        return buf;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned bit = 1; bit <= RP_ROLE_ALL; bit <<= 1) {
        if (!(r->roles & bit)) continue;
        json_array_append_new(x_roles, json_string(rp_role_name(bit)));
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", rp_role_name(bit));
        if (used >= cap) break;
    }
    return buf;
}

static json_t *operation_id(const rp_api_route_t *r) {
    char id[256];
    size_t n = 0;
    for (const char *m = r->method; *m && n < sizeof id - 1; m++)
        id[n++] = (char)tolower((unsigned char)*m);
    bool upper = true, by = false;
    for (const char *p = r->pattern; *p && n < sizeof id - 4; p++) {
        if (*p == '/' || *p == '-' || *p == '.') {
            upper = true;
        } else if (*p == '{') {
            memcpy(id + n, "By", 2);
            n += 2;
            upper = by = true;
        } else if (*p == '}') {
            upper = true;
        } else {
            id[n++] = upper ? (char)toupper((unsigned char)*p) : *p;
            upper = false;
        }
    }
    (void)by;
    if (strcmp(r->pattern, "/") == 0 && n < sizeof id - 5) {
        memcpy(id + n, "Root", 4);
        n += 4;
    }
    id[n] = '\0';
    return json_string(id);
}

/* The parameters: one per {name} of the pattern (pathParams gives descriptions), then the
 * documentation's own (query, header). */
static json_t *parameters(const rp_api_route_t *r, const char *key, const json_t *doc) {
    json_t *out = json_array();
    const json_t *path_doc = json_object_get(doc, "pathParams");
    for (const char *p = strchr(r->pattern, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        const char *d = json_string_value(json_object_get(path_doc, name));
        json_array_append_new(out, json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", name, "in", "path", "required", 1,
                                             "description", d ? d : "a 24-hex id", "schema", "type", "string"));
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)path_doc, k, v) {
        char brace[80];
        snprintf(brace, sizeof brace, "{%s}", k);
        if (!strstr(r->pattern, brace)) problem("%s: pathParams names %s, which the pattern does not have", key, k);
    }
    size_t i;
    json_array_foreach(json_object_get(doc, "parameters"), i, v) json_array_append(out, v);
    return out;
}

static json_t *content_of(const char *key, const json_t *resp, json_t *schema_ok_names) {
    const json_t *media = json_object_get(resp, "media");
    if (media) return json_deep_copy(media);
    const char *schema = json_string_value(json_object_get(resp, "schema"));
    if (!schema) return NULL;
    if (!json_object_get(schema_ok_names, schema)) {
        problem("%s: response schema %s does not exist in schemas/responses/", key, schema);
        return NULL;
    }
    return json_pack("{s:{s:o}}", "application/json", "schema", ref_to(schema));
}

static json_t *operation(const rp_api_route_t *r, const char *key, const json_t *doc, json_t *responses_schemas) {
    json_t *op = json_object();
    char who[128];
    json_t *x_roles = json_array();
    role_list(r, who, sizeof who, x_roles);
    const char *summary = json_string_value(json_object_get(doc, "summary"));
    const char *desc = json_string_value(json_object_get(doc, "description"));
    if (!summary) problem("%s: no summary", key);
    const char *tag = json_string_value(json_object_get(doc, "tag"));
    char first[64] = "gateway";
    if (!tag && r->pattern[1]) {
        snprintf(first, sizeof first, "%.*s", (int)strcspn(r->pattern + 1, "/"), r->pattern + 1);
        tag = first;
    } else if (!tag) {
        tag = first;
    }
    json_object_set_new(op, "tags", json_pack("[s]", tag));
    json_object_set_new(op, "summary", json_string(summary ? summary : ""));
    size_t dn = (desc ? strlen(desc) : 0) + strlen(who) + 64;
    char *full = malloc(dn);
    snprintf(full, dn, "%s%sRoles: %s.", desc ? desc : "", desc ? "\n\n" : "", who);
    json_object_set_new(op, "description", json_string(full));
    free(full);
    json_object_set_new(op, "operationId", operation_id(r));
    json_object_set_new(op, "x-roles", x_roles);
    json_object_set_new(op, "security", r->is_public ? json_array() : json_pack("[{s:[]}]", "bearerAuth"));
    json_t *params = parameters(r, key, doc);
    if (json_array_size(params))
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);
    if (r->body != RP_BODY_NONE) {
        json_t *schema = r->schema ? ref_to(r->schema) : json_pack("{s:s}", "type", "object");
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:{s:{s:o}}}", "required", r->body == RP_BODY_REQUIRED, "content",
                                      "application/json", "schema", schema));
    }
    /* the answers: the documentation's, with the gateway's generic error codes merged in */
    json_t *codes = generic_codes(r);
    const json_t *documented = json_object_get(doc, "responses");
    const char *status;
    json_t *resp;
    bool has_success = false;
    json_object_foreach((json_t *)documented, status, resp) {
        int s = atoi(status);
        if (s < 100 || s > 599 || strlen(status) != 3) problem("%s: %s is not an HTTP status", key, status);
        if (s / 100 == 2) has_success = true;
        json_t *c = json_object_get(resp, "codes");
        if (c && s < 400) problem("%s: %s has error codes but is not an error status", key, status);
        size_t i;
        json_t *v;
        json_array_foreach(c, i, v) {
            const char *one[] = {json_string_value(v), NULL};
            if (!one[0]) problem("%s: %s: codes must be strings", key, status);
            add_codes(codes, s, one);
        }
    }
    if (!has_success) problem("%s: no success (2xx) answer documented", key);
    json_t *out = json_object();
    json_object_foreach((json_t *)documented, status, resp) {
        json_t *o = json_object();
        const char *d = json_string_value(json_object_get(resp, "description"));
        json_t *c = json_object_get(codes, status);
        json_t *content = NULL;
        if (c) {
            const char *schema = json_string_value(json_object_get(resp, "schema"));
            content = json_pack("{s:{s:o}}", "application/json", "schema", error_schema(schema ? schema : "error", c));
            json_object_set_new(o, "description", codes_text(d ? d : status_text(atoi(status)), c));
            json_object_set(o, "x-error-codes", c);
        } else {
            content = content_of(key, resp, responses_schemas);
            json_object_set_new(o, "description", json_string(d ? d : "Success."));
        }
        if (content) json_object_set_new(o, "content", content);
        json_t *h = json_object_get(resp, "headers");
        if (h) json_object_set(o, "headers", h);
        json_object_set_new(out, status, o);
    }
    json_object_foreach(codes, status, resp) {
        if (json_object_get(out, status)) continue;
        int s = atoi(status);
        json_t *o =
            json_pack("{s:o, s:O, s:{s:{s:o}}}", "description", codes_text(status_text(s), resp), "x-error-codes", resp,
                      "content", "application/json", "schema", error_schema("error", resp));
        if (s == 429 || s == 503)
            json_object_set_new(o, "headers",
                                json_pack("{s:{s:s}}", "Retry-After", "$ref", "#/components/headers/RetryAfter"));
        json_object_set_new(out, status, o);
    }
    json_decref(codes);
    /* statuses in ascending order, as readers expect */
    json_t *sorted = json_object();
    for (int s = 100; s < 600; s++) {
        char k[8];
        snprintf(k, sizeof k, "%d", s);
        json_t *v = json_object_get(out, k);
        if (v) json_object_set(sorted, k, v);
    }
    json_decref(out);
    json_object_set_new(op, "responses", sorted);
    const char *known[] = {"summary", "description", "tag", "pathParams", "parameters", "responses", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v) {
        bool ok = false;
        for (const char **q = known; *q; q++)
            ok = ok || strcmp(*q, k) == 0;
        if (!ok) problem("%s: unknown member %s", key, k);
    }
    return op;
}

/* ---- output ---- */

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const char *media_type(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (strcmp(dot, ".json") == 0) return "application/json";
    if (strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
    return "application/octet-stream";
}

static void emit_bytes(FILE *out, int index, const unsigned char *p, size_t n) {
    fprintf(out, "static const unsigned char f%d[] = {", index);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s0x%02x,", i % 16 ? "" : "\n    ", p[i]);
    fprintf(out, "\n    0x00};\n");
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    *n = 0;
    if (!f) return NULL;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    *n = len;
    return buf;
}

static bool write_c(const char *path, const char *doc, size_t doc_len, int nassets, char **assets) {
    FILE *out = fopen(path, "w");
    if (!out) return false;
    fprintf(out, "/* Generated by api/openapi/openapi_gen.c: do not edit. */\n#include \"apidoc.h\"\n");
    const char *names[64];
    const char *types[64];
    size_t lens[64];
    uint64_t tags[64];
    int n = 0;
    emit_bytes(out, n, (const unsigned char *)doc, doc_len);
    names[n] = "openapi.json";
    types[n] = media_type("openapi.json");
    lens[n] = doc_len;
    tags[n++] = fnv1a((const unsigned char *)doc, doc_len);
    for (int i = 0; i < nassets && n < 64; i++) {
        char *eq = strchr(assets[i], '=');
        size_t len;
        if (!eq) {
            problem("asset %s: expected NAME=FILE", assets[i]);
            continue;
        }
        *eq = '\0';
        unsigned char *bytes = read_all(eq + 1, &len);
        if (!bytes) {
            problem("asset %s: cannot read", eq + 1);
            continue;
        }
        emit_bytes(out, n, bytes, len);
        names[n] = assets[i];
        types[n] = media_type(assets[i]);
        lens[n] = len;
        tags[n++] = fnv1a(bytes, len);
        free(bytes);
    }
    fprintf(out, "const rp_apidoc_file_t rp_apidoc_files[] = {\n");
    for (int i = 0; i < n; i++)
        fprintf(out, "    {\"%s\", \"%s\", (const char *)f%d, %zu, \"\\\"%016llx\\\"\"},\n", names[i], types[i], i,
                lens[i], (unsigned long long)tags[i]);
    fprintf(out, "    {0, 0, 0, 0, 0}};\n");
    return fclose(out) == 0;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s SKELETON ROUTES_DOC SCHEMA_DIR RESPONSES_DIR OUT_JSON OUT_C [NAME=FILE ...]\n",
                argv[0]);
        return 2;
    }
    json_t *docdoc = load(argv[1]), *routes_doc = load(argv[2]);
    if (!docdoc || !routes_doc) return 1;
    json_t *components = json_object_get(docdoc, "components");
    if (!components) {
        components = json_object();
        json_object_set_new(docdoc, "components", components);
    }
    json_t *schemas = json_object();
    json_object_set_new(components, "schemas", schemas);
    /* every response schema that the documentation names, and the shared error schema */
    json_t *response_names = json_object();
    const char *key;
    json_t *entry;
    json_object_foreach(routes_doc, key, entry) {
        const char *st;
        json_t *resp;
        json_object_foreach(json_object_get(entry, "responses"), st, resp) {
            const char *s = json_string_value(json_object_get(resp, "schema"));
            if (s && !json_object_get(response_names, s) && add_schema(schemas, argv[4], s))
                json_object_set_new(response_names, s, json_true());
        }
    }
    if (add_schema(schemas, argv[4], "error")) json_object_set_new(response_names, "error", json_true());
    size_t n;
    const rp_api_route_t *table = rp_routes_table(&n);
    json_t *paths = json_object(), *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        const rp_api_route_t *r = &table[i];
        char k[256], method[16];
        snprintf(k, sizeof k, "%s %s", r->method, r->pattern);
        json_t *doc = json_object_get(routes_doc, k);
        if (!doc) {
            problem("route %s has no documentation in %s: add an entry \"%s\"", k, argv[2], k);
            continue;
        }
        json_object_set_new(seen, k, json_true());
        if (r->schema && !add_schema(schemas, argv[3], r->schema))
            problem("route %s: its body schema %s does not exist", k, r->schema);
        json_t *item = json_object_get(paths, r->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, r->pattern, item);
        }
        size_t m = 0;
        for (; r->method[m] && m < sizeof method - 1; m++)
            method[m] = (char)tolower((unsigned char)r->method[m]);
        method[m] = '\0';
        json_object_set_new(item, method, operation(r, k, doc, response_names));
    }
    json_object_foreach(routes_doc, key, entry) {
        if (!json_object_get(seen, key)) problem("%s documents %s, which the route table does not have", argv[2], key);
    }
    json_object_set_new(docdoc, "paths", paths);
    json_decref(seen);
    json_decref(response_names);
    if (problems) {
        fprintf(stderr, "openapi_gen: %d problem(s); no document written\n", problems);
        return 1;
    }
    char *text = json_dumps(docdoc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    size_t len = strlen(text);
    FILE *f = fopen(argv[5], "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "openapi_gen: cannot write %s\n", argv[5]);
        return 1;
    }
    if (!write_c(argv[6], text, len, argc - 7, argv + 7) || problems) {
        fprintf(stderr, "openapi_gen: cannot write %s\n", argv[6]);
        remove(argv[6]);
        return 1;
    }
    free(text);
    json_decref(docdoc);
    json_decref(routes_doc);
    return 0;
}
