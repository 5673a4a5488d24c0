/* ipnet.h - IPv4/IPv6 addresses and networks parsed strictly, the trusted-proxy list
 * (TRUSTED_PROXIES) and the client address read from a forwarding header (X-Forwarded-For and the
 * like) from the right. Pure functions on caller-owned values: thread-safe. */
#ifndef RP_LIB_IPNET_H
#define RP_LIB_IPNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An address; IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are held as the IPv4 address, so both
 * spellings of one client are one client. */
typedef struct rp_ipaddr {
    uint8_t family;    /* 4 or 6 */
    uint8_t bytes[16]; /* network order; IPv4 uses the first 4 */
} rp_ipaddr_t;

/* A network: an address whose bits past prefix are zero. */
typedef struct rp_ipnet {
    rp_ipaddr_t addr;
    uint8_t prefix; /* 0..32 (IPv4) or 0..128 (IPv6) */
} rp_ipnet_t;

#define RP_IPNET_LIST_MAX 64
/* Room for any address or /64 key as text, with its NUL. */
#define RP_IPADDR_TEXT_MAX 64

typedef struct rp_ipnet_list {
    size_t n;
    rp_ipnet_t nets[RP_IPNET_LIST_MAX];
} rp_ipnet_list_t;

/* Parses len bytes of s as one address in plain text: dotted-quad IPv4 (no leading zeros, no
 * short forms) or IPv6 (no zone, no brackets, no port). Returns false on anything else; *out is
 * zeroed first. */
bool rp_ipaddr_parse(const char *s, size_t len, rp_ipaddr_t *out);

/* Parses len bytes of s as an address ("10.0.0.1", a host network) or a CIDR ("10.0.0.0/8",
 * "fd00::/8"). Refuses a prefix out of range or with leading zeros, and a CIDR with host bits
 * set (10.0.0.1/8: most likely a typo). *out is zeroed first. */
bool rp_ipnet_parse(const char *s, size_t len, rp_ipnet_t *out);

/* Parses a comma-separated list of rp_ipnet_parse entries (spaces around entries allowed; an
 * empty s gives an empty list). On failure *out is empty and bad receives the offending entry
 * (bounded, NUL-terminated) or a reason such as "more than 64 entries". */
bool rp_ipnet_list_parse(const char *s, rp_ipnet_list_t *out, char *bad, size_t bad_cap);

/* True when a lies in one of the list's networks. */
bool rp_ipnet_list_contains(const rp_ipnet_list_t *list, const rp_ipaddr_t *a);

/* True for 127.0.0.0/8 and ::1. */
bool rp_ipaddr_is_loopback(const rp_ipaddr_t *a);

/* Writes the key a client is rate-limited by into out (cap >= RP_IPADDR_TEXT_MAX): the IPv4
 * address as text, or an IPv6 address's /64 network (e.g. "2001:db8:1:2::/64"), because one
 * IPv6 subscriber usually holds a whole /64 and could otherwise rotate through it. */
void rp_ipaddr_client_key(const rp_ipaddr_t *a, char *out, size_t cap);

typedef enum {
    RP_FWD_ABSENT,    /* no entry at all: the peer is the client */
    RP_FWD_CLIENT,    /* *client is set */
    RP_FWD_MALFORMED, /* the entry in the client's place cannot be parsed (or too many lines) */
} rp_forwarded_t;

/* Reads the client address from the values of a forwarding header's lines, in the order they
 * came (several lines are one list, RFC 9110 section 5.3). Entries are read from the right:
 * trusted addresses are hops of the operator's own proxies and are skipped; the first untrusted
 * one is the client; when every entry is trusted, the left-most one is. An entry is an address
 * as rp_ipaddr_parse takes it, optionally as "a.b.c.d:port", "[v6]" or "[v6]:port"; empty
 * entries are skipped. Entries left of the client are never looked at: they are whatever the
 * client wrote. *client is zeroed first. */
rp_forwarded_t rp_ipnet_forwarded_client(const rp_ipnet_list_t *trusted, const char *const *values, size_t nvalues,
                                         rp_ipaddr_t *client);

#endif
