/* Tests api/metrics.c: counters by status class and cumulative histogram buckets. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "routes.h"

Test(metrics, renders_counters_and_histograms) {
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    rp_metrics_t *m = rp_metrics_new(n);
    rp_metrics_observe(m, 0, 200, 0.5);
    rp_metrics_observe(m, 0, 200, 30.0);
    rp_metrics_observe(m, 0, 503, 7000.0);
    rp_metrics_observe(m, (size_t)-1, 404, 0.1);
    char *text = rp_metrics_render(m, NULL, NULL, NULL);
    char line[256];
    snprintf(line, sizeof line, "rp_http_requests_total{method=\"%s\",route=\"%s\",status=\"2xx\"} 2\n", t[0].method,
             t[0].pattern);
    cr_assert(strstr(text, line), "%s", text);
    snprintf(line, sizeof line, "rp_http_requests_total{method=\"%s\",route=\"%s\",status=\"5xx\"} 1\n", t[0].method,
             t[0].pattern);
    cr_assert(strstr(text, line));
    cr_assert(strstr(text, "route=\"unmatched\",status=\"4xx\"} 1\n"));
    /* cumulative: 1 request <= 1 ms, 2 <= 50 ms, all 3 in +Inf */
    snprintf(line, sizeof line, "rp_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"0.001\"} 1\n",
             t[0].method, t[0].pattern);
    cr_assert(strstr(text, line), "%s", text);
    snprintf(line, sizeof line, "rp_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"0.05\"} 2\n",
             t[0].method, t[0].pattern);
    cr_assert(strstr(text, line), "%s", text);
    snprintf(line, sizeof line, "rp_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} 3\n",
             t[0].method, t[0].pattern);
    cr_assert(strstr(text, line));
    cr_assert_null(strstr(text, "rp_amqp_"), "an embedded api has no broker connections: %s", text);
    free(text);
    rp_metrics_free(m);
}

Test(metrics, renders_what_the_broker_connections_did_with_long_messages) {
    size_t n;
    (void)rp_routes_table(&n);
    rp_metrics_t *m = rp_metrics_new(n);
    rp_amqp_stats_t s = {.reopened_calls = 3,
                         .reopened_consumers = 5,
                         .long_reply_conns = 2,
                         .bundles_sent = 11,
                         .bundled_calls = 97,
                         .shared_waiting = 4};
    char *text = rp_metrics_render(m, &s, NULL, NULL);
    cr_assert(strstr(text, "# TYPE rp_amqp_connections_reopened_total counter\n"), "%s", text);
    cr_assert(strstr(text, "\nrp_amqp_connections_reopened_total{side=\"calls\"} 3\n"), "%s", text);
    cr_assert(strstr(text, "\nrp_amqp_connections_reopened_total{side=\"consumers\"} 5\n"), "%s", text);
    cr_assert(strstr(text, "# TYPE rp_amqp_long_reply_connections gauge\nrp_amqp_long_reply_connections 2\n"), "%s",
              text);
    cr_assert(strstr(text, "# TYPE rp_amqp_bundles_sent_total counter\nrp_amqp_bundles_sent_total 11\n"), "%s", text);
    cr_assert(strstr(text, "# TYPE rp_amqp_bundled_calls_total counter\nrp_amqp_bundled_calls_total 97\n"), "%s", text);
    cr_assert(strstr(text, "# TYPE rp_amqp_shared_calls_waiting gauge\nrp_amqp_shared_calls_waiting 4\n"), "%s", text);
    free(text);
    rp_metrics_free(m);
}

Test(metrics, renders_how_tokens_were_checked) {
    size_t n;
    (void)rp_routes_table(&n);
    rp_metrics_t *m = rp_metrics_new(n);
    rp_token_stats_t tokens = {.kept = 41, .verified = 7};
    char *text = rp_metrics_render(m, NULL, NULL, &tokens);
    cr_assert(strstr(text, "# TYPE rp_token_checks_total counter\n"), "%s", text);
    cr_assert(strstr(text, "\nrp_token_checks_total{how=\"kept\"} 41\nrp_token_checks_total{how=\"verified\"} 7\n"),
              "%s", text);
    free(text);
    char *none = rp_metrics_render(m, NULL, NULL, NULL);
    cr_assert_null(strstr(none, "rp_token_checks_total"), "%s", none);
    free(none);
    rp_metrics_free(m);
}
