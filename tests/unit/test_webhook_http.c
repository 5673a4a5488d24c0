/* Tests workers/reward/webhook_http.c: which URLs a webhook may target, which addresses the SSRF
 * guard lets a delivery connect to, and that a refused target is never contacted. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "reward/webhook_http.h"

static bool public4(const char *a) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, a, &sa.sin_addr), 1, "%s", a);
    return rp_webhook_addr_public((const struct sockaddr *)&sa);
}

static bool public6(const char *a) {
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, a, &sa.sin6_addr), 1, "%s", a);
    return rp_webhook_addr_public((const struct sockaddr *)&sa);
}

Test(webhook_http, private_loopback_link_local_and_multicast_are_refused) {
    const char *refused4[] = {"127.0.0.1",       "127.255.0.9",     "10.1.2.3",   "172.16.0.1", "172.31.255.255",
                              "192.168.1.1",     "169.254.169.254", "100.64.0.1", "0.0.0.0",    "224.0.0.1",
                              "239.255.255.250", "255.255.255.255", "240.0.0.1",  "198.18.0.1", "192.0.0.8"};
    for (size_t i = 0; i < sizeof refused4 / sizeof refused4[0]; i++)
        cr_assert_not(public4(refused4[i]), "%s allowed", refused4[i]);
    const char *refused6[] = {"::1",
                              "::",
                              "fe80::1",
                              "fc00::1",
                              "fd12:3456::1",
                              "ff02::1",
                              "::ffff:127.0.0.1",
                              "::ffff:10.0.0.1",
                              "64:ff9b::a00:1",
                              "2001:db8::1"};
    for (size_t i = 0; i < sizeof refused6 / sizeof refused6[0]; i++)
        cr_assert_not(public6(refused6[i]), "%s allowed", refused6[i]);
}

Test(webhook_http, public_unicast_is_allowed) {
    const char *ok4[] = {"8.8.8.8",     "1.1.1.1",     "172.15.255.255", "172.32.0.1",
                         "100.128.0.1", "192.169.0.1", "223.255.255.254"};
    for (size_t i = 0; i < sizeof ok4 / sizeof ok4[0]; i++)
        cr_assert(public4(ok4[i]), "%s refused", ok4[i]);
    cr_assert(public6("2606:4700:4700::1111"));
    cr_assert(public6("::ffff:8.8.8.8"));
}

Test(webhook_http, urls_are_absolute_https_unless_http_is_allowed) {
    char why[96];
    cr_assert(rp_webhook_url_ok("https://hooks.example.com/rp?x=1", false, why, sizeof why));
    cr_assert(rp_webhook_url_ok("https://[2606:4700::1]:8443/h", false, why, sizeof why));
    cr_assert_not(rp_webhook_url_ok("http://hooks.example.com/rp", false, why, sizeof why));
    cr_assert(strstr(why, "https"), "%s", why);
    cr_assert(rp_webhook_url_ok("http://hooks.example.com/rp", true, why, sizeof why));
    const char *bad[] = {"ftp://example.com/x",
                         "file:///etc/passwd",
                         "gopher://example.com",
                         "/relative",
                         "https://",
                         "example.com",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(rp_webhook_url_ok(bad[i], true, why, sizeof why), "%s accepted", bad[i]);
}

Test(webhook_http, a_refused_target_is_never_contacted) {
    rp_webhook_policy_t policy = {false, true, 1000, 500};
    rp_webhook_attempt_t a;
    const char *secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    cr_assert(rp_webhook_http_init());
    /* loopback: refused before any connection, whatever listens there */
    rp_webhook_http_post("http://localhost:9/x", "id", secret, "{}", 2, &policy, &a);
    cr_assert_eq(a.http_status, 0);
    cr_assert_eq(strncmp(a.error, "ADDRESS_NOT_ALLOWED", 19), 0, "%s", a.error);
    policy.allow_http = false;
    rp_webhook_http_post("http://example.com/x", "id", secret, "{}", 2, &policy, &a);
    cr_assert_eq(strncmp(a.error, "URL_NOT_ALLOWED", 15), 0, "%s", a.error);
}
