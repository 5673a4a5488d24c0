/* webhook_http.h - one signed POST of a webhook delivery with libcurl, behind the SSRF guard:
 * the target's host is resolved once per attempt, every address it resolves to must be public
 * unicast (unless private targets are allowed), and the connection is pinned to the checked
 * address (CURLOPT_RESOLVE), so a second lookup cannot swap it. Only https:// (and http:// when
 * allowed), no redirects, no proxies from the environment, connect and total timeouts.
 * Thread-safe once rp_webhook_http_init ran (each call uses its own curl handle). */
#ifndef RP_WORKERS_REWARD_WEBHOOK_HTTP_H
#define RP_WORKERS_REWARD_WEBHOOK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "webhook.h"

/* curl_global_init; once per process, before any thread posts. False when libcurl cannot start. */
bool rp_webhook_http_init(void);

/* What a target must satisfy. */
typedef struct rp_webhook_policy {
    bool allow_private, allow_http;
    int timeout_ms, connect_timeout_ms;
} rp_webhook_policy_t;

/* Whether url is an absolute http(s) URL with a host that policy's schemes allow (no other
 * check: addresses are judged at delivery time). False with a reason in why (cap bytes). */
bool rp_webhook_url_ok(const char *url, bool allow_http, char *why, size_t cap);

/* Whether a delivery may connect to address sa: false for loopback, private, shared (CGNAT),
 * link-local, multicast, unspecified, broadcast and reserved addresses, of IPv4 and IPv6
 * (IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry). */
bool rp_webhook_addr_public(const struct sockaddr *sa);

/* POSTs body (len bytes) to url as delivery webhook_id signed with secret at the current time,
 * under policy, and fills *out (zeroed first): when it started, the HTTP status (0 when none came
 * back), an error text when the request failed or was refused before it was sent, the latency
 * and the start of the answer. Never follows a redirect. */
void rp_webhook_http_post(const char *url, const char *webhook_id, const char *secret, const char *body, size_t len,
                          const rp_webhook_policy_t *policy, rp_webhook_attempt_t *out);

#endif
