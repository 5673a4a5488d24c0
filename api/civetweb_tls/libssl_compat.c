/* libssl_compat.c - a shared object named "libssl.so" that lets Debian 12's civetweb 1.15 use
 * OpenSSL 3 (civetweb issue #1334). civetweb loads TLS at run time with dlopen("libssl.so") and
 * looks up the OpenSSL 1.1 name SSL_get_peer_certificate, which OpenSSL 3 keeps only as a macro, so
 * its TLS set-up fails. The gateway loads this object first (RTLD_GLOBAL); its soname makes
 * civetweb's dlopen return it, and lookups through it reach the real libssl.so.3 it depends on.
 * Stateless; thread-safe. */
#include <openssl/ssl.h>

/* OpenSSL 3's header maps the old name onto the new one; here the old name is the point */
#undef SSL_get_peer_certificate

/* OpenSSL 1.1's name: a new reference to the peer's certificate (the caller frees it). */
X509 *SSL_get_peer_certificate(const SSL *s);

X509 *SSL_get_peer_certificate(const SSL *s) {
    return SSL_get1_peer_certificate(s);
}
