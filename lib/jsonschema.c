/* jsonschema.c - JSON Schema subset compiled to a tree of nodes (see jsonschema.h). $refs are
 * resolved to nodes through a cache keyed by JSON pointer, so recursive schemas compile to a
 * finite graph; validation walks the graph with a depth bound. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "jsonschema.h"

#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define MAX_DEPTH 64
#define MAX_DETAILS 50

enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_NUMBER = 16, T_STRING = 32, T_INTEGER = 64 };

typedef struct node node_t;

typedef struct prop {
    char *name;
    node_t *schema;
} prop_t;

struct node {
    bool is_bool, bool_value;
    unsigned types; /* 0 = any */
    prop_t *props;
    size_t nprops;
    char **required;
    size_t nrequired;
    bool additional_set;
    node_t *additional; /* NULL with additional_set = false schema */
    json_t *enum_values, *const_value;
    long min_len, max_len, min_items, max_items, min_props, max_props; /* -1 = none */
    pcre2_code *pattern;
    char *pattern_src;
    bool datetime;
    bool has_min, has_max, has_xmin, has_xmax;
    double minimum, maximum, xmin, xmax;
    node_t *items;
    bool unique;
    node_t **all, **any, **one;
    size_t nall, nany, none;
    node_t *not_;
    char *ref;
    node_t *ref_node;
    node_t *next_alloc; /* every node, for freeing */
};

typedef struct cache_entry {
    char *pointer;
    node_t *node;
} cache_entry_t;

struct rp_schema {
    json_t *doc;
    node_t *root;
    node_t *all_nodes;
    cache_entry_t *cache;
    size_t ncache, capcache;
};

typedef struct cctx {
    rp_schema_t *s;
    rp_err_t *err;
    bool failed;
} cctx_t;

static void cfail(cctx_t *c, const char *ptr, const char *why) {
    if (!c->failed) rp_err_set(c->err, RP_ERR_CONFIG, "SCHEMA_INVALID", "schema at '%s': %s", ptr, why);
    c->failed = true;
}

/* ok; when not, the compilation fails saying why (a keyword with a value of the wrong kind). */
static bool need(cctx_t *c, bool ok, const char *ptr, const char *why) {
    if (!ok) cfail(c, ptr, why);
    return ok;
}

static node_t *new_node(rp_schema_t *s) {
    node_t *n = rp_calloc(1, sizeof *n);
    n->min_len = n->max_len = n->min_items = n->max_items = n->min_props = n->max_props = -1;
    n->next_alloc = s->all_nodes;
    s->all_nodes = n;
    return n;
}

static void cache_put(rp_schema_t *s, const char *ptr, node_t *n) {
    if (s->ncache == s->capcache) {
        s->capcache = s->capcache ? s->capcache * 2 : 32;
        s->cache = rp_realloc(s->cache, s->capcache * sizeof *s->cache);
    }
    s->cache[s->ncache].pointer = rp_strdup(ptr);
    s->cache[s->ncache].node = n;
    s->ncache++;
}

static node_t *cache_get(rp_schema_t *s, const char *ptr) {
    for (size_t i = 0; i < s->ncache; i++)
        if (strcmp(s->cache[i].pointer, ptr) == 0) return s->cache[i].node;
    return NULL;
}

static node_t *compile(cctx_t *c, json_t *js, const char *ptr);

/* Appends one pointer token, escaping ~ and / as RFC 6901 says. */
static char *ptr_join(const char *base, const char *token) {
    size_t n = strlen(base), t = strlen(token), extra = 0;
    for (size_t i = 0; i < t; i++)
        extra += token[i] == '~' || token[i] == '/';
    char *out = rp_malloc(n + t + extra + 2), *o = out;
    memcpy(o, base, n);
    o += n;
    *o++ = '/';
    for (size_t i = 0; i < t; i++) {
        if (token[i] == '~')
            *o++ = '~', *o++ = '0';
        else if (token[i] == '/')
            *o++ = '~', *o++ = '1';
        else
            *o++ = token[i];
    }
    *o = '\0';
    return out;
}

static char *ptr_index(const char *base, size_t i) {
    char tok[32];
    snprintf(tok, sizeof tok, "%zu", i);
    return ptr_join(base, tok);
}

static node_t *compile_child(cctx_t *c, json_t *js, const char *ptr, const char *key) {
    char *p = ptr_join(ptr, key);
    node_t *n = compile(c, js, p);
    free(p);
    return n;
}

/* The value of a JSON number (integer or real) as a double; false for anything else. */
static bool number_of(const json_t *v, double *out) {
    if (json_is_integer(v))
        *out = (double)json_integer_value(v);
    else if (json_is_real(v))
        *out = json_real_value(v);
    else
        return false;
    return true;
}

static bool nonneg_int(const json_t *v, long *out) {
    double d;
    if (!number_of(v, &d) || d < 0 || d != floor(d) || d > 1e15) return false;
    *out = (long)d;
    return true;
}

static node_t **compile_list(cctx_t *c, json_t *arr, const char *ptr, const char *key, size_t *n) {
    *n = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        cfail(c, ptr, "allOf/anyOf/oneOf must be a non-empty array");
        return NULL;
    }
    char *base = ptr_join(ptr, key);
    node_t **list = rp_calloc(json_array_size(arr), sizeof *list);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        char *p = ptr_index(base, i);
        list[(*n)++] = compile(c, e, p);
        free(p);
    }
    free(base);
    return list;
}

static unsigned type_bit(const char *t) {
    static const struct {
        const char *name;
        unsigned bit;
    } map[] = {{"null", T_NULL},     {"boolean", T_BOOL},  {"object", T_OBJECT},  {"array", T_ARRAY},
               {"number", T_NUMBER}, {"string", T_STRING}, {"integer", T_INTEGER}};
    for (size_t i = 0; t && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, t) == 0) return map[i].bit;
    return 0;
}

static void compile_keyword(cctx_t *c, node_t *n, const char *k, json_t *v, const char *ptr) {
    static const char *const annotations[] = {"$schema",  "$id",   "$comment",    "title",   "description", "default",
                                              "examples", "$defs", "definitions", "$anchor", NULL};
    for (size_t i = 0; annotations[i]; i++)
        if (strcmp(k, annotations[i]) == 0) return;
    if (strcmp(k, "type") == 0) {
        if (json_is_string(v)) {
            n->types = type_bit(json_string_value(v));
            if (!n->types) cfail(c, ptr, "unknown type");
        } else if (json_is_array(v)) {
            size_t i;
            json_t *t;
            json_array_foreach(v, i, t) {
                unsigned b = type_bit(json_string_value(t));
                if (!b) cfail(c, ptr, "unknown type");
                n->types |= b;
            }
        } else {
            cfail(c, ptr, "type must be a string or an array");
        }
    } else if (strcmp(k, "properties") == 0) {
        if (!need(c, json_is_object(v), ptr, "properties must be an object")) return;
        char *base = ptr_join(ptr, "properties");
        n->props = rp_calloc(json_object_size(v) + 1, sizeof *n->props);
        const char *name;
        json_t *sub;
        json_object_foreach(v, name, sub) {
            char *p = ptr_join(base, name);
            n->props[n->nprops].name = rp_strdup(name);
            n->props[n->nprops].schema = compile(c, sub, p);
            n->nprops++;
            free(p);
        }
        free(base);
    } else if (strcmp(k, "required") == 0) {
        if (!need(c, json_is_array(v), ptr, "required must be an array")) return;
        n->required = rp_calloc(json_array_size(v) + 1, sizeof *n->required);
        size_t i;
        json_t *r;
        json_array_foreach(v, i, r) {
            if (!need(c, json_is_string(r), ptr, "required must list strings")) return;
            n->required[n->nrequired++] = rp_strdup(json_string_value(r));
        }
    } else if (strcmp(k, "additionalProperties") == 0) {
        n->additional_set = true;
        n->additional = compile_child(c, v, ptr, "additionalProperties");
    } else if (strcmp(k, "enum") == 0) {
        if (!need(c, json_is_array(v), ptr, "enum must be an array")) return;
        n->enum_values = json_incref(v);
    } else if (strcmp(k, "const") == 0) {
        n->const_value = json_incref(v);
    } else if (strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0 || strcmp(k, "minItems") == 0 ||
               strcmp(k, "maxItems") == 0 || strcmp(k, "minProperties") == 0 || strcmp(k, "maxProperties") == 0) {
        long x;
        if (!need(c, nonneg_int(v, &x), ptr, "length limits must be non-negative integers")) return;
        if (k[1] == 'i' && k[3] == 'L')
            n->min_len = x;
        else if (k[1] == 'a' && k[3] == 'L')
            n->max_len = x;
        else if (k[1] == 'i' && k[3] == 'I')
            n->min_items = x;
        else if (k[1] == 'a' && k[3] == 'I')
            n->max_items = x;
        else if (k[1] == 'i')
            n->min_props = x;
        else
            n->max_props = x;
    } else if (strcmp(k, "pattern") == 0) {
        int ec;
        PCRE2_SIZE off;
        if (!need(c, json_is_string(v), ptr, "pattern must be a string")) return;
        n->pattern = pcre2_compile((PCRE2_SPTR)json_string_value(v), json_string_length(v), PCRE2_UTF | PCRE2_UCP, &ec,
                                   &off, NULL);
        if (!need(c, n->pattern != NULL, ptr, "pattern does not compile")) return;
        n->pattern_src = rp_strdup(json_string_value(v));
    } else if (strcmp(k, "format") == 0) {
        if (!need(c, json_is_string(v), ptr, "format must be a string")) return;
        n->datetime = strcmp(json_string_value(v), "date-time") == 0; /* other formats: annotations */
    } else if (strcmp(k, "minimum") == 0) {
        if (!(n->has_min = number_of(v, &n->minimum))) cfail(c, ptr, "minimum must be a number");
    } else if (strcmp(k, "maximum") == 0) {
        if (!(n->has_max = number_of(v, &n->maximum))) cfail(c, ptr, "maximum must be a number");
    } else if (strcmp(k, "exclusiveMinimum") == 0) {
        if (!(n->has_xmin = number_of(v, &n->xmin))) cfail(c, ptr, "exclusiveMinimum must be a number");
    } else if (strcmp(k, "exclusiveMaximum") == 0) {
        if (!(n->has_xmax = number_of(v, &n->xmax))) cfail(c, ptr, "exclusiveMaximum must be a number");
    } else if (strcmp(k, "items") == 0) {
        if (!need(c, json_is_object(v) || json_is_boolean(v), ptr,
                  "items must be a schema (2020-12: use prefixItems for tuples)"))
            return;
        n->items = compile_child(c, v, ptr, "items");
    } else if (strcmp(k, "uniqueItems") == 0) {
        if (!need(c, json_is_boolean(v), ptr, "uniqueItems must be a boolean")) return;
        n->unique = json_is_true(v);
    } else if (strcmp(k, "allOf") == 0) {
        n->all = compile_list(c, v, ptr, "allOf", &n->nall);
    } else if (strcmp(k, "anyOf") == 0) {
        n->any = compile_list(c, v, ptr, "anyOf", &n->nany);
    } else if (strcmp(k, "oneOf") == 0) {
        n->one = compile_list(c, v, ptr, "oneOf", &n->none);
    } else if (strcmp(k, "not") == 0) {
        n->not_ = compile_child(c, v, ptr, "not");
    } else if (strcmp(k, "$ref") == 0) {
        if (!need(c, json_is_string(v) && json_string_value(v)[0] == '#', ptr,
                  "only local $refs (\"#...\") are supported"))
            return;
        n->ref = rp_strdup(json_string_value(v));
    } else {
        char why[160];
        snprintf(why, sizeof why, "unsupported keyword '%.100s'", k);
        cfail(c, ptr, why);
    }
}

static node_t *compile(cctx_t *c, json_t *js, const char *ptr) {
    node_t *cached = cache_get(c->s, ptr);
    if (cached) return cached;
    node_t *n = new_node(c->s);
    cache_put(c->s, ptr, n);
    if (json_is_boolean(js)) {
        n->is_bool = true;
        n->bool_value = json_is_true(js);
        return n;
    }
    if (!json_is_object(js)) {
        cfail(c, ptr, "a schema must be an object or a boolean");
        return n;
    }
    const char *k;
    json_t *v;
    json_object_foreach(js, k, v) compile_keyword(c, n, k, v, ptr);
    return n;
}

/* Decodes a URI fragment pointer ("#/a/b~1c%25") and finds its target in doc. */
static json_t *resolve(json_t *doc, const char *ref, char *canon, size_t cap) {
    const char *p = ref + 1;
    char dec[1024];
    size_t d = 0;
    for (; *p && d + 1 < sizeof dec; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            dec[d++] = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            dec[d++] = *p;
        }
    }
    dec[d] = '\0';
    snprintf(canon, cap, "%s", dec);
    json_t *cur = doc;
    const char *s = dec;
    if (*s == '\0') return cur;
    if (*s != '/') return NULL;
    while (*s == '/' && cur) {
        s++;
        char tok[512];
        size_t t = 0;
        while (*s && *s != '/' && t + 1 < sizeof tok) {
            if (*s == '~' && s[1] == '0')
                tok[t++] = '~', s += 2;
            else if (*s == '~' && s[1] == '1')
                tok[t++] = '/', s += 2;
            else
                tok[t++] = *s++;
        }
        tok[t] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            long idx = strtol(tok, &end, 10);
            cur = (*end || idx < 0) ? NULL : json_array_get(cur, (size_t)idx);
        } else {
            cur = NULL;
        }
    }
    return cur;
}

static void link_refs(cctx_t *c) {
    /* compiling a ref target may add nodes: loop until every ref is linked */
    bool changed = true;
    while (changed && !c->failed) {
        changed = false;
        for (node_t *n = c->s->all_nodes; n && !c->failed; n = n->next_alloc) {
            if (!n->ref || n->ref_node) continue;
            char canon[1024];
            json_t *target = resolve(c->s->doc, n->ref, canon, sizeof canon);
            if (!target) {
                cfail(c, n->ref, "$ref does not resolve");
                break;
            }
            n->ref_node = compile(c, target, canon);
            changed = true;
        }
    }
}

static void free_node(node_t *n) {
    for (size_t i = 0; i < n->nprops; i++)
        free(n->props[i].name);
    free(n->props);
    for (size_t i = 0; i < n->nrequired; i++)
        free(n->required[i]);
    free(n->required);
    json_decref(n->enum_values);
    json_decref(n->const_value);
    pcre2_code_free(n->pattern);
    free(n->pattern_src);
    free(n->all);
    free(n->any);
    free(n->one);
    free(n->ref);
    free(n);
}

void rp_schema_free(rp_schema_t *s) {
    if (!s) return;
    for (node_t *n = s->all_nodes, *next; n; n = next) {
        next = n->next_alloc;
        free_node(n);
    }
    for (size_t i = 0; i < s->ncache; i++)
        free(s->cache[i].pointer);
    free(s->cache);
    json_decref(s->doc);
    free(s);
}

rp_schema_t *rp_schema_compile(json_t *doc, rp_err_t *err) {
    rp_schema_t *s = rp_calloc(1, sizeof *s);
    s->doc = json_incref(doc);
    cctx_t c = {s, err, false};
    s->root = compile(&c, doc, "");
    link_refs(&c);
    if (c.failed) {
        rp_schema_free(s);
        return NULL;
    }
    return s;
}

/* ---- validation ---- */

typedef struct vctx {
    json_t *details; /* NULL = just decide */
    bool overflow;
} vctx_t;

static void report(vctx_t *v, const char *ptr, const char *reason) {
    if (!v->details) return;
    size_t i;
    json_t *d;
    json_array_foreach(v->details, i, d) {
        if (strcmp(json_string_value(json_object_get(d, "field")), ptr) == 0 &&
            strcmp(json_string_value(json_object_get(d, "reason")), reason) == 0)
            return;
    }
    if (json_array_size(v->details) >= MAX_DETAILS) return;
    json_t *f = json_string(ptr);
    if (!f) f = json_string("(field name is not valid UTF-8)");
    json_array_append_new(v->details, json_pack("{s:o, s:s}", "field", f, "reason", reason));
}

/* Checks an array's or object's count against its limits (-1: none), reporting "has too few
 * <what>" / "has too many <what>"; false when out of them. */
static bool count_within(vctx_t *v, const char *ptr, size_t count, long lo, long hi, const char *what) {
    char why[48];
    bool ok = true;
    if (lo >= 0 && count < (size_t)lo) {
        snprintf(why, sizeof why, "has too few %s", what);
        report(v, ptr, why);
        ok = false;
    }
    if (hi >= 0 && count > (size_t)hi) {
        snprintf(why, sizeof why, "has too many %s", what);
        report(v, ptr, why);
        ok = false;
    }
    return ok;
}

/* JSON equality as the spec defines it: numbers by value, objects regardless of key order. */
static bool equal(const json_t *a, const json_t *b) {
    double x, y;
    if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
    if (number_of(a, &x) && number_of(b, &y)) return x == y;
    if (json_typeof(a) != json_typeof(b)) return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!equal(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !equal(v, w)) return false;
        }
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static bool type_ok(unsigned types, const json_t *j) {
    if (!types) return true;
    switch (json_typeof(j)) {
    case JSON_NULL: return types & T_NULL;
    case JSON_TRUE:
    case JSON_FALSE: return types & T_BOOL;
    case JSON_OBJECT: return types & T_OBJECT;
    case JSON_ARRAY: return types & T_ARRAY;
    case JSON_STRING: return types & T_STRING;
    case JSON_INTEGER: return types & (T_NUMBER | T_INTEGER);
    case JSON_REAL: {
        double d = json_real_value(j);
        return (types & T_NUMBER) || ((types & T_INTEGER) && d == floor(d) && isfinite(d));
    }
    }
    return false;
}

static const char *type_reason(unsigned types) {
    if (types == T_STRING) return "must be a string";
    if (types == T_INTEGER) return "must be an integer";
    if (types == T_NUMBER || types == (T_NUMBER | T_INTEGER)) return "must be a number";
    if (types == T_OBJECT) return "must be an object";
    if (types == T_ARRAY) return "must be an array";
    if (types == T_BOOL) return "must be a boolean";
    if (types == T_NULL) return "must be null";
    return "has the wrong type";
}

static size_t utf8_len(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + s[i] - '0';
    }
    *out = v;
    return true;
}

bool rp_schema_is_datetime(const char *s, size_t len) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return false;
    if (!digits(s, 4, &Y) || !digits(s + 5, 2, &M) || !digits(s + 8, 2, &D) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &m) || !digits(s + 17, 2, &sec))
        return false;
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] + (M == 2 && leap) || h > 23 || m > 59 || sec > 60) return false;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start) return false;
    }
    if (i >= len) return false;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            return false;
        sign = s[i] == '+' ? 1 : -1;
        i += 6;
    } else {
        return false;
    }
    if (i != len) return false;
    if (sec == 60) {
        /* a leap second exists only at 23:59:60 UTC */
        int utc_min = ((h * 60 + m - sign * (oh * 60 + om)) % 1440 + 1440) % 1440;
        if (utc_min != 23 * 60 + 59) return false;
    }
    return true;
}

static bool check(const node_t *n, const json_t *j, const char *ptr, int depth, vctx_t *v);

/* Validates without collecting details (for anyOf/oneOf/not branches). */
static bool quiet(const node_t *n, const json_t *j, const char *ptr, int depth) {
    vctx_t q = {NULL, false};
    return check(n, j, ptr, depth, &q);
}

static bool check(const node_t *n, const json_t *j, const char *ptr, int depth, vctx_t *v) {
    bool ok = true;
    if (depth > MAX_DEPTH) {
        report(v, ptr, "nesting too deep");
        return false;
    }
    if (n->is_bool) {
        if (!n->bool_value) report(v, ptr, "is not allowed");
        return n->bool_value;
    }
    /* 2020-12: $ref applies alongside its sibling keywords */
    if (n->ref_node && !check(n->ref_node, j, ptr, depth + 1, v)) ok = false; /* depth bounds ref cycles */
    if (!type_ok(n->types, j)) {
        report(v, ptr, type_reason(n->types));
        return false;
    }
    if (n->const_value && !equal(n->const_value, j)) {
        report(v, ptr, "must equal the allowed constant");
        ok = false;
    }
    if (n->enum_values) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(n->enum_values, i, e) found = found || equal(e, j);
        if (!found) {
            report(v, ptr, "must be one of the allowed values");
            ok = false;
        }
    }
    if (json_is_string(j)) {
        size_t len = utf8_len(json_string_value(j), json_string_length(j));
        char why[64];
        if (n->min_len >= 0 && len < (size_t)n->min_len) {
            snprintf(why, sizeof why, "must be at least %ld characters", n->min_len);
            report(v, ptr, why);
            ok = false;
        }
        if (n->max_len >= 0 && len > (size_t)n->max_len) {
            snprintf(why, sizeof why, "must be at most %ld characters", n->max_len);
            report(v, ptr, why);
            ok = false;
        }
        if (n->pattern) {
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(n->pattern, NULL);
            pcre2_match_context *mc = pcre2_match_context_create(NULL);
            pcre2_set_match_limit(mc, 100000);
            pcre2_set_depth_limit(mc, 1000);
            int rc = pcre2_match(n->pattern, (PCRE2_SPTR)json_string_value(j), json_string_length(j), 0, 0, md, mc);
            pcre2_match_context_free(mc);
            pcre2_match_data_free(md);
            if (rc < 0) {
                report(v, ptr, "does not match the required pattern");
                ok = false;
            }
        }
        if (n->datetime && !rp_schema_is_datetime(json_string_value(j), json_string_length(j))) {
            report(v, ptr, "must be an RFC 3339 date-time");
            ok = false;
        }
    }
    double d;
    if (number_of(j, &d)) {
        char why[80];
        if (n->has_min && d < n->minimum) {
            snprintf(why, sizeof why, "must be >= %g", n->minimum);
            report(v, ptr, why);
            ok = false;
        }
        if (n->has_max && d > n->maximum) {
            snprintf(why, sizeof why, "must be <= %g", n->maximum);
            report(v, ptr, why);
            ok = false;
        }
        if (n->has_xmin && d <= n->xmin) {
            snprintf(why, sizeof why, "must be > %g", n->xmin);
            report(v, ptr, why);
            ok = false;
        }
        if (n->has_xmax && d >= n->xmax) {
            snprintf(why, sizeof why, "must be < %g", n->xmax);
            report(v, ptr, why);
            ok = false;
        }
    }
    if (json_is_array(j)) {
        size_t count = json_array_size(j), i;
        json_t *e;
        if (!count_within(v, ptr, count, n->min_items, n->max_items, "items")) ok = false;
        if (n->unique) {
            for (size_t a = 0; a < count && ok; a++)
                for (size_t b = a + 1; b < count; b++)
                    if (equal(json_array_get(j, a), json_array_get(j, b))) {
                        report(v, ptr, "must not contain duplicate items");
                        ok = false;
                        break;
                    }
        }
        if (n->items) {
            json_array_foreach(j, i, e) {
                char *p = ptr_index(ptr, i);
                if (!check(n->items, e, p, depth + 1, v)) ok = false;
                free(p);
                if (!ok && !v->details) break;
            }
        }
    }
    if (json_is_object(j)) {
        size_t count = json_object_size(j);
        if (!count_within(v, ptr, count, n->min_props, n->max_props, "members")) ok = false;
        for (size_t i = 0; i < n->nrequired; i++) {
            if (!json_object_get(j, n->required[i])) {
                char *p = ptr_join(ptr, n->required[i]);
                report(v, p, "is required");
                free(p);
                ok = false;
            }
        }
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)j, k, e) {
            const node_t *sub = NULL;
            for (size_t i = 0; i < n->nprops && !sub; i++)
                if (strcmp(n->props[i].name, k) == 0) sub = n->props[i].schema;
            char *p = ptr_join(ptr, k);
            if (sub) {
                if (!check(sub, e, p, depth + 1, v)) ok = false;
            } else if (n->additional_set && n->additional->is_bool) {
                if (!n->additional->bool_value) {
                    report(v, p, "unknown field");
                    ok = false;
                }
            } else if (n->additional_set && !check(n->additional, e, p, depth + 1, v)) {
                ok = false;
            }
            free(p);
        }
    }
    for (size_t i = 0; i < n->nall; i++)
        if (!check(n->all[i], j, ptr, depth + 1, v)) ok = false;
    if (n->nany) {
        bool any = false;
        for (size_t i = 0; i < n->nany && !any; i++)
            any = quiet(n->any[i], j, ptr, depth + 1);
        if (!any) {
            report(v, ptr, "must match at least one of the allowed shapes");
            ok = false;
        }
    }
    if (n->none) {
        size_t matches = 0;
        for (size_t i = 0; i < n->none && matches < 2; i++)
            matches += quiet(n->one[i], j, ptr, depth + 1);
        if (matches != 1) {
            report(v, ptr, "must match exactly one of the allowed shapes");
            ok = false;
        }
    }
    if (n->not_ && quiet(n->not_, j, ptr, depth + 1)) {
        report(v, ptr, "matches a shape that is not allowed");
        ok = false;
    }
    return ok;
}

bool rp_schema_validate(const rp_schema_t *s, const json_t *instance, json_t **details) {
    vctx_t v = {details ? json_array() : NULL, false};
    bool ok = check(s->root, instance, "", 0, &v);
    if (details) {
        if (ok) {
            json_decref(v.details);
            *details = NULL;
        } else {
            *details = v.details;
        }
    }
    return ok;
}
