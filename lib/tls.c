#include <stdio.h>

#include <openssl/err.h>

#include "log.h"
#include "tls.h"

const char *
tls_error(void)
{
	static char text[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, text, sizeof text);
	ERR_clear_error();
	return text;
}

static SSL_CTX *
tls_context(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* no renegotiation, no compression: old attack surfaces */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return ctx;
}

SSL_CTX *
tls_server_context(const char *cert, const char *key)
{
	SSL_CTX *ctx = tls_context(TLS_server_method());

	if (ctx == NULL)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key && *key ? key : cert,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		goto fail;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
fail:
	log_event("warning", "msg=\"TLS server context failed\" cert=%s error=%s",
	    log_quote(cert ? cert : ""), log_quote(tls_error()));
	return NULL;
}

SSL_CTX *
tls_client_context(int verify, const char *cafile)
{
	SSL_CTX *ctx = tls_context(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	if (verify) {
		if ((cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) :
		    SSL_CTX_set_default_verify_paths(ctx)) != 1) {
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

SSL *
tls_new(SSL_CTX *ctx)
{
	return SSL_new(ctx);
}

void
tls_describe(SSL *ssl, char *out, size_t cap)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;

	snprintf(out, cap, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
	    c ? SSL_CIPHER_get_name(c) : "unknown", bits, alg);
}
