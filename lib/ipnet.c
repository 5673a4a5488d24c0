/* ipnet.c - strict address and CIDR parsing, trusted-proxy matching and the right-to-left reading
 * of forwarding headers (see ipnet.h). No state: thread-safe. */
#include "ipnet.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Parses len bytes of decimal digits without a sign or leading zeros ("0" itself is fine), at
 * most max; false otherwise. */
static bool parse_uint(const char *s, size_t len, unsigned max, unsigned *out) {
    unsigned v = 0;
    *out = 0;
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0')) return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i])) return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

/* Dotted-quad only: inet_pton's rules differ between C libraries (leading zeros read as octal by
 * some), and an address that two parsers read differently is a way around a check. */
static bool parse_v4(const char *s, size_t len, uint8_t out[4]) {
    size_t part = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') continue;
        unsigned v;
        if (part >= 4 || !parse_uint(s + start, i - start, 255, &v)) return false;
        out[part++] = (uint8_t)v;
        start = i + 1;
    }
    return part == 4;
}

bool rp_ipaddr_parse(const char *s, size_t len, rp_ipaddr_t *out) {
    char buf[INET6_ADDRSTRLEN];
    memset(out, 0, sizeof *out);
    if (!s || len == 0 || len >= sizeof buf || memchr(s, '\0', len)) return false;
    if (!memchr(s, ':', len)) {
        if (!parse_v4(s, len, out->bytes)) return false;
        out->family = 4;
        return true;
    }
    for (size_t i = 0; i < len; i++) /* hex digits, colons and an embedded IPv4 tail only */
        if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':' ||
              s[i] == '.'))
            return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, out->bytes) != 1) {
        memset(out, 0, sizeof *out);
        return false;
    }
    out->family = 6;
    if (memcmp(out->bytes, V4_MAPPED, sizeof V4_MAPPED) == 0) {
        memmove(out->bytes, out->bytes + 12, 4);
        memset(out->bytes + 4, 0, 12);
        out->family = 4;
    }
    return true;
}

static unsigned family_bits(const rp_ipaddr_t *a) {
    return a->family == 4 ? 32u : 128u;
}

/* True when a and b agree on their first prefix bits. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix) {
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool rp_ipnet_parse(const char *s, size_t len, rp_ipnet_t *out) {
    memset(out, 0, sizeof *out);
    const char *slash = s ? memchr(s, '/', len) : NULL;
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (!rp_ipaddr_parse(s, alen, &out->addr)) return false;
    bool mapped = out->addr.family == 4 && memchr(s, ':', alen) != NULL;
    unsigned bits = family_bits(&out->addr), prefix = bits;
    if (slash) {
        unsigned max = mapped ? 128u : bits;
        if (!parse_uint(slash + 1, len - alen - 1, max, &prefix)) goto bad;
        if (mapped) {
            if (prefix < 96) goto bad; /* wider than the mapped range: not an IPv4 network */
            prefix -= 96;
        }
    }
    uint8_t masked[16];
    memcpy(masked, out->addr.bytes, sizeof masked);
    for (unsigned i = prefix; i < bits; i++)
        masked[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
    if (memcmp(masked, out->addr.bytes, sizeof masked) != 0) goto bad; /* host bits set */
    out->prefix = (uint8_t)prefix;
    return true;
bad:
    memset(out, 0, sizeof *out);
    return false;
}

static void trim(const char **s, size_t *len) {
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

bool rp_ipnet_list_parse(const char *s, rp_ipnet_list_t *out, char *bad, size_t bad_cap) {
    memset(out, 0, sizeof *out);
    if (bad_cap) bad[0] = '\0';
    size_t total = s ? strlen(s) : 0;
    const char *all = s;
    trim(&all, &total);
    if (total == 0) return true;
    for (const char *p = all, *end = all + total;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        const char *e = p;
        trim(&e, &len);
        if (len == 0) {
            if (bad_cap) snprintf(bad, bad_cap, "an empty entry");
            goto fail;
        }
        if (out->n == RP_IPNET_LIST_MAX) {
            if (bad_cap) snprintf(bad, bad_cap, "more than %d entries", RP_IPNET_LIST_MAX);
            goto fail;
        }
        if (!rp_ipnet_parse(e, len, &out->nets[out->n])) {
            if (bad_cap) snprintf(bad, bad_cap, "'%.*s'", (int)(len > 64 ? 64 : len), e);
            goto fail;
        }
        out->n++;
        if (!comma) break;
        p = comma + 1;
    }
    return true;
fail:
    memset(out, 0, sizeof *out);
    return false;
}

bool rp_ipnet_list_contains(const rp_ipnet_list_t *list, const rp_ipaddr_t *a) {
    if (!list || !a || !a->family) return false;
    for (size_t i = 0; i < list->n; i++)
        if (list->nets[i].addr.family == a->family &&
            prefix_equal(list->nets[i].addr.bytes, a->bytes, list->nets[i].prefix))
            return true;
    return false;
}

bool rp_ipaddr_is_loopback(const rp_ipaddr_t *a) {
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (a->family == 4) return a->bytes[0] == 127;
    return a->family == 6 && memcmp(a->bytes, v6_loopback, 16) == 0;
}

void rp_ipaddr_client_key(const rp_ipaddr_t *a, char *out, size_t cap) {
    char text[INET6_ADDRSTRLEN] = "";
    if (cap == 0) return;
    if (a->family == 4) {
        snprintf(out, cap, "%u.%u.%u.%u", a->bytes[0], a->bytes[1], a->bytes[2], a->bytes[3]);
        return;
    }
    uint8_t net[16] = {0};
    memcpy(net, a->bytes, 8);
    if (a->family != 6 || !inet_ntop(AF_INET6, net, text, sizeof text)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, "%s/64", text);
}

/* One forwarding entry: an address, "a.b.c.d:port", "[v6]" or "[v6]:port". */
static bool parse_entry(const char *s, size_t len, rp_ipaddr_t *out) {
    unsigned port;
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close) return false;
        size_t alen = (size_t)(close - s) - 1, rest = len - alen - 2;
        if (rest && (close[1] != ':' || !parse_uint(close + 2, rest - 1, 65535, &port))) return false;
        return memchr(s + 1, ':', alen) && rp_ipaddr_parse(s + 1, alen, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) { /* exactly one: IPv4 with a port */
        size_t alen = (size_t)(colon - s);
        return parse_uint(colon + 1, len - alen - 1, 65535, &port) && rp_ipaddr_parse(s, alen, out);
    }
    return rp_ipaddr_parse(s, len, out);
}

rp_forwarded_t rp_ipnet_forwarded_client(const rp_ipnet_list_t *trusted, const char *const *values, size_t nvalues,
                                         rp_ipaddr_t *client) {
    bool seen = false;
    memset(client, 0, sizeof *client);
    for (size_t v = nvalues; v-- > 0;) {
        const char *line = values[v] ? values[v] : "";
        size_t end = strlen(line);
        for (;;) {
            size_t start = end;
            while (start > 0 && line[start - 1] != ',')
                start--;
            const char *e = line + start;
            size_t len = end - start;
            trim(&e, &len);
            if (len > 0) {
                rp_ipaddr_t a;
                if (!parse_entry(e, len, &a)) {
                    memset(client, 0, sizeof *client);
                    return RP_FWD_MALFORMED;
                }
                *client = a; /* the left-most so far, should every entry be trusted */
                seen = true;
                if (!rp_ipnet_list_contains(trusted, &a)) return RP_FWD_CLIENT;
            }
            if (start == 0) break;
            end = start - 1;
        }
    }
    return seen ? RP_FWD_CLIENT : RP_FWD_ABSENT;
}
