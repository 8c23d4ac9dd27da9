/*
 * smtpd_auth: bh-smtpd's STARTTLS (RFC 3207) and AUTH PLAIN and LOGIN
 * (RFC 4954) against the directory's mailbox passwords.
 */
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "attr.h"
#include "directory.h"
#include "log.h"
#include "net.h"
#include "smtp.h"
#include "smtpd_auth.h"
#include "smtpd_commands.h"
#include "smtpd_message.h"
#include "smtpd_session.h"
#include "tls.h"

/* ---- STARTTLS (RFC 3207) ---- */

int
smtpd_cmd_starttls(void *v, char *args)
{
	struct session *s = v;
	SSL *ssl;

	if (s->tls_desc[0] != '\0')
		return smtpd_reply_error(s, 503, "5.5.1", "TLS already active");
	if (!smtpd_tls_offered(s))
		return smtpd_reply_error(s, 502, "5.5.1", "STARTTLS not available");
	if (*args != '\0')
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
	if (s->tls_ctx == NULL)
		s->tls_ctx = tls_server_context(smtpd_server_get(s->srv, "cert"),
		    smtpd_server_get(s->srv, "key"));
	if (s->tls_ctx == NULL || (ssl = tls_new(s->tls_ctx)) == NULL)
		return smtpd_reply_error(s, 454, "4.7.0", "TLS not available due to "
		    "temporary reason");
	smtp_reply(s->net, 220, "2.0.0", "Ready to start TLS");
	/* anything the client sent after STARTTLS in plaintext is dropped
	 * with the buffer inside net_tls_accept: it must not count as
	 * having arrived under TLS */
	if (net_tls_accept(s->net, ssl) < 0) {
		log_event("tls-failed", "peer=%s error=%s", log_quote(s->peer),
		    log_quote(tls_error()));
		return -1;
	}
	tls_describe(s->net->ssl, s->tls_desc, sizeof s->tls_desc);
	log_event("tls", "peer=%s tls=%s", log_quote(s->peer), log_quote(s->tls_desc));
	/* RFC 3207 §4.2: forget what was said before */
	smtpd_transaction_reset(s);
	s->helo[0] = s->auth_user[0] = s->auth_box[0] = '\0';
	s->is_ehlo = 0;
	return 0;
}

/* ---- AUTH PLAIN and LOGIN (RFC 4954) ---- */

/* Checks a password against the directory: user is an address of a
 * mailbox or its NAME. 1 good (box set), 0 bad. */
static int
auth_verify(const char *user, const char *password, char *box, size_t cap)
{
	static struct crypt_data cd;
	struct attrs a = ATTRS_INIT;
	char kind[32], name[256];
	const char *hash, *out;
	int ok = 0;

	directory_refresh(&smtpd_dir);
	if (strchr(user, '@') != NULL) {
		if (directory_lookup(&smtpd_dir, user, kind, sizeof kind, name,
		    sizeof name) != 1 || strcmp(kind, "mailbox") != 0)
			return 0;
	} else
		snprintf(name, sizeof name, "%s", user);
	if (directory_record(&smtpd_dir, "mailbox", name, &a) == 1 &&
	    (hash = attrs_get(&a, "password")) != NULL && hash[0] == '$' &&
	    (out = crypt_r(password, hash, &cd)) != NULL &&
	    strlen(out) == strlen(hash) &&
	    CRYPTO_memcmp(out, hash, strlen(hash)) == 0) {
		snprintf(box, cap, "%s", name);
		ok = 1;
	}
	attrs_free(&a);
	return ok;
}

/* Reads one base64 line after a 334 challenge, decoded into out.
 * 1, 0 cancelled or bad (reply sent), -1 connection lost. */
static int
auth_response(struct session *s, const char *challenge, const char *initial,
    char *out, size_t cap, size_t *len)
{
	char line[LINE_MAX_CMD];
	const char *text = initial;
	ssize_t n;

	if (text == NULL) {
		smtp_reply(s->net, 334, NULL, "%s", challenge);
		if ((n = net_line(s->net, line, sizeof line)) == -1)
			return -1;
		if (n < 0)
			return smtpd_reply_error(s, 500, "5.5.2", "Bad AUTH response "
			    "line"), 0;
		if (smtp_trace)
			smtp_trace(0, "***");
		text = line;
	}
	if (strcmp(text, "*") == 0)
		return smtpd_reply_error(s, 501, "5.0.0", "Authentication cancelled"), 0;
	if (strcmp(text, "=") == 0) {
		*len = 0;
		out[0] = '\0';
		return 1;
	}
	if (smtp_base64_decode(text, (unsigned char *)out, cap - 1, len) < 0)
		return smtpd_reply_error(s, 501, "5.5.2", "Bad base64 data"), 0;
	out[*len] = '\0';
	return 1;
}

static int
auth_result(struct session *s, const char *user, const char *password)
{
	unsigned delay;

	if (auth_verify(user, password, s->auth_box, sizeof s->auth_box)) {
		snprintf(s->auth_user, sizeof s->auth_user, "%s", user);
		log_event("auth", "peer=%s user=%s box=%s", log_quote(s->peer),
		    log_quote(user), log_quote(s->auth_box));
		smtp_reply(s->net, 235, "2.7.0", "Authentication successful");
		return 0;
	}
	s->nauth_failures++;
	log_event("auth-failed", "peer=%s user=%s failures=%d", log_quote(s->peer),
	    log_quote(user), s->nauth_failures);
	/* a guesser pays time for every try */
	delay = s->nauth_failures < 5 ? s->nauth_failures : 5;
	net_flush(s->net);
	sleep(delay);
	smtpd_reply_error(s, 535, "5.7.8", "Authentication credentials invalid");
	if (s->nauth_failures >= 3 && !s->is_closing) {
		smtp_reply(s->net, 421, "4.7.0", "%s Too many authentication "
		    "failures", smtpd_server_host(s->srv));
		s->is_closing = 1;
	}
	return 0;
}

static int
auth_plain(struct session *s, const char *initial)
{
	char buf[1024];
	const char *authz, *user, *pass;
	size_t len;
	int rc;

	if ((rc = auth_response(s, "", initial, buf, sizeof buf, &len)) <= 0)
		return rc;
	authz = buf;
	user = memchr(buf, '\0', len);
	pass = user ? memchr(user + 1, '\0', len - (user + 1 - buf)) : NULL;
	if (user == NULL || pass == NULL || memchr(pass + 1, '\0',
	    len - (pass + 1 - buf)) != NULL)
		return smtpd_reply_error(s, 501, "5.5.2", "Bad AUTH PLAIN response");
	user++;
	pass++;
	if (*authz != '\0' && strcmp(authz, user) != 0)
		return smtpd_reply_error(s, 535, "5.7.8", "Authorization identity "
		    "differs from authentication identity");
	return auth_result(s, user, pass);
}

static int
auth_login(struct session *s, const char *initial)
{
	char user[512], pass[512];
	size_t len;
	int rc;

	/* "Username:" and "Password:" */
	if ((rc = auth_response(s, "VXNlcm5hbWU6", initial, user, sizeof user,
	    &len)) <= 0)
		return rc;
	if ((rc = auth_response(s, "UGFzc3dvcmQ6", NULL, pass, sizeof pass,
	    &len)) <= 0)
		return rc;
	return auth_result(s, user, pass);
}

int
smtpd_cmd_auth(void *v, char *args)
{
	struct session *s = v;
	char *initial = strchr(args, ' ');

	if (s->helo[0] == '\0' || s->auth_user[0] != '\0' || s->has_mail)
		return smtpd_reply_error(s, 503, "5.5.1", s->helo[0] == '\0' ?
		    "Send EHLO first" : s->has_mail ? "MAIL transaction in "
		    "progress" : "Already authenticated");
	if (!smtpd_auth_offered(s))
		return smtpd_reply_error(s, s->srv->has_plain || s->srv->has_login ?
		    538 : 503, s->srv->has_plain || s->srv->has_login ?
		    "5.7.11" : "5.5.1", s->srv->has_plain || s->srv->has_login ?
		    "Encryption required for requested authentication mechanism" :
		    "AUTH not available");
	if (initial != NULL)
		*initial++ = '\0';
	if (strcasecmp(args, "PLAIN") == 0 && s->srv->has_plain)
		return auth_plain(s, initial);
	if (strcasecmp(args, "LOGIN") == 0 && s->srv->has_login)
		return auth_login(s, initial);
	return smtpd_reply_error(s, 504, "5.5.4", "Unrecognized authentication type");
}
