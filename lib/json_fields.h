/* json_fields.h - a JSON object described member by member: one table from which either store
 * backend builds the same object, from a SQLite row (rp_sqlite_row_json) or a MongoDB document
 * (rp_mongo_doc_json). Constant data. */
#ifndef RP_LIB_JSON_FIELDS_H
#define RP_LIB_JSON_FIELDS_H

#include <stddef.h>

/* What a member is and how it reads back when absent (SQL NULL, a missing field or null). */
typedef enum rp_json_kind {
    RP_JSON_STR,         /* a string; null when absent */
    RP_JSON_OPAQUE,      /* client JSON kept as given (lib/mongo_util.h); null when absent */
    RP_JSON_TIME,        /* epoch ms or a date, as ISO-8601; null when absent */
    RP_JSON_BOOL,        /* false when absent */
    RP_JSON_INT,         /* 0 when absent */
    RP_JSON_INT_OR_NULL, /* null when absent */
    RP_JSON_KINDS
} rp_json_kind_t;

typedef struct rp_json_field {
    const char *name; /* the member; a document keeps it under the same name, "id" under _id */
    rp_json_kind_t kind;
} rp_json_field_t;

/* A table of fields (borrowed: usually constant data). */
typedef struct rp_json_table {
    const rp_json_field_t *fields;
    size_t n;
} rp_json_table_t;

/* The table of an array of fields (not a pointer). */
#define RP_JSON_TABLE(fields)                                                                                          \
    { (fields), sizeof(fields) / sizeof((fields)[0]) }

#endif
