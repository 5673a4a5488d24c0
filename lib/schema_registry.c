/* schema_registry.c - compiled embedded schemas (see schema_registry.h). */
#include "schema_registry.h"

#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "mem.h"

typedef struct entry {
    const char *name;
    rp_schema_t *schema;
} entry_t;

struct rp_schema_registry {
    entry_t *entries;
    size_t n;
};

rp_schema_registry_t *rp_schema_registry_new(rp_err_t *err) {
    rp_schema_registry_t *r = rp_calloc(1, sizeof *r);
    size_t count = 0;
    while (rp_embedded_schemas[count].name)
        count++;
    r->entries = rp_calloc(count, sizeof *r->entries);
    for (size_t i = 0; i < count; i++) {
        const rp_embedded_file_t *f = &rp_embedded_schemas[i];
        json_error_t je;
        rp_err_t cerr;
        rp_err_clear(&cerr);
        json_t *doc = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, &je);
        rp_schema_t *s = doc ? rp_schema_compile(doc, &cerr) : NULL;
        json_decref(doc);
        if (!s) {
            rp_err_set(err, RP_ERR_CONFIG, "SCHEMA_INVALID", "schemas/%s.json: %s", f->name,
                       doc ? cerr.message : je.text);
            rp_schema_registry_free(r);
            return NULL;
        }
        r->entries[r->n].name = f->name;
        r->entries[r->n].schema = s;
        r->n++;
    }
    return r;
}

void rp_schema_registry_free(rp_schema_registry_t *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        rp_schema_free(r->entries[i].schema);
    free(r->entries);
    free(r);
}

const rp_schema_t *rp_schema_registry_get(const rp_schema_registry_t *r, const char *name) {
    for (size_t i = 0; name && i < r->n; i++)
        if (strcmp(r->entries[i].name, name) == 0) return r->entries[i].schema;
    return NULL;
}

bool rp_schema_registry_validate(void *ud, const char *name, const json_t *body, json_t **details) {
    const rp_schema_t *s = rp_schema_registry_get(ud, name);
    if (!s) {
        if (details) *details = json_pack("[{s:s, s:s}]", "field", "", "reason", "no schema for this route");
        return false;
    }
    return rp_schema_validate(s, body, details);
}
