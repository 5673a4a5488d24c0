/* log.c - JSON-lines logger (see log.h); the level is an atomic, each line is written with one fwrite. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_util.h"
#include "timeutil.h"

static atomic_int min_level = RP_LOG_INFO;
static char component[32] = "platform";

static const char *level_names[] = {"debug", "info", "warn", "error"};

void rp_log_set_level(rp_log_level_t level) {
    atomic_store(&min_level, (int)level);
}

void rp_log_set_component(const char *name) {
    snprintf(component, sizeof component, "%s", name);
}

int rp_log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (s && strcasecmp(s, level_names[i]) == 0) return i;
    return -1;
}

static void emit(json_t *line) {
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL; written with an explicit length */
        fwrite(text, 1, n + 1, stderr);
        free(text);
    }
    json_decref(line);
}

static json_t *base_line(rp_log_level_t level) {
    char ts[32];
    rp_time_iso(rp_now_ms(), ts);
    return json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "component", component);
}

bool rp_log_enabled(rp_log_level_t level) {
    return (int)level >= atomic_load(&min_level);
}

void rp_log(rp_log_level_t level, const char *module, const char *fmt, ...) {
    if (!rp_log_enabled(level)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0) msg[0] = '\0';
    va_end(ap);
    json_t *line = base_line(level);
    if (!line) return;
    json_object_set_new(line, "module", json_string(module ? module : "-"));
    json_t *m = json_string(msg);
    json_object_set_new(line, "msg", m ? m : json_string("(message was not valid UTF-8)"));
    emit(line);
}

void rp_log_report(const char *module, json_t *fields) {
    json_t *line = base_line(RP_LOG_INFO);
    if (line) {
        json_object_set_new(line, "module", json_string(module));
        json_object_update_missing(line, fields);
        emit(line);
    }
    json_decref(fields);
}

void rp_log_request(const char *request_id, const char *user_id, const char *method, const char *route, int status,
                    double latency_ms) {
    if (RP_LOG_INFO < atomic_load(&min_level)) return;
    json_t *line = base_line(RP_LOG_INFO);
    if (!line) return;
    json_object_set_new(line, "module", json_string("access"));
    json_object_set_new(line, "requestId", json_string(request_id ? request_id : ""));
    json_object_set_new(line, "userId", rp_json_str_or_null(user_id));
    json_object_set_new(line, "method", json_string(method ? method : ""));
    json_t *r = json_string(route ? route : "");
    json_object_set_new(line, "route", r ? r : json_string("(invalid)"));
    json_object_set_new(line, "status", json_integer(status));
    json_object_set_new(line, "latencyMs", json_real(latency_ms));
    emit(line);
}
