/* mongo_util.c - MongoDB client pool, store start-up, transactions, conversions, the audit log
 * and errors (see mongo_util.h).
 * Thread-safe: the pool is shared, everything else is per call. */
#include "mongo_util.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "mem.h"
#include "store_handle.h"
#include "timeutil.h"

/* bson_error_t domain of errors a transaction body raises itself (libmongoc uses 1..~30) */
#define RP_MONGO_APP_DOMAIN 0x7270u

struct rp_mongo {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *uri_string, *db_name;
    char hosts[256];       /* for messages: host:port list, never credentials */
    int refs;              /* opens sharing this pool (guarded by shared_mu) */
    struct rp_mongo *next; /* in the process's list of pools */
};

/* One client pool per process and (URI, database): the stores of one process share it. */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static rp_mongo_t *shared;

/* ---- driver set-up ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The driver's log goes through rp_log; its chatty levels are kept at debug. */
static void log_handler(mongoc_log_level_t level, const char *domain, const char *message, void *user_data) {
    (void)user_data;
    rp_log_level_t l;
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL: l = RP_LOG_ERROR; break;
    case MONGOC_LOG_LEVEL_WARNING: l = RP_LOG_WARN; break;
    default: l = RP_LOG_DEBUG; break;
    }
    rp_log(l, "mongoc", "%s: %s", domain ? domain : "-", message ? message : "");
}

static void driver_init(void) {
    mongoc_init();
    mongoc_log_set_handler(log_handler, NULL);
}

static void describe_hosts(const mongoc_uri_t *uri, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    const char *srv = mongoc_uri_get_srv_hostname(uri);
    if (srv) {
        snprintf(out, cap, "%s (SRV)", srv);
        return;
    }
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri); h; h = h->next) {
        int w = snprintf(out + used, cap - used, "%s%s", used ? "," : "", h->host_and_port);
        if (w < 0 || (size_t)w >= cap - used) break; /* truncated: the list is only for messages */
        used += (size_t)w;
    }
}

static rp_mongo_t *open_pool(const char *uri_string, const char *db_name, const char *appname, rp_err_t *err) {
    bson_error_t berr;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_string, &berr);
    if (!uri) {
        /* the driver's message does not echo the URI, which may hold a password */
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "MONGODB_URI is not a valid MongoDB URI: %s", berr.message);
        return NULL;
    }
    mongoc_client_pool_t *pool = mongoc_client_pool_new_with_error(uri, &berr);
    if (!pool) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "cannot use MONGODB_URI: %s", berr.message);
        mongoc_uri_destroy(uri);
        return NULL;
    }
    /* both must be set before the first pop */
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    if (appname && *appname && !mongoc_uri_get_appname(uri) && !mongoc_client_pool_set_appname(pool, appname))
        rp_log(RP_LOG_WARN, "mongo", "appname '%s' refused by the driver", appname);
    rp_mongo_t *m = rp_calloc(1, sizeof *m);
    m->pool = pool;
    m->uri = uri;
    m->uri_string = rp_strdup(uri_string);
    m->db_name = rp_strdup(db_name);
    describe_hosts(uri, m->hosts, sizeof m->hosts);
    return m;
}

rp_mongo_t *rp_mongo_open(const char *uri_string, const char *db_name, const char *appname, rp_err_t *err) {
    pthread_once(&init_once, driver_init);
    if (!db_name || !*db_name) {
        rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "MONGODB_DB_NAME is empty");
        return NULL;
    }
    if (!uri_string) uri_string = "";
    pthread_mutex_lock(&shared_mu);
    rp_mongo_t *m = shared;
    while (m && (strcmp(m->uri_string, uri_string) != 0 || strcmp(m->db_name, db_name) != 0))
        m = m->next;
    if (!m && (m = open_pool(uri_string, db_name, appname, err))) {
        m->next = shared;
        shared = m;
    }
    if (m) m->refs++;
    pthread_mutex_unlock(&shared_mu);
    return m;
}

void rp_mongo_close(rp_mongo_t *m) {
    if (!m) return;
    pthread_mutex_lock(&shared_mu);
    bool last = --m->refs == 0;
    if (last) {
        rp_mongo_t **p = &shared;
        while (*p != m)
            p = &(*p)->next;
        *p = m->next;
    }
    pthread_mutex_unlock(&shared_mu);
    if (!last) return;
    mongoc_client_pool_destroy(m->pool);
    mongoc_uri_destroy(m->uri);
    free(m->uri_string);
    free(m->db_name);
    free(m);
}

const char *rp_mongo_db_name(const rp_mongo_t *m) {
    return m->db_name;
}

mongoc_client_t *rp_mongo_pop(rp_mongo_t *m, rp_err_t *err) {
    mongoc_client_t *cli = mongoc_client_pool_pop(m->pool);
    if (!cli) rp_err_set(err, RP_ERR_STORE_BUSY, "STORE_BUSY", "no MongoDB connection free (waitQueueTimeoutMS)");
    return cli;
}

void rp_mongo_push(rp_mongo_t *m, mongoc_client_t *cli) {
    if (cli) mongoc_client_pool_push(m->pool, cli);
}

mongoc_collection_t *rp_mongo_collection(const rp_mongo_t *m, mongoc_client_t *cli, const char *name) {
    return mongoc_client_get_collection(cli, m->db_name, name);
}

/* ---- errors ---- */

bool rp_mongo_is_duplicate(const bson_error_t *e) {
    return (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_WRITE_CONCERN) &&
           (e->code == MONGOC_ERROR_DUPLICATE_KEY || e->code == 11001);
}

/* What a server code the driver gave up retrying means here: no usable primary right now, or
 * contention and time limits. Any other code is a plain store error. */
static const struct {
    uint32_t code;
    rp_err_kind_t kind;
} server_codes[] = {
    {6, RP_ERR_STORE_UNAVAILABLE},     /* HostUnreachable */
    {7, RP_ERR_STORE_UNAVAILABLE},     /* HostNotFound */
    {89, RP_ERR_STORE_UNAVAILABLE},    /* NetworkTimeout */
    {91, RP_ERR_STORE_UNAVAILABLE},    /* ShutdownInProgress */
    {189, RP_ERR_STORE_UNAVAILABLE},   /* PrimarySteppedDown */
    {202, RP_ERR_STORE_UNAVAILABLE},   /* NetworkInterfaceExceededTimeLimit */
    {9001, RP_ERR_STORE_UNAVAILABLE},  /* SocketException */
    {10107, RP_ERR_STORE_UNAVAILABLE}, /* NotWritablePrimary */
    {11600, RP_ERR_STORE_UNAVAILABLE}, /* InterruptedAtShutdown */
    {11602, RP_ERR_STORE_UNAVAILABLE}, /* InterruptedDueToReplStateChange */
    {13435, RP_ERR_STORE_UNAVAILABLE}, /* NotPrimaryNoSecondaryOk */
    {13436, RP_ERR_STORE_UNAVAILABLE}, /* NotPrimaryOrSecondary */
    {24, RP_ERR_STORE_BUSY},           /* LockTimeout */
    {46, RP_ERR_STORE_BUSY},           /* LockBusy */
    {50, RP_ERR_STORE_BUSY},           /* MaxTimeMSExpired */
    {112, RP_ERR_STORE_BUSY},          /* WriteConflict */
    {251, RP_ERR_STORE_BUSY},          /* NoSuchTransaction */
    {262, RP_ERR_STORE_BUSY},          /* ExceededTimeLimit */
    {290, RP_ERR_STORE_BUSY},          /* TransactionExceededLifetimeLimitSeconds */
};

static rp_err_kind_t server_code_kind(uint32_t c) {
    for (size_t i = 0; i < sizeof server_codes / sizeof server_codes[0]; i++)
        if (server_codes[i].code == c) return server_codes[i].kind;
    return RP_ERR_STORE;
}

void rp_mongo_err(const bson_error_t *e, const char *what, rp_err_t *err) {
    if (rp_mongo_is_duplicate(e)) {
        rp_err_set(err, RP_ERR_CONFLICT, "DUPLICATE_KEY", "%s: duplicate key", what);
        rp_log(RP_LOG_DEBUG, "mongo", "%s: %s", what, e->message);
        return;
    }
    bool server = e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_WRITE_CONCERN;
    rp_err_kind_t kind = server ? server_code_kind(e->code) : RP_ERR_STORE;
    if (e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM ||
        e->domain == MONGOC_ERROR_PROTOCOL || e->domain == MONGOC_ERROR_TRANSACTION ||
        (e->domain == MONGOC_ERROR_CLIENT && e->code != MONGOC_ERROR_CLIENT_TOO_BIG) ||
        e->domain == MONGOC_ERROR_WRITE_CONCERN || kind == RP_ERR_STORE_UNAVAILABLE)
        rp_err_set(err, RP_ERR_STORE_UNAVAILABLE, "STORE_UNAVAILABLE", "%s: MongoDB unavailable: %s", what, e->message);
    else if (kind == RP_ERR_STORE_BUSY)
        rp_err_set(err, RP_ERR_STORE_BUSY, "STORE_BUSY", "%s: the store is busy", what);
    else
        rp_err_set(err, RP_ERR_STORE, "STORE_ERROR", "%s: %s", what, e->message);
    rp_log(RP_LOG_ERROR, "mongo", "%s: %s (domain %u, code %u)", what, e->message, (unsigned)e->domain,
           (unsigned)e->code);
}

/* ---- commands ---- */

static bool run_command(rp_mongo_t *m, const char *db, const bson_t *cmd, bool write, bson_t *reply, bson_error_t *berr,
                        rp_err_t *err, bool *popped) {
    *popped = false;
    bson_init(reply);
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    *popped = true;
    bson_destroy(reply);
    bool ok;
    if (write) {
        mongoc_database_t *d = mongoc_client_get_database(cli, db);
        ok = mongoc_database_write_command_with_opts(d, cmd, NULL, reply, berr);
        mongoc_database_destroy(d);
    } else {
        ok = mongoc_client_command_simple(cli, db, cmd, NULL, reply, berr);
    }
    rp_mongo_push(m, cli);
    return ok;
}

bool rp_mongo_require_replset(rp_mongo_t *m, rp_err_t *err) {
    bson_t reply;
    bson_error_t berr;
    bool popped, ok;
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    ok = run_command(m, "admin", cmd, false, &reply, &berr, err, &popped);
    if (!ok && popped && berr.domain == MONGOC_ERROR_SERVER && berr.code == 59 /* CommandNotFound: before 4.4.2 */) {
        bson_destroy(&reply);
        bson_destroy(cmd);
        cmd = BCON_NEW("isMaster", BCON_INT32(1));
        ok = run_command(m, "admin", cmd, false, &reply, &berr, err, &popped);
    }
    bson_destroy(cmd);
    if (!ok) {
        if (popped) rp_mongo_err(&berr, "replica set check", err);
        bson_destroy(&reply);
        return false;
    }
    bson_iter_t it;
    bool rs = bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it);
    bson_destroy(&reply);
    if (!rs) {
        rp_err_set(err, RP_ERR_STORE_UNAVAILABLE, "STORE_UNAVAILABLE",
                   "MongoDB at %s is not a replica set: transactions need one", m->hosts);
        rp_log(RP_LOG_ERROR, "mongo", "MongoDB at %s is not a replica set: transactions need one", m->hosts);
    }
    return rs;
}

bool rp_mongo_ping(rp_mongo_t *m, rp_err_t *err) {
    bson_t reply;
    bson_error_t berr;
    bool popped;
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = run_command(m, m->db_name, cmd, false, &reply, &berr, err, &popped);
    if (!ok && popped) rp_mongo_err(&berr, "ping", err);
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

bool rp_mongo_create_indexes(rp_mongo_t *m, const char *collection, const bson_t *indexes, rp_err_t *err) {
    bson_t reply;
    bson_error_t berr;
    bool popped;
    char what[128];
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(collection), "indexes", BCON_ARRAY(indexes));
    snprintf(what, sizeof what, "create indexes on %s", collection);
    bool ok = run_command(m, m->db_name, cmd, true, &reply, &berr, err, &popped);
    if (!ok && popped) rp_mongo_err(&berr, what, err);
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

bool rp_mongo_create_index_table(rp_mongo_t *m, const rp_mongo_index_t *specs, size_t n, rp_err_t *err) {
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        if (i > 0 && strcmp(specs[i].coll, specs[i - 1].coll) == 0) continue; /* done with its first index */
        bson_t arr = BSON_INITIALIZER;
        uint32_t k = 0;
        for (size_t j = i; j < n && strcmp(specs[j].coll, specs[i].coll) == 0; j++) {
            const rp_mongo_index_t *x = &specs[j];
            char kb[16];
            bson_t spec, key;
            const char *name = rp_mongo_array_key(k++, kb); /* once: BSON_APPEND_* evaluate the key twice */
            BSON_APPEND_DOCUMENT_BEGIN(&arr, name, &spec);
            BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &key);
            for (size_t f = 0; f < 4 && x->keys[f].field; f++)
                BSON_APPEND_INT32(&key, x->keys[f].field, x->keys[f].dir);
            bson_append_document_end(&spec, &key);
            BSON_APPEND_UTF8(&spec, "name", x->name);
            if (x->unique) BSON_APPEND_BOOL(&spec, "unique", true);
            if (x->partial)
                BCON_APPEND(&spec, "partialFilterExpression", "{", x->partial, "{", "$exists", BCON_BOOL(true), "}",
                            "}");
            bson_append_document_end(&arr, &spec);
        }
        ok = rp_mongo_create_indexes(m, specs[i].coll, &arr, err);
        bson_destroy(&arr);
    }
    return ok;
}

bool rp_mongo_create_collection(rp_mongo_t *m, const char *collection, rp_err_t *err) {
    bson_t reply;
    bson_error_t berr;
    bool popped;
    bson_t *cmd = BCON_NEW("create", BCON_UTF8(collection));
    bool ok = run_command(m, m->db_name, cmd, true, &reply, &berr, err, &popped);
    if (!ok && popped && berr.domain == MONGOC_ERROR_SERVER && berr.code == 48 /* NamespaceExists */) ok = true;
    if (!ok && popped) {
        char what[96];
        snprintf(what, sizeof what, "create collection %s", collection);
        rp_mongo_err(&berr, what, err);
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

/* rp_mongo_close with the signature rp_store_handle_new takes. */
static void close_db(void *m) {
    rp_mongo_close(m);
}

void *rp_mongo_store_open(const char *uri, const char *db_name, const rp_mongo_setup_t *setup, const void *handle,
                          size_t handle_size, rp_err_t *err) {
    rp_mongo_t *m = rp_mongo_open(uri, db_name, setup->appname, err);
    if (!m) return NULL;
    if (!rp_mongo_require_replset(m, err) || !rp_mongo_create_index_table(m, setup->indexes, setup->nindexes, err) ||
        (setup->set_up && !setup->set_up(m, err))) {
        rp_mongo_close(m);
        return NULL;
    }
    return rp_store_handle_new(m, close_db, handle, handle_size);
}

/* ---- single operations ---- */

static void read_write_result(const bson_t *reply, rp_mongo_write_t *res) {
    if (!res) return;
    memset(res, 0, sizeof *res);
    res->matched = rp_mongo_get_i64(reply, "matchedCount");
    res->modified = rp_mongo_get_i64(reply, "modifiedCount");
    res->upserted = rp_mongo_get_i64(reply, "upsertedCount");
    res->deleted = rp_mongo_get_i64(reply, "deletedCount");
    res->inserted = rp_mongo_get_i64(reply, "insertedCount");
}

/* The driver call shared by the plain and the transactional update. */
static bool do_update(mongoc_collection_t *c, const bson_t *filter, const bson_t *update, unsigned flags, bson_t *opts,
                      bson_t *reply, bson_error_t *berr) {
    if (flags & RP_MONGO_UPSERT) BSON_APPEND_BOOL(opts, "upsert", true);
    return (flags & RP_MONGO_MANY) ? mongoc_collection_update_many(c, filter, update, opts, reply, berr)
                                   : mongoc_collection_update_one(c, filter, update, opts, reply, berr);
}

bool rp_mongo_insert(rp_mongo_t *m, const char *coll, const bson_t *doc, bson_error_t *berr, rp_err_t *err) {
    bson_error_t local_err;
    bson_t reply;
    bson_error_t *e = berr ? berr : &local_err;
    memset(e, 0, sizeof *e);
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_collection_t *c = rp_mongo_collection(m, cli, coll);
    bool ok = mongoc_collection_insert_one(c, doc, NULL, &reply, e);
    if (!ok) rp_mongo_err(e, coll, err);
    bson_destroy(&reply);
    mongoc_collection_destroy(c);
    rp_mongo_push(m, cli);
    return ok;
}

bool rp_mongo_update(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *update, unsigned flags,
                     rp_mongo_write_t *res, rp_err_t *err) {
    bson_error_t berr;
    bson_t reply, opts = BSON_INITIALIZER;
    if (res) memset(res, 0, sizeof *res);
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_collection_t *c = rp_mongo_collection(m, cli, coll);
    bool ok = do_update(c, filter, update, flags, &opts, &reply, &berr);
    if (ok)
        read_write_result(&reply, res);
    else
        rp_mongo_err(&berr, coll, err);
    bson_destroy(&reply);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    rp_mongo_push(m, cli);
    return ok;
}

bool rp_mongo_delete(rp_mongo_t *m, const char *coll, const bson_t *filter, bool many, int64_t *deleted,
                     rp_err_t *err) {
    bson_error_t berr;
    bson_t reply;
    if (deleted) *deleted = 0;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_collection_t *c = rp_mongo_collection(m, cli, coll);
    bool ok = many ? mongoc_collection_delete_many(c, filter, NULL, &reply, &berr)
                   : mongoc_collection_delete_one(c, filter, NULL, &reply, &berr);
    if (ok && deleted)
        *deleted = rp_mongo_get_i64(&reply, "deletedCount");
    else if (!ok)
        rp_mongo_err(&berr, coll, err);
    bson_destroy(&reply);
    mongoc_collection_destroy(c);
    rp_mongo_push(m, cli);
    return ok;
}

bool rp_mongo_count(rp_mongo_t *m, const char *coll, const bson_t *filter, int64_t *count, rp_err_t *err) {
    bson_error_t berr;
    bson_t reply;
    *count = 0;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_collection_t *c = rp_mongo_collection(m, cli, coll);
    int64_t n = mongoc_collection_count_documents(c, filter, NULL, NULL, &reply, &berr);
    if (n >= 0)
        *count = n;
    else
        rp_mongo_err(&berr, coll, err);
    bson_destroy(&reply);
    mongoc_collection_destroy(c);
    rp_mongo_push(m, cli);
    return n >= 0;
}

/* Runs find(filter, opts), or the aggregation pipeline when it is set, on coll outside any
 * transaction, handing each document to row. */
static bool each_doc(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *opts, const bson_t *pipeline,
                     rp_mongo_row_fn row, void *ctx, rp_err_t *err) {
    bson_error_t berr;
    const bson_t *doc;
    mongoc_client_t *cli = rp_mongo_pop(m, err);
    if (!cli) return false;
    mongoc_collection_t *c = rp_mongo_collection(m, cli, coll);
    mongoc_cursor_t *cur = pipeline ? mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, pipeline, NULL, NULL)
                                    : mongoc_collection_find_with_opts(c, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc))
        if (!row(doc, ctx)) break;
    bool ok = !mongoc_cursor_error(cur, &berr);
    if (!ok) rp_mongo_err(&berr, coll, err);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    rp_mongo_push(m, cli);
    return ok;
}

bool rp_mongo_find(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *opts, rp_mongo_row_fn row,
                   void *ctx, rp_err_t *err) {
    return each_doc(m, coll, filter, opts, NULL, row, ctx, err);
}

/* opts + {limit: 1}, into out (initialised here). */
static void one_opts(const bson_t *opts, bson_t *out) {
    if (opts)
        bson_copy_to(opts, out);
    else
        bson_init(out);
    BSON_APPEND_INT64(out, "limit", 1);
}

static bool keep_first(const bson_t *doc, void *ctx) {
    *(bson_t **)ctx = bson_copy(doc);
    return false;
}

bool rp_mongo_find_one(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *opts, bson_t **doc,
                       rp_err_t *err) {
    bson_t o;
    *doc = NULL;
    one_opts(opts, &o);
    bool ok = rp_mongo_find(m, coll, filter, &o, keep_first, doc, err);
    bson_destroy(&o);
    if (!ok) {
        bson_destroy(*doc);
        *doc = NULL;
    }
    return ok;
}

/* rp_mongo_fetch, or rp_mongo_txn_fetch when tx is set. */
static bool fetch(rp_mongo_t *m, rp_mongo_txn_t *tx, const char *coll, bson_t *filter,
                  void (*fill)(const bson_t *doc, void *out), void *out, bool *found, rp_err_t *err) {
    bson_t *doc = NULL;
    bool ok =
        tx ? rp_mongo_txn_find_one(tx, coll, filter, NULL, &doc) : rp_mongo_find_one(m, coll, filter, NULL, &doc, err);
    *found = ok && doc;
    if (*found) fill(doc, out);
    bson_destroy(doc);
    bson_destroy(filter);
    return ok;
}

bool rp_mongo_fetch(rp_mongo_t *m, const char *coll, bson_t *filter, void (*fill)(const bson_t *doc, void *out),
                    void *out, bool *found, rp_err_t *err) {
    return fetch(m, NULL, coll, filter, fill, out, found, err);
}

typedef struct page_ctx {
    json_t *items;
    int limit;
    bool more;
    json_t *(*row)(const bson_t *doc);
} page_ctx_t;

static bool page_row(const bson_t *doc, void *p) {
    page_ctx_t *c = p;
    if ((int)json_array_size(c->items) >= c->limit) {
        c->more = true;
        return false;
    }
    json_array_append_new(c->items, c->row(doc));
    return true;
}

bool rp_mongo_find_page(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *sort, int limit,
                        json_t *(*row)(const bson_t *doc), json_t **items, bool *more, rp_err_t *err) {
    page_ctx_t c = {json_array(), limit, false, row};
    *items = NULL;
    *more = false;
    if (limit < 0) { /* what LIMIT limit+1 <= 0 gives in SQLite: nothing (a Mongo limit 0 would be "all") */
        *items = c.items;
        return true;
    }
    bson_t opts = BSON_INITIALIZER;
    if (sort) BSON_APPEND_DOCUMENT(&opts, "sort", sort);
    BSON_APPEND_INT64(&opts, "limit", (int64_t)limit + 1);
    bool ok = rp_mongo_find(m, coll, filter, &opts, page_row, &c, err);
    bson_destroy(&opts);
    if (!ok) {
        json_decref(c.items);
        return false;
    }
    *items = c.items;
    *more = c.more;
    return true;
}

const char *rp_mongo_array_key(uint32_t i, char buf[16]) {
    const char *key;
    bson_uint32_to_string(i, &key, buf, 16);
    return key;
}

int rp_mongo_cursor_clause(rp_mongo_t *m, const char *coll, const char *cursor, const char *field, bson_t *clauses,
                           uint32_t *n, rp_err_t *err) {
    bson_t *doc = NULL;
    bson_iter_t it;
    char kb[16];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(cursor));
    bson_t *opts = BCON_NEW("projection", "{", field, BCON_INT32(1), "}");
    int rc = -1;
    if (!rp_mongo_find_one(m, coll, filter, opts, &doc, err)) goto done;
    rc = 0;
    if (!doc || !bson_iter_init_find(&it, doc, field)) goto done;
    const bson_value_t *v = bson_iter_value(&it);
    bson_t clause, alts, alt, cmp;
    const char *key = rp_mongo_array_key((*n)++, kb); /* once: BSON_APPEND_* evaluate the key argument twice */
    BSON_APPEND_DOCUMENT_BEGIN(clauses, key, &clause);
    BSON_APPEND_ARRAY_BEGIN(&clause, "$or", &alts);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "0", &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, field, &cmp);
    BSON_APPEND_VALUE(&cmp, "$lt", v);
    bson_append_document_end(&alt, &cmp);
    bson_append_document_end(&alts, &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "1", &alt);
    BSON_APPEND_VALUE(&alt, field, v);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "_id", &cmp);
    BSON_APPEND_UTF8(&cmp, "$lt", cursor);
    bson_append_document_end(&alt, &cmp);
    bson_append_document_end(&alts, &alt);
    bson_append_array_end(&clause, &alts);
    bson_append_document_end(clauses, &clause);
    rc = 1;
done:
    bson_destroy(doc);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

/* ---- transactions ---- */

struct rp_mongo_txn {
    rp_mongo_t *m;
    mongoc_client_t *cli;
    mongoc_client_session_t *session;
    rp_mongo_txn_fn fn;
    void *arg;
    bson_t **reply;      /* the driver's: it looks for error labels here */
    bson_error_t *error; /* the driver's */
    bool app_failed, rolled_back;
    rp_err_t app_err;
};

static bool txn_callback(mongoc_client_session_t *session, void *ctx, bson_t **reply, bson_error_t *error) {
    rp_mongo_txn_t *tx = ctx;
    (void)session;
    tx->reply = reply;
    tx->error = error;
    tx->app_failed = tx->rolled_back = false;
    return tx->fn(tx, tx->arg);
}

/* Hands a server reply to the driver (replacing the previous one of this attempt), so that a
 * TransientTransactionError label on it makes with_transaction run the body again. */
static void txn_reply(rp_mongo_txn_t *tx, const bson_t *reply) {
    bson_destroy(*tx->reply);
    *tx->reply = bson_copy(reply);
}

/* opts carrying the session (initialised here, destroy in every case). */
static bool txn_opts(rp_mongo_txn_t *tx, const bson_t *base, bson_t *opts) {
    if (base)
        bson_copy_to(base, opts);
    else
        bson_init(opts);
    return mongoc_client_session_append(tx->session, opts, tx->error);
}

bool rp_mongo_transact(rp_mongo_t *m, const char *what, rp_mongo_txn_fn fn, void *arg, rp_err_t *err) {
    rp_mongo_txn_t tx = {.m = m, .fn = fn, .arg = arg};
    bson_error_t berr;
    bson_t reply;
    bool ok = false;
    mongoc_transaction_opt_t *topts = NULL;
    mongoc_write_concern_t *wc = NULL;
    mongoc_read_concern_t *rc = NULL;
    memset(&berr, 0, sizeof berr);
    tx.cli = rp_mongo_pop(m, err);
    if (!tx.cli) return false;
    tx.session = mongoc_client_start_session(tx.cli, NULL, &berr);
    if (!tx.session) {
        rp_mongo_err(&berr, what, err);
        goto done;
    }
    topts = mongoc_transaction_opts_new();
    wc = mongoc_write_concern_new();
    mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
    rc = mongoc_read_concern_new();
    mongoc_read_concern_set_level(rc, MONGOC_READ_CONCERN_LEVEL_SNAPSHOT);
    mongoc_transaction_opts_set_write_concern(topts, wc);
    mongoc_transaction_opts_set_read_concern(topts, rc);
    /* decide on the returned boolean only: after a retried success berr may still hold the
     * error of an earlier attempt */
    ok = mongoc_client_session_with_transaction(tx.session, txn_callback, topts, &tx, &reply, &berr);
    bson_destroy(&reply);
    if (!ok && tx.rolled_back) ok = true; /* the body's own decision: aborted, and not an error */
    if (!ok) {
        if (tx.app_failed) {
            if (err) *err = tx.app_err;
        } else {
            rp_mongo_err(&berr, what, err);
        }
    }
done:
    if (topts) mongoc_transaction_opts_destroy(topts);
    mongoc_write_concern_destroy(wc);
    mongoc_read_concern_destroy(rc);
    if (tx.session) mongoc_client_session_destroy(tx.session); /* before the client goes back */
    rp_mongo_push(m, tx.cli);
    return ok;
}

bool rp_mongo_txn_insert(rp_mongo_txn_t *tx, const char *coll, const bson_t *doc) {
    bson_t opts, reply;
    if (!txn_opts(tx, NULL, &opts)) {
        bson_destroy(&opts);
        return false;
    }
    mongoc_collection_t *c = rp_mongo_collection(tx->m, tx->cli, coll);
    bool ok = mongoc_collection_insert_one(c, doc, &opts, &reply, tx->error);
    txn_reply(tx, &reply);
    bson_destroy(&reply);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    return ok;
}

bool rp_mongo_txn_update(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *update,
                         unsigned flags, rp_mongo_write_t *res) {
    bson_t opts, reply;
    if (res) memset(res, 0, sizeof *res);
    if (!txn_opts(tx, NULL, &opts)) {
        bson_destroy(&opts);
        return false;
    }
    mongoc_collection_t *c = rp_mongo_collection(tx->m, tx->cli, coll);
    bool ok = do_update(c, filter, update, flags, &opts, &reply, tx->error);
    txn_reply(tx, &reply);
    if (ok) read_write_result(&reply, res);
    bson_destroy(&reply);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    return ok;
}

bool rp_mongo_txn_delete(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, bool many, int64_t *deleted) {
    bson_t opts, reply;
    if (deleted) *deleted = 0;
    if (!txn_opts(tx, NULL, &opts)) {
        bson_destroy(&opts);
        return false;
    }
    mongoc_collection_t *c = rp_mongo_collection(tx->m, tx->cli, coll);
    bool ok = many ? mongoc_collection_delete_many(c, filter, &opts, &reply, tx->error)
                   : mongoc_collection_delete_one(c, filter, &opts, &reply, tx->error);
    txn_reply(tx, &reply);
    if (ok && deleted) *deleted = rp_mongo_get_i64(&reply, "deletedCount");
    bson_destroy(&reply);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    return ok;
}

bool rp_mongo_txn_find_one(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *opts,
                           bson_t **doc) {
    bson_t o, limited;
    const bson_t *found, *errdoc = NULL;
    *doc = NULL;
    one_opts(opts, &limited);
    bool ok = txn_opts(tx, &limited, &o);
    bson_destroy(&limited);
    if (!ok) {
        bson_destroy(&o);
        return false;
    }
    mongoc_collection_t *c = rp_mongo_collection(tx->m, tx->cli, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, &o, NULL);
    if (mongoc_cursor_next(cur, &found)) *doc = bson_copy(found);
    if (mongoc_cursor_error_document(cur, tx->error, &errdoc)) {
        if (errdoc) txn_reply(tx, errdoc);
        bson_destroy(*doc);
        *doc = NULL;
        ok = false;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(&o);
    return ok;
}

bool rp_mongo_txn_find(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *opts,
                       rp_mongo_row_fn row, void *ctx) {
    bson_t o;
    const bson_t *doc, *errdoc = NULL;
    if (!txn_opts(tx, opts, &o)) {
        bson_destroy(&o);
        return false;
    }
    mongoc_collection_t *c = rp_mongo_collection(tx->m, tx->cli, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, &o, NULL);
    while (mongoc_cursor_next(cur, &doc))
        if (!row(doc, ctx)) break;
    bool ok = !mongoc_cursor_error_document(cur, tx->error, &errdoc);
    if (!ok && errdoc) txn_reply(tx, errdoc);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(&o);
    return ok;
}

bool rp_mongo_txn_count(rp_mongo_txn_t *tx, const char *coll, const bson_t *filter, const bson_t *opts,
                        int64_t *count) {
    bson_t o, reply;
    *count = 0;
    if (!txn_opts(tx, opts, &o)) {
        bson_destroy(&o);
        return false;
    }
    mongoc_collection_t *c = rp_mongo_collection(tx->m, tx->cli, coll);
    int64_t n = mongoc_collection_count_documents(c, filter, &o, NULL, &reply, tx->error);
    if (n < 0)
        txn_reply(tx, &reply);
    else
        *count = n;
    bson_destroy(&reply);
    mongoc_collection_destroy(c);
    bson_destroy(&o);
    return n >= 0;
}

bool rp_mongo_txn_fail(rp_mongo_txn_t *tx, rp_err_kind_t kind, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rp_err_vset(&tx->app_err, kind, code, fmt, ap);
    va_end(ap);
    tx->app_failed = true;
    /* the driver needs an error of its own; no label on the reply, so it will not retry */
    bson_set_error(tx->error, RP_MONGO_APP_DOMAIN, (uint32_t)kind, "%s", tx->app_err.message);
    return false;
}

bool rp_mongo_txn_update_take(rp_mongo_txn_t *tx, const char *coll, bson_t *filter, bson_t *update, unsigned flags,
                              bool *matched) {
    rp_mongo_write_t res;
    bool ok = rp_mongo_txn_update(tx, coll, filter, update, flags, &res);
    if (matched) *matched = ok && res.matched > 0;
    bson_destroy(filter);
    bson_destroy(update);
    return ok;
}

bool rp_mongo_txn_find_one_take(rp_mongo_txn_t *tx, const char *coll, bson_t *filter, bson_t *opts, bson_t **doc) {
    bool ok = rp_mongo_txn_find_one(tx, coll, filter, opts, doc);
    bson_destroy(filter);
    bson_destroy(opts);
    return ok;
}

bool rp_mongo_txn_fetch(rp_mongo_txn_t *tx, const char *coll, bson_t *filter,
                        void (*fill)(const bson_t *doc, void *out), void *out, bool *found) {
    return fetch(NULL, tx, coll, filter, fill, out, found, NULL);
}

bool rp_mongo_txn_insert_take(rp_mongo_txn_t *tx, const char *coll, bson_t *doc, bool *duplicate) {
    bool ok = rp_mongo_txn_insert(tx, coll, doc);
    *duplicate = !ok && rp_mongo_txn_last_duplicate(tx);
    bson_destroy(doc);
    return ok || *duplicate;
}

bool rp_mongo_txn_rollback(rp_mongo_txn_t *tx) {
    tx->rolled_back = true;
    /* the driver needs an error to abort; no label on the reply, so it will not run the body again */
    bson_set_error(tx->error, RP_MONGO_APP_DOMAIN, 0, "rolled back by the transaction body");
    return false;
}

bool rp_mongo_txn_end(rp_mongo_txn_t *tx, rp_txn_end_t end) {
    switch (end) {
    case RP_TXN_COMMIT: return true;
    case RP_TXN_ROLLBACK: return rp_mongo_txn_rollback(tx);
    case RP_TXN_FAILED: break;
    }
    return false;
}

bool rp_mongo_txn_last_duplicate(const rp_mongo_txn_t *tx) {
    return rp_mongo_is_duplicate(tx->error);
}

/* ---- jansson <-> BSON ---- */

static bool append_value(bson_t *b, const char *key, int keylen, const json_t *v);

static bool append_object(bson_t *doc, const json_t *obj) {
    const char *k;
    size_t kl;
    json_t *x;
    json_object_keylen_foreach((json_t *)obj, k, kl, x) {
        if (kl != strlen(k) || kl > INT32_MAX || !append_value(doc, k, (int)kl, x)) return false;
    }
    return true;
}

static bool append_value(bson_t *b, const char *key, int keylen, const json_t *v) {
    bson_t child;
    bool ok = true;
    if (!v) return bson_append_null(b, key, keylen);
    switch (json_typeof(v)) {
    case JSON_NULL: return bson_append_null(b, key, keylen);
    case JSON_TRUE: return bson_append_bool(b, key, keylen, true);
    case JSON_FALSE: return bson_append_bool(b, key, keylen, false);
    case JSON_INTEGER: return bson_append_int64(b, key, keylen, json_integer_value(v));
    case JSON_REAL:
        if (!isfinite(json_real_value(v))) return false;
        return bson_append_double(b, key, keylen, json_real_value(v));
    case JSON_STRING:
        if (json_string_length(v) > INT32_MAX) return false;
        return bson_append_utf8(b, key, keylen, json_string_value(v), (int)json_string_length(v));
    case JSON_OBJECT:
        if (!bson_append_document_begin(b, key, keylen, &child)) return false;
        ok = append_object(&child, v);
        return bson_append_document_end(b, &child) && ok;
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        char kb[16];
        if (!bson_append_array_begin(b, key, keylen, &child)) return false;
        json_array_foreach(v, i, x) {
            const char *ik;
            size_t n = bson_uint32_to_string((uint32_t)i, &ik, kb, sizeof kb);
            if (!(ok = append_value(&child, ik, (int)n, x))) break;
        }
        return bson_append_array_end(b, &child) && ok;
    }
    }
    return false;
}

bool rp_mongo_append_json(bson_t *b, const char *key, const json_t *v) {
    return append_value(b, key, (int)strlen(key), v);
}

bson_t *rp_mongo_bson_from_json(const json_t *obj) {
    if (!json_is_object(obj)) return NULL;
    bson_t *b = bson_new();
    if (!append_object(b, obj)) {
        bson_destroy(b);
        return NULL;
    }
    return b;
}

static json_t *json_from_doc_iter(bson_iter_t *child, bool array) {
    json_t *out = array ? json_array() : json_object();
    while (bson_iter_next(child)) {
        json_t *v = rp_mongo_json_from_iter(child);
        if (array)
            json_array_append_new(out, v);
        else
            json_object_setn_new(out, bson_iter_key(child), bson_iter_key_len(child), v);
    }
    return out;
}

json_t *rp_mongo_json_from_iter(const bson_iter_t *it) {
    bson_iter_t child;
    json_t *v = NULL;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOUBLE: v = json_real(bson_iter_double(it)); break;
    case BSON_TYPE_INT32: v = json_integer(bson_iter_int32(it)); break;
    case BSON_TYPE_INT64: v = json_integer(bson_iter_int64(it)); break;
    case BSON_TYPE_BOOL: v = json_boolean(bson_iter_bool(it)); break;
    case BSON_TYPE_UTF8: {
        uint32_t len;
        const char *s = bson_iter_utf8(it, &len);
        v = json_stringn(s, len);
        break;
    }
    case BSON_TYPE_DATE_TIME: {
        char b[RP_ISO_LEN];
        rp_time_iso(bson_iter_date_time(it), b);
        v = json_string(b);
        break;
    }
    case BSON_TYPE_OID: {
        char b[25];
        bson_oid_to_string(bson_iter_oid(it), b);
        v = json_string(b);
        break;
    }
    case BSON_TYPE_DECIMAL128: {
        bson_decimal128_t d;
        char b[BSON_DECIMAL128_STRING];
        if (bson_iter_decimal128(it, &d)) {
            bson_decimal128_to_string(&d, b);
            v = json_string(b);
        }
        break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        if (bson_iter_recurse(it, &child)) v = json_from_doc_iter(&child, bson_iter_type(it) == BSON_TYPE_ARRAY);
        break;
    default: break;
    }
    return v ? v : json_null();
}

json_t *rp_mongo_json_from_bson(const bson_t *doc) {
    bson_iter_t it;
    if (!bson_iter_init(&it, doc)) return json_object();
    return json_from_doc_iter(&it, false);
}

/* True when v can be stored as native BSON and read back equal (see the header). */
static bool storable(const json_t *v, int depth) {
    const char *k;
    size_t kl;
    json_t *x;
    size_t i;
    if (depth > RP_MONGO_OPAQUE_DEPTH) return false;
    if (json_is_object(v)) {
        json_object_keylen_foreach((json_t *)v, k, kl, x) {
            if (kl == 0 || kl != strlen(k) || k[0] == '$' || memchr(k, '.', kl) || strcmp(k, RP_MONGO_JSON_KEY) == 0 ||
                !storable(x, depth + 1))
                return false;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (!storable(x, depth + 1)) return false;
    }
    return true;
}

void rp_mongo_append_opaque(bson_t *b, const char *key, const json_t *v) {
    if (!v || json_is_null(v)) {
        BSON_APPEND_NULL(b, key);
        return;
    }
    if (storable(v, 0)) {
        /* build aside, so a refusal leaves no half-written element in b */
        bson_t tmp = BSON_INITIALIZER;
        bool ok = rp_mongo_append_json(&tmp, key, v);
        if (ok) bson_concat(b, &tmp);
        bson_destroy(&tmp);
        if (ok) return;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    bson_t child;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &child);
    BSON_APPEND_UTF8(&child, RP_MONGO_JSON_KEY, text ? text : "null");
    bson_append_document_end(b, &child);
    free(text);
}

void rp_mongo_append_str(bson_t *b, const char *key, const char *s) {
    if (s)
        BSON_APPEND_UTF8(b, key, s);
    else
        BSON_APPEND_NULL(b, key);
}

void rp_mongo_append_opt(bson_t *b, const char *key, const char *s) {
    rp_mongo_append_str(b, key, s && s[0] ? s : NULL);
}

void rp_mongo_append_ms(bson_t *b, const char *key, int64_t ms) {
    if (ms)
        BSON_APPEND_DATE_TIME(b, key, ms);
    else
        BSON_APPEND_NULL(b, key);
}

void rp_mongo_append_in(bson_t *b, const char *field, const int64_t *v, size_t n) {
    bson_t arr = BSON_INITIALIZER;
    char kb[16];
    for (size_t i = 0; i < n; i++) {
        const char *key = rp_mongo_array_key((uint32_t)i, kb); /* once: BSON_APPEND_* evaluate the key twice */
        BSON_APPEND_INT64(&arr, key, v[i]);
    }
    BCON_APPEND(b, field, "{", "$in", BCON_ARRAY(&arr), "}");
    bson_destroy(&arr);
}

void rp_mongo_append_iso(bson_t *b, const char *key, const json_t *v) {
    int64_t ms;
    if (json_is_string(v) && rp_time_parse_iso(json_string_value(v), json_string_length(v), &ms))
        BSON_APPEND_DATE_TIME(b, key, ms);
    else
        BSON_APPEND_NULL(b, key);
}

json_t *rp_mongo_get_json(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) ? rp_mongo_json_from_iter(&it) : json_null();
}

json_t *rp_mongo_get_opaque(const bson_t *doc, const char *key) {
    bson_iter_t it, w;
    if (!bson_iter_init_find(&it, doc, key)) return json_null();
    if (BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &w) && bson_iter_next(&w) &&
        strcmp(bson_iter_key(&w), RP_MONGO_JSON_KEY) == 0 && BSON_ITER_HOLDS_UTF8(&w)) {
        uint32_t len;
        const char *text = bson_iter_utf8(&w, &len);
        if (!bson_iter_next(&w)) { /* exactly one member: the wrapped form */
            json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            return v ? v : json_null();
        }
    }
    return rp_mongo_json_from_iter(&it);
}

json_t *rp_mongo_get_time(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !(BSON_ITER_HOLDS_DATE_TIME(&it) || BSON_ITER_HOLDS_NUMBER(&it)))
        return json_null();
    char b[RP_ISO_LEN];
    rp_time_iso(rp_mongo_get_ms(doc, key), b);
    return json_string(b);
}

json_t *rp_mongo_get_int(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_NUMBER(&it)) return json_null();
    return json_integer(bson_iter_as_int64(&it));
}

int64_t rp_mongo_get_ms(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key)) return 0;
    if (BSON_ITER_HOLDS_DATE_TIME(&it)) return bson_iter_date_time(&it);
    return BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_int64(&it) : 0;
}

int64_t rp_mongo_get_i64(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_int64(&it) : 0;
}

bool rp_mongo_get_bool(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && bson_iter_as_bool(&it);
}

void rp_mongo_copy_str(const bson_t *doc, const char *key, char *dst, size_t cap) {
    bson_iter_t it;
    const char *s = bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "";
    snprintf(dst, cap, "%s", s);
}

static json_t *get_bool_json(const bson_t *doc, const char *key) {
    return json_boolean(rp_mongo_get_bool(doc, key));
}

static json_t *get_i64_json(const bson_t *doc, const char *key) {
    return json_integer(rp_mongo_get_i64(doc, key));
}

json_t *rp_mongo_doc_json(const bson_t *d, const rp_json_table_t *t) {
    static json_t *(*const read[RP_JSON_KINDS])(const bson_t *, const char *) = {
        [RP_JSON_STR] = rp_mongo_get_json,  [RP_JSON_OPAQUE] = rp_mongo_get_opaque,
        [RP_JSON_TIME] = rp_mongo_get_time, [RP_JSON_BOOL] = get_bool_json,
        [RP_JSON_INT] = get_i64_json,       [RP_JSON_INT_OR_NULL] = rp_mongo_get_int,
    };
    json_t *o = json_object();
    for (size_t k = 0; k < t->n; k++) {
        const char *name = t->fields[k].name;
        json_object_set_new(o, name, read[t->fields[k].kind](d, strcmp(name, "id") == 0 ? "_id" : name));
    }
    return o;
}

char *rp_mongo_get_strdup(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it) ? rp_strdup(bson_iter_utf8(&it, NULL))
                                                                           : NULL;
}

bool rp_mongo_iter_doc(const bson_iter_t *it, bson_t *out) {
    const uint8_t *data;
    uint32_t len;
    if (!BSON_ITER_HOLDS_DOCUMENT(it)) return false;
    bson_iter_document(it, &len, &data);
    return bson_init_static(out, data, len);
}

/* ---- records <-> documents by table ---- */

void rp_mongo_put_fields(bson_t *b, const void *rec, const rp_mongo_field_t *f, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)rec + f[i].off;
        switch (f[i].kind) {
        case RP_MONGO_STR: BSON_APPEND_UTF8(b, f[i].key, p); break;
        case RP_MONGO_OPT: rp_mongo_append_opt(b, f[i].key, p); break;
        case RP_MONGO_MS: rp_mongo_append_ms(b, f[i].key, *(const int64_t *)(const void *)p); break;
        case RP_MONGO_I64: BSON_APPEND_INT64(b, f[i].key, *(const int64_t *)(const void *)p); break;
        case RP_MONGO_INT: BSON_APPEND_INT64(b, f[i].key, *(const int *)(const void *)p); break;
        }
    }
}

void rp_mongo_get_fields(const bson_t *d, void *rec, const rp_mongo_field_t *f, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *p = (char *)rec + f[i].off;
        switch (f[i].kind) {
        case RP_MONGO_STR:
        case RP_MONGO_OPT: rp_mongo_copy_str(d, f[i].key, p, f[i].cap); break;
        case RP_MONGO_MS: *(int64_t *)(void *)p = rp_mongo_get_ms(d, f[i].key); break;
        case RP_MONGO_I64: *(int64_t *)(void *)p = rp_mongo_get_i64(d, f[i].key); break;
        case RP_MONGO_INT: *(int *)(void *)p = (int)rp_mongo_get_i64(d, f[i].key); break;
        }
    }
}

/* ---- audit log ---- */

bool rp_mongo_audit_indexes(rp_mongo_t *m, rp_err_t *err) {
    static const rp_mongo_index_t ix[] = {
        {RP_MONGO_AUDIT_COLLECTION, "audit_logs_at", NULL, false, {{"log", 1}, {"at", -1}, {"_id", -1}}},
        {RP_MONGO_AUDIT_COLLECTION,
         "audit_logs_target",
         NULL,
         false,
         {{"log", 1}, {"targetId", 1}, {"at", -1}, {"_id", -1}}},
        {RP_MONGO_AUDIT_COLLECTION,
         "audit_logs_actor",
         NULL,
         false,
         {{"log", 1}, {"actorId", 1}, {"at", -1}, {"_id", -1}}},
    };
    return rp_mongo_create_index_table(m, ix, sizeof ix / sizeof ix[0], err);
}

bool rp_mongo_audit_append(rp_mongo_txn_t *tx, const char *log, const rp_audit_entry_t *a) {
    char id[RP_OID_LEN];
    if (!a) return true;
    bson_t doc = BSON_INITIALIZER;
    rp_oid_new(id);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "log", log);
    rp_mongo_append_str(&doc, "actorId", a->actor_id);
    rp_mongo_append_str(&doc, "actorUsername", a->actor_username);
    rp_mongo_append_str(&doc, "action", a->action);
    rp_mongo_append_str(&doc, "targetType", a->target_type);
    rp_mongo_append_str(&doc, "targetId", a->target_id);
    rp_mongo_append_opaque(&doc, "before", a->before);
    rp_mongo_append_opaque(&doc, "after", a->after);
    BSON_APPEND_DATE_TIME(&doc, "at", a->at);
    bool ok = rp_mongo_txn_insert(tx, RP_MONGO_AUDIT_COLLECTION, &doc);
    bson_destroy(&doc);
    return ok;
}

static json_t *audit_row(const bson_t *d) {
    return json_pack("{s:o, s:{s:o, s:o}, s:o, s:{s:o, s:o}, s:o, s:o, s:o}", "id", rp_mongo_get_json(d, "_id"),
                     "actor", "id", rp_mongo_get_json(d, "actorId"), "username", rp_mongo_get_json(d, "actorUsername"),
                     "action", rp_mongo_get_json(d, "action"), "target", "type", rp_mongo_get_json(d, "targetType"),
                     "id", rp_mongo_get_json(d, "targetId"), "before", rp_mongo_get_opaque(d, "before"), "after",
                     rp_mongo_get_opaque(d, "after"), "at", rp_mongo_get_time(d, "at"));
}

static void and_eq (bson_t * clauses, uint32_t *n, const char *field, const char *value) {
    char kb[16];
    bson_t c;
    const char *key = rp_mongo_array_key((*n)++, kb); /* once: BSON_APPEND_* evaluate the key argument twice */
    BSON_APPEND_DOCUMENT_BEGIN(clauses, key, &c);
    BSON_APPEND_UTF8(&c, field, value);
    bson_append_document_end(clauses, &c);
}

bool rp_mongo_audit_list(rp_mongo_t *m, const char *log, const char *target_type, const char *target_id,
                         const char *actor_id, const char *cursor, int limit, json_t **items, bool *more,
                         rp_err_t *err) {
    bson_t filter = BSON_INITIALIZER, clauses;
    uint32_t n = 0;
    bool ok = false;
    *items = NULL;
    *more = false;
    BSON_APPEND_ARRAY_BEGIN(&filter, "$and", &clauses);
    and_eq (&clauses, &n, "log", log);
    if (target_type) and_eq (&clauses, &n, "targetType", target_type);
    if (target_id) and_eq (&clauses, &n, "targetId", target_id);
    if (actor_id) and_eq (&clauses, &n, "actorId", actor_id);
    int rc = cursor ? rp_mongo_cursor_clause(m, RP_MONGO_AUDIT_COLLECTION, cursor, "at", &clauses, &n, err) : 1;
    bson_append_array_end(&filter, &clauses);
    if (rc < 0) goto done;
    if (rc == 0) { /* unknown cursor: an empty page, as in SQLite */
        *items = json_array();
        ok = true;
        goto done;
    }
    bson_t *sort = BCON_NEW("at", BCON_INT32(-1), "_id", BCON_INT32(-1));
    ok = rp_mongo_find_page(m, RP_MONGO_AUDIT_COLLECTION, &filter, sort, limit, audit_row, items, more, err);
    bson_destroy(sort);
done:
    bson_destroy(&filter);
    return ok;
}

/* ---- typed rows and aggregation ---- */

bool rp_mongo_rows_add(const bson_t *doc, void *p) {
    rp_mongo_rows_t *r = p;
    if (r->limit >= 0 && r->n >= (size_t)r->limit) {
        r->more = true;
        return false;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->items = rp_realloc(r->items, r->cap * r->elem_size);
    }
    void *elem = (char *)r->items + r->n++ * r->elem_size;
    memset(elem, 0, r->elem_size);
    r->fill(doc, elem);
    return true;
}

bool rp_mongo_find_page_into(rp_mongo_t *m, const char *coll, const bson_t *filter, const bson_t *sort, int limit,
                             void (*fill)(const bson_t *doc, void *elem), void (*release)(void *elem), size_t elem_size,
                             void **items, size_t *n, bool *more, rp_err_t *err) {
    rp_mongo_rows_t rows = {.fill = fill, .elem_size = elem_size, .limit = limit};
    bool ok = true;
    *items = NULL;
    *n = 0;
    *more = false;
    if (limit <= 0) return true; /* SQLite's LIMIT 0: nothing (a MongoDB limit 0 would be "all") */
    bson_t opts = BSON_INITIALIZER;
    if (sort) BSON_APPEND_DOCUMENT(&opts, "sort", sort);
    BSON_APPEND_INT64(&opts, "limit", (int64_t)limit + 1);
    ok = rp_mongo_find(m, coll, filter, &opts, rp_mongo_rows_add, &rows, err);
    bson_destroy(&opts);
    if (!ok) {
        for (size_t i = 0; release && i < rows.n; i++)
            release((char *)rows.items + i * elem_size);
        free(rows.items);
        return false;
    }
    if (rows.n == 0) free(rows.items);
    *items = rows.n ? rows.items : NULL;
    *n = rows.n;
    *more = rows.more;
    return true;
}

bool rp_mongo_aggregate(rp_mongo_t *m, const char *coll, const bson_t *pipeline, rp_mongo_row_fn row, void *ctx,
                        rp_err_t *err) {
    return each_doc(m, coll, NULL, NULL, pipeline, row, ctx, err);
}
