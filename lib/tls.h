#ifndef BH_TLS_H
#define BH_TLS_H
/*
 * tls: OpenSSL contexts. A server context holds the virtual server's
 * certificate and key; a client context (for bh-remote) verifies nothing
 * by default (opportunistic TLS, RFC 3207) unless asked to.
 */
#include <stddef.h>

#include <openssl/ssl.h>

/* A server context for cert and key (PEM files; key may be NULL when the
 * key is in the cert file). NULL on error, with the reason logged. */
SSL_CTX *tls_server_context(const char *cert, const char *key);

/* A client context: TLS 1.2 or later; with verify set, peers must present
 * a certificate chaining to the system store (or cafile when not NULL). */
SSL_CTX *tls_client_context(int verify, const char *cafile);

/* A new connection object of ctx, not yet bound to a descriptor. NULL on
 * error. */
SSL *tls_new(SSL_CTX *ctx);

/* Describes the session for Received: lines and logs, e.g.
 * "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)". */
void tls_describe(SSL *ssl, char *out, size_t cap);

/* The last OpenSSL error as text (for logs). */
const char *tls_error(void);

#endif
