/* Tests lib/ipnet.c: strict address and CIDR parsing, trusted-proxy matching, the rate-limit key
 * of a client and the right-to-left reading of X-Forwarded-For. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ipnet.h"

static bool addr(const char *s, rp_ipaddr_t *a) {
    return rp_ipaddr_parse(s, strlen(s), a);
}

static const char *key_of(const char *s) {
    static char key[RP_IPADDR_TEXT_MAX];
    rp_ipaddr_t a;
    cr_assert(addr(s, &a), "%s", s);
    rp_ipaddr_client_key(&a, key, sizeof key);
    return key;
}

Test(ipnet, addresses_parse_strictly) {
    rp_ipaddr_t a;
    const char *good[] = {"0.0.0.0",     "127.0.0.1",       "255.255.255.255", "::1",
                          "2001:db8::1", "::ffff:10.1.2.3", "fe80::1:2:3:4"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert(addr(good[i], &a), "%s", good[i]);
    const char *bad[] = {"",         "1.2.3",      "1.2.3.4.5",   "256.1.1.1",         "01.2.3.4",    "1.2.3.04",
                         "1.2.3.-4", "1.2.3.4 ",   " 1.2.3.4",    "1.2.3.4/32",        "0x7f.0.0.1",  "127.1",
                         "::1%lo",   "[::1]",      "2001:db8::g", "1:2:3:4:5:6:7:8:9", "example.com", "1..2.3",
                         "+1.2.3.4", "1.2.3.4:80", "unknown"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_not(addr(bad[i], &a), "%s must be refused", bad[i]);
    /* a NUL inside the given length is not an address */
    cr_assert_not(rp_ipaddr_parse("1.2.3.4\0", 8, &a));
}

Test(ipnet, mapped_ipv6_is_the_ipv4_client) {
    cr_assert_str_eq(key_of("::ffff:10.1.2.3"), "10.1.2.3");
    cr_assert_str_eq(key_of("10.1.2.3"), "10.1.2.3");
    /* every spelling of one IPv6 address, and every address of its /64, is one client */
    cr_assert_str_eq(key_of("2001:db8:0:5::1"), "2001:db8:0:5::/64");
    cr_assert_str_eq(key_of("2001:0db8:0000:0005:ffff:0:0:9"), "2001:db8:0:5::/64");
    cr_assert_str_neq(key_of("2001:db8:0:6::1"), "2001:db8:0:5::/64");
}

Test(ipnet, networks_and_lists) {
    rp_ipnet_list_t l;
    char bad[96];
    cr_assert(rp_ipnet_list_parse(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,::ffff:172.16.0.0/108", &l, bad, sizeof bad),
              "%s", bad);
    cr_assert_eq(l.n, 4u);
    rp_ipaddr_t a;
    const char *in[] = {"10.200.3.4", "192.168.1.7", "fd12::5", "172.16.9.9", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        cr_assert(addr(in[i], &a));
        cr_assert(rp_ipnet_list_contains(&l, &a), "%s is trusted", in[i]);
    }
    const char *out[] = {"11.0.0.1", "192.168.1.8", "fe00::1", "172.32.0.1", "::1", "127.0.0.1"};
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
        cr_assert(addr(out[i], &a));
        cr_assert_not(rp_ipnet_list_contains(&l, &a), "%s is not trusted", out[i]);
    }
    cr_assert(rp_ipnet_list_parse("", &l, bad, sizeof bad));
    cr_assert_eq(l.n, 0u);
    cr_assert(rp_ipnet_list_parse("0.0.0.0/0", &l, bad, sizeof bad));
    cr_assert(addr("8.8.8.8", &a));
    cr_assert(rp_ipnet_list_contains(&l, &a));

    const char *refused[] = {"10.0.0.1/8",         "10.0.0.0/33",       "10.0.0.0/08",         "10.0.0.0/",
                             "fd00::/129",         "10.0.0.0/8,",       "10.0.0.0/8,,1.2.3.4", "localhost",
                             "10.0.0.0/8 1.2.3.4", "::ffff:10.0.0.0/8", "1.2.3.4/-1"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        cr_assert_not(rp_ipnet_list_parse(refused[i], &l, bad, sizeof bad), "%s must be refused", refused[i]);
        cr_assert_eq(l.n, 0u);
        cr_assert(bad[0], "a reason is given for %s", refused[i]);
    }
    char many[2048] = "";
    for (int i = 0; i <= RP_IPNET_LIST_MAX; i++) {
        char one[24];
        snprintf(one, sizeof one, "%s10.0.%d.1", i ? "," : "", i);
        strcat(many, one);
    }
    cr_assert_not(rp_ipnet_list_parse(many, &l, bad, sizeof bad));
    cr_assert(strstr(bad, "more than"));
}

Test(ipnet, loopback) {
    rp_ipaddr_t a;
    cr_assert(addr("127.9.9.9", &a) && rp_ipaddr_is_loopback(&a));
    cr_assert(addr("::1", &a) && rp_ipaddr_is_loopback(&a));
    cr_assert(addr("::ffff:127.0.0.1", &a) && rp_ipaddr_is_loopback(&a));
    cr_assert(addr("128.0.0.1", &a) && !rp_ipaddr_is_loopback(&a));
    cr_assert(addr("::2", &a) && !rp_ipaddr_is_loopback(&a));
}

/* The client key of a forwarding header's lines, "ABSENT" or "MALFORMED". */
static const char *forwarded(const char *trusted, const char *const *lines, size_t n) {
    static char key[RP_IPADDR_TEXT_MAX];
    rp_ipnet_list_t l;
    rp_ipaddr_t c;
    cr_assert(rp_ipnet_list_parse(trusted, &l, NULL, 0));
    switch (rp_ipnet_forwarded_client(&l, lines, n, &c)) {
    case RP_FWD_ABSENT: return "ABSENT";
    case RP_FWD_MALFORMED: return "MALFORMED";
    case RP_FWD_CLIENT: break;
    }
    rp_ipaddr_client_key(&c, key, sizeof key);
    return key;
}

#define ONE(s) ((const char *[]){s}), 1

Test(ipnet, forwarded_is_read_from_the_right) {
    const char *t = "127.0.0.1, 10.0.0.0/8";
    /* the right-most untrusted entry is the client; what the client wrote left of it is ignored */
    cr_assert_str_eq(forwarded(t, ONE("6.6.6.6, 198.51.100.7")), "198.51.100.7");
    cr_assert_str_eq(forwarded(t, ONE("6.6.6.6, 198.51.100.7, 10.1.1.1, 127.0.0.1")), "198.51.100.7");
    cr_assert_str_eq(forwarded(t, ONE("garbage, 198.51.100.7")), "198.51.100.7");
    /* every hop trusted: the left-most */
    cr_assert_str_eq(forwarded(t, ONE("10.2.2.2, 10.1.1.1")), "10.2.2.2");
    /* ports and brackets as some proxies write them; mapped IPv6 is the IPv4 client */
    cr_assert_str_eq(forwarded(t, ONE("198.51.100.9:4711")), "198.51.100.9");
    cr_assert_str_eq(forwarded(t, ONE("[2001:db8::7]:443, 10.0.0.1")), "2001:db8::/64");
    cr_assert_str_eq(forwarded(t, ONE("[2001:db8::7]")), "2001:db8::/64");
    cr_assert_str_eq(forwarded(t, ONE("::ffff:198.51.100.7")), "198.51.100.7");
    /* empty elements are allowed by the list syntax */
    cr_assert_str_eq(forwarded(t, ONE(" , 198.51.100.7 ,, ")), "198.51.100.7");
    cr_assert_str_eq(forwarded(t, ONE("  ")), "ABSENT");
    cr_assert_str_eq(forwarded(t, NULL, 0), "ABSENT");
    /* several lines are one list, in order: the last line's right-most entry is the nearest hop */
    const char *lines[] = {"6.6.6.6", "198.51.100.7, 10.0.0.1"};
    cr_assert_str_eq(forwarded(t, lines, 2), "198.51.100.7");
    const char *lines2[] = {"198.51.100.7", "10.0.0.1"};
    cr_assert_str_eq(forwarded(t, lines2, 2), "198.51.100.7");
}

Test(ipnet, forwarded_malformed_in_the_client_place) {
    const char *t = "127.0.0.1";
    const char *bad[] = {"unknown",  "198.51.100.7, nonsense", "1.2.3.4:99999",  "[2001:db8::1", "[1.2.3.4]",
                         "1.2.3.4:", "_hidden, 127.0.0.1",     "2001:db8::1]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_str_eq(forwarded(t, ONE(bad[i])), "MALFORMED", "%s", bad[i]);
}
