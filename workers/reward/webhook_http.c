/* webhook_http.c - signed POSTs behind the SSRF guard (see webhook_http.h). */
#include "webhook_http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "timeutil.h"
#include "webhook_sign.h"

bool rp_webhook_http_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* The parts of url a delivery needs; false with why when it is no absolute http(s) URL. */
static bool url_parts(const char *url, bool allow_http, char *scheme, size_t scap, char *host, size_t hcap, int *port,
                      char *why, size_t cap) {
    CURLU *u = curl_url();
    char *sch = NULL, *h = NULL, *p = NULL;
    bool ok = false;
    if (!u) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK || !h[0]) {
        snprintf(why, cap, "must be an absolute URL with a host");
        goto done;
    }
    if (strcmp(sch, "https") != 0 && !(allow_http && strcmp(sch, "http") == 0)) {
        snprintf(why, cap, allow_http ? "must be an http:// or https:// URL" : "must be an https:// URL");
        goto done;
    }
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') { /* an IPv6 literal, without its brackets */
        memmove(h, h + 1, hl - 2);
        h[hl - 2] = '\0';
    }
    if ((size_t)snprintf(scheme, scap, "%s", sch) >= scap || (size_t)snprintf(host, hcap, "%s", h) >= hcap) {
        snprintf(why, cap, "the host name is too long");
        goto done;
    }
    *port = atoi(p);
    ok = true;
done:
    curl_free(sch);
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return ok;
}

bool rp_webhook_url_ok(const char *url, bool allow_http, char *why, size_t cap) {
    char scheme[16], host[256];
    int port = 0;
    return url_parts(url, allow_http, scheme, sizeof scheme, host, sizeof host, &port, why, cap);
}

static bool v4_public(uint32_t a) {
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
    if (b0 == 0 || b0 == 10 || b0 == 127) return false;               /* this network, private, loopback */
    if (b0 == 100 && (b1 & 0xc0) == 64) return false;                 /* 100.64/10 shared (CGNAT) */
    if (b0 == 169 && b1 == 254) return false;                         /* link-local (cloud metadata) */
    if (b0 == 172 && (b1 & 0xf0) == 16) return false;                 /* 172.16/12 */
    if (b0 == 192 && b1 == 168) return false;                         /* 192.168/16 */
    if (b0 == 192 && b1 == 0 && (uint8_t)(a >> 8) == 0) return false; /* 192.0.0/24 protocol assignments */
    if (b0 == 198 && (b1 & 0xfe) == 18) return false;                 /* 198.18/15 benchmarking */
    if (b0 >= 224) return false;                                      /* multicast, reserved, broadcast */
    return true;
}

bool rp_webhook_addr_public(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) return v4_public(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6) return false;
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, 12) == 0)
        return v4_public((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    static const uint8_t zero[15] = {0};
    if (memcmp(b, zero, 15) == 0) return false;              /* :: and ::1 */
    if ((b[0] & 0xfe) == 0xfc) return false;                 /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false; /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return false; /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff) return false;                          /* multicast */
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return false; /* 64:ff9b::/96 NAT64 */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return false; /* documentation */
    return true;
}

typedef struct sink {
    char *excerpt;
    size_t cap, len;
} sink_t;

/* Keeps the start of the answer and reads (and drops) the rest, bounded by the total timeout. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *p) {
    sink_t *s = p;
    size_t n = size * nmemb;
    if (s->len + 1 < s->cap) {
        size_t take = n < s->cap - 1 - s->len ? n : s->cap - 1 - s->len;
        memcpy(s->excerpt + s->len, data, take);
        s->len += take;
        s->excerpt[s->len] = '\0';
    }
    return n;
}

/* Resolves host once and picks the address to pin: the first one, provided every address is
 * allowed (a name that also resolves to a private address is refused whole, so a rebinding
 * answer cannot choose for us). False with the attempt's error. */
static bool resolve_pinned(const char *host, bool allow_private, char *addr, size_t cap, rp_webhook_attempt_t *out) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(out->error, sizeof out->error, "DNS_FAILED: %s", gai_strerror(rc));
        return false;
    }
    bool ok = true;
    addr[0] = '\0';
    for (struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN] = "";
        const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                                 : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        inet_ntop(ai->ai_family, a, text, sizeof text);
        if (!allow_private && !rp_webhook_addr_public(ai->ai_addr)) {
            snprintf(out->error, sizeof out->error, "ADDRESS_NOT_ALLOWED: %.64s resolves to %s", host, text);
            ok = false;
        } else if (!addr[0]) {
            snprintf(addr, cap, ai->ai_family == AF_INET6 ? "[%s]" : "%s", text);
        }
    }
    freeaddrinfo(res);
    if (ok && !addr[0]) {
        snprintf(out->error, sizeof out->error, "DNS_FAILED: no address for %.64s", host);
        ok = false;
    }
    return ok;
}

void rp_webhook_http_post(const char *url, const char *webhook_id, const char *secret, const char *body, size_t len,
                          const rp_webhook_policy_t *policy, rp_webhook_attempt_t *out) {
    char scheme[16], host[256], addr[INET6_ADDRSTRLEN + 2], pin[320], why[96];
    char h_id[RP_WEBHOOK_ID_LEN + 16], h_ts[48], h_sig[RP_WEBHOOK_SIGNATURE_LEN + 24], sig[RP_WEBHOOK_SIGNATURE_LEN];
    int port = 0;
    struct curl_slist *headers = NULL, *resolve = NULL;
    CURL *h = NULL;
    sink_t sink = {out->excerpt, sizeof out->excerpt, 0};
    memset(out, 0, sizeof *out);
    out->at = rp_now_ms();
    int64_t t0 = rp_mono_ms();
    if (!url_parts(url, policy->allow_http, scheme, sizeof scheme, host, sizeof host, &port, why, sizeof why)) {
        snprintf(out->error, sizeof out->error, "URL_NOT_ALLOWED: %s", why);
        goto done;
    }
    if (!resolve_pinned(host, policy->allow_private, addr, sizeof addr, out)) goto done;
    int64_t ts = out->at / 1000;
    if (!rp_webhook_sign(secret, webhook_id, ts, body, len, sig)) {
        snprintf(out->error, sizeof out->error, "SECRET_INVALID");
        goto done;
    }
    snprintf(pin, sizeof pin, "%s:%d:%s", host, port, addr);
    snprintf(h_id, sizeof h_id, "webhook-id: %s", webhook_id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %" PRId64, ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, h_id);
    headers = curl_slist_append(headers, h_ts);
    headers = curl_slist_append(headers, h_sig);
    headers = curl_slist_append(headers, "User-Agent: reward-platform-webhooks/1");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    resolve = curl_slist_append(NULL, pin);
    if (!headers || !resolve || !(h = curl_easy_init())) {
        snprintf(out->error, sizeof out->error, "INTERNAL: libcurl could not start a request");
        goto done;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, policy->allow_http ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)policy->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)policy->timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    out->http_status = (int)status;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out->error, sizeof out->error, "TIMEOUT: no answer within %d ms", policy->timeout_ms);
    else if (rc == CURLE_COULDNT_CONNECT)
        snprintf(out->error, sizeof out->error, "CONNECT_FAILED: %s", curl_easy_strerror(rc));
    else if (rc != CURLE_OK)
        snprintf(out->error, sizeof out->error, "REQUEST_FAILED: %s", curl_easy_strerror(rc));
done:
    out->latency_ms = rp_mono_ms() - t0;
    if (h) curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
}
