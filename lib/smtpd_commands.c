/*
 * smtpd_commands: bh-smtpd's HELO, EHLO, MAIL, RCPT and the small
 * commands (RSET NOOP QUIT HELP VRFY, and the refusal of EXPN and TURN).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "attr.h"
#include "buf.h"
#include "conf.h"
#include "connector.h"
#include "directory.h"
#include "envelope.h"
#include "log.h"
#include "loglevel.h"
#include "smtp.h"
#include "smtpd_commands.h"
#include "smtpd_hooks.h"
#include "smtpd_message.h"
#include "smtpd_session.h"

/* ---- HELO, EHLO ---- */

static int
helo_valid(const char *arg)
{
	const char *p;

	if (*arg == '\0' || strlen(arg) > 255)
		return 0;
	for (p = arg; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p > 126)
			return 0;
	return 1;
}

int
smtpd_auth_offered(const struct session *s)
{
	return (s->srv->has_plain || s->srv->has_login) &&
	    (s->tls_desc[0] != '\0' || s->srv->is_plaintext_auth);
}

int
smtpd_tls_offered(const struct session *s)
{
	return s->srv->tls != TLS_OFF && s->tls_desc[0] == '\0' &&
	    *smtpd_server_get(s->srv, "cert") != '\0';
}

static void
ehlo_reply(struct session *s)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s Hello %s [%s]\n", smtpd_server_host(s->srv), s->helo,
	    s->peer[0] ? s->peer : "unknown");
	buf_printf(&b, "SIZE %lld\nPIPELINING\nDSN\nENHANCEDSTATUSCODES\n"
	    "8BITMIME\nBINARYMIME\nCHUNKING\nSMTPUTF8\n", s->srv->max_size);
	if (smtpd_tls_offered(s))
		buf_adds(&b, "STARTTLS\n");
	if (smtpd_auth_offered(s))
		buf_printf(&b, "AUTH%s%s\n", s->srv->has_plain ? " PLAIN" : "",
		    s->srv->has_login ? " LOGIN" : "");
	if (s->srv->is_etrn)
		buf_adds(&b, "ETRN\n");
	if (s->srv->is_atrn)
		buf_adds(&b, "ATRN\n");
	buf_adds(&b, "HELP");
	smtp_reply(s->net, 250, NULL, "%s", b.data ? b.data : "");
	buf_free(&b);
}

static int
helo_common(struct session *s, char *args, int is_ehlo)
{
	if (!helo_valid(args))
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: %s hostname",
		    is_ehlo ? "EHLO" : "HELO");
	smtpd_transaction_reset(s);
	snprintf(s->helo, sizeof s->helo, "%s", args);
	s->is_ehlo = is_ehlo;
	if (is_ehlo)
		ehlo_reply(s);
	else
		smtp_reply(s->net, 250, NULL, "%s Hello %s [%s]", smtpd_server_host(s->srv),
		    s->helo, s->peer[0] ? s->peer : "unknown");
	return 0;
}

int
smtpd_cmd_ehlo(void *v, char *args)
{
	return helo_common(v, args, 1);
}

int
smtpd_cmd_helo(void *v, char *args)
{
	return helo_common(v, args, 0);
}

/* ---- MAIL ---- */

static int
sender_filtered(const char *sender)
{
	char key[ADDR_MAX + 16], *v;
	int rc;

	if (*sender == '\0' || conf_refresh(&smtpd_filters_cdb) < 0)
		return 0;
	snprintf(key, sizeof key, "filter:");
	addr_key(sender, key + 7, sizeof key - 7);
	if ((rc = conf_get(&smtpd_filters_cdb, key, &v, NULL)) == 1)
		free(v);
	if (rc == 1)
		return 1;
	snprintf(key, sizeof key, "filter:@");
	addr_key(addr_domain(sender), key + 8, sizeof key - 8);
	if ((rc = conf_get(&smtpd_filters_cdb, key, &v, NULL)) == 1)
		free(v);
	return rc == 1;
}

/* Parses a path of MAIL or RCPT: UTF-8 only in a transaction that
 * declared SMTPUTF8 (553 5.6.7 otherwise, RFC 6531 §3.5). 0, or -1 with
 * the reply sent. */
static int
address_parse(struct session *s, const char *path, char *out, size_t cap,
    int flags, const char *ecode, const char *what)
{
	if (s->mail.has_smtputf8)
		flags |= ADDR_UTF8;
	if (addr_parse(path, out, cap, flags) == 0)
		return 0;
	if (!s->mail.has_smtputf8 && !addr_is_ascii(path) &&
	    addr_parse(path, out, cap, flags | ADDR_UTF8) == 0)
		return smtpd_reply_error(s, 553, "5.6.7", "Non-ASCII %s address needs "
		    "SMTPUTF8", what), -1;
	return smtpd_reply_error(s, 501, ecode, "Bad %s address syntax", what), -1;
}

/* Session-wide refusals of MAIL. 0 none, -1 one was sent. */
static int
mail_allowed(struct session *s)
{
	if (s->helo[0] == '\0')
		return smtpd_reply_error(s, 503, "5.5.1", "Send HELO or EHLO first"), -1;
	if (s->has_mail)
		return smtpd_reply_error(s, 503, "5.5.1", "Nested MAIL command"), -1;
	if (s->srv->tls == TLS_REQUIRED && s->tls_desc[0] == '\0')
		return smtpd_reply_error(s, 530, "5.7.0", "Must issue a STARTTLS "
		    "command first"), -1;
	if (!s->srv->has_anonymous && s->auth_user[0] == '\0')
		return smtpd_reply_error(s, 530, "5.7.0", "Authentication required"), -1;
	if ((s->srv->max_messages > 0 && s->nmessages >= s->srv->max_messages) ||
	    (s->srv->max_session_size > 0 &&
	    s->nbytes >= (unsigned long long)s->srv->max_session_size)) {
		smtp_reply(s->net, 421, "4.7.0", "%s Too much mail in this "
		    "session, closing connection", smtpd_server_host(s->srv));
		s->is_closing = 1;
		return -1;
	}
	return 0;
}

/* Refusals that depend on the sender. 0 none, -1 one was sent. */
static int
mail_policy(struct session *s, const char *sender)
{
	unsigned long long limit = smtpd_message_limit(s);

	if (limit > 0 && s->mail.size > limit)
		return smtpd_reply_error(s, 552, "5.3.4", "Message size exceeds fixed "
		    "maximum message size"), -1;
	if (s->srv->is_filter && sender_filtered(sender))
		return smtpd_reply_error(s, 550, "5.7.1", "<%s>: Sender address "
		    "rejected", sender), -1;
	if (s->srv->is_anti_spoof && *sender != '\0' && s->auth_user[0] == '\0' &&
	    directory_domain(&smtpd_dir, addr_domain(sender)) == DIRECTORY_AUTHORITATIVE)
		return smtpd_reply_error(s, 550, "5.7.1", "<%s>: Sender address "
		    "rejected: authentication required for this domain", sender), -1;
	return 0;
}

int
smtpd_cmd_mail(void *v, char *args)
{
	struct session *s = v;
	char path[ADDR_MAX + 1], sender[ADDR_MAX];
	const char *p = args;
	struct smtp_error err;

	if (mail_allowed(s) < 0)
		return 0;
	if (smtp_path(&p, "FROM", path, sizeof path) < 0)
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	if (smtp_mail_parse(p, &s->mail, &err) < 0)
		return smtpd_reply_smtp_error(s, &err);
	sender[0] = '\0';
	if (path[0] != '\0' && address_parse(s, path, sender, sizeof sender,
	    0, "5.1.7", "sender") < 0)
		return 0;
	directory_refresh(&smtpd_dir);
	connectors_refresh(&smtpd_connectors);
	if (mail_policy(s, sender) < 0)
		return 0;
	if (envelope_set_sender(&s->env, sender) < 0)
		return smtpd_reply_error(s, 452, "4.3.1", "Out of memory");
	s->has_mail = 1;
	if (smtpd_hooks_run(s, "mail", "", -1) < 0) {
		smtpd_transaction_reset(s);
		return 0;
	}
	smtp_reply(s->net, 250, "2.1.0", "Sender <%s> OK", sender);
	return 0;
}

/* ---- RCPT ---- */

/* Do we take mail for domain from anyone? 1 authoritative, 2 shared or a
 * connector with relay=yes, 0 no. */
int
smtpd_domain_accepted(const char *domain)
{
	size_t i;
	int kind;

	if (*domain == '\0' || *domain == '[')
		return 0;
	if ((kind = directory_domain(&smtpd_dir, domain)) == DIRECTORY_AUTHORITATIVE)
		return 1;
	if (kind == DIRECTORY_SHARED)
		return 2;
	for (i = 0; i < smtpd_connectors.n; i++) {
		const char *relay = attrs_get(&smtpd_connectors.v[i].attrs, "relay");
		if (relay && conf_parse_bool(relay) == 1 &&
		    connector_match(&smtpd_connectors.v[i], domain) >= 0)
			return 2;
	}
	return 0;
}

static int
may_relay(const struct session *s)
{
	return s->is_relay_client ||
	    (s->auth_user[0] != '\0' && s->srv->is_relay_authenticated);
}

/* The relay and directory checks of RCPT. 0 accept, -1 refused (sent). */
static int
rcpt_policy(struct session *s, const char *rcpt)
{
	char kind[32], name[256], unresolved[256];
	int accepted = smtpd_domain_accepted(addr_domain(rcpt));

	if (!may_relay(s) && (!accepted || addr_has_route(rcpt))) {
		log_event("relay-denied", "peer=%s rcpt=%s", log_quote(s->peer),
		    log_quote(rcpt));
		return smtpd_reply_error(s, 550, "5.7.1", "<%s>: Unable to relay", rcpt), -1;
	}
	if (accepted != 1)
		return 0;
	if (directory_lookup(&smtpd_dir, rcpt, kind, sizeof kind, name, sizeof name) != 0)
		return 0;	/* found, or a lookup error left to categorize */
	conf_setting("unresolved-host", "", unresolved, sizeof unresolved);
	if (unresolved[0] != '\0')
		return 0;
	return smtpd_reply_error(s, 550, "5.1.1", "<%s>: Recipient address rejected: "
	    "User unknown", rcpt), -1;
}

static int
rcpt_add(struct session *s, const char *rcpt, const struct smtp_rcpt_params *rp)
{
	struct rcpt *r;
	size_t i;

	for (i = 0; i < s->env.nrcpt; i++)
		if (strcasecmp(s->env.rcpt[i].addr, rcpt) == 0)
			return 0;	/* once is enough */
	if ((r = envelope_add_rcpt(&s->env, rcpt)) == NULL ||
	    rcpt_set(r, "state", "new") < 0 ||
	    (rp->notify[0] && rcpt_set(r, "notify", rp->notify) < 0) ||
	    (rp->orcpt[0] && rcpt_set(r, "orcpt", rp->orcpt) < 0))
		return -1;
	return 0;
}

/* RFC 5321 §4.5.1: <postmaster> without a domain must work. */
static void
rcpt_postmaster(char *rcpt, size_t cap)
{
	char pm[ADDR_MAX];

	if (strchr(rcpt, '@') != NULL)
		return;
	if (conf_setting("postmaster", "", pm, sizeof pm) > 0 && strchr(pm, '@'))
		snprintf(rcpt, cap, "%s", pm);
	else
		snprintf(rcpt, cap, "postmaster@%s", conf_hostname());
}

int
smtpd_cmd_rcpt(void *v, char *args)
{
	struct session *s = v;
	char path[ADDR_MAX + 1], rcpt[ADDR_MAX];
	const char *p = args;
	struct smtp_rcpt_params rp;
	struct smtp_error err;

	if (!s->has_mail)
		return smtpd_reply_error(s, 503, "5.5.1", "Need MAIL command first");
	if (s->has_bdat)
		return smtpd_reply_error(s, 503, "5.5.1", "RCPT after BDAT");
	if (smtp_path(&p, "TO", path, sizeof path) < 0)
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if (address_parse(s, path, rcpt, sizeof rcpt, ADDR_ALLOW_POSTMASTER,
	    "5.1.3", "recipient") < 0)
		return 0;
	if (smtp_rcpt_parse(p, &rp, &err) < 0)
		return smtpd_reply_smtp_error(s, &err);
	if (s->env.nrcpt >= (size_t)s->srv->max_recipients)
		return smtp_reply(s->net, 452, "4.5.3", "Too many recipients"), 0;
	rcpt_postmaster(rcpt, sizeof rcpt);
	if (rcpt_policy(s, rcpt) < 0 || smtpd_hooks_run(s, "rcpt", rcpt, -1) < 0)
		return 0;
	if (rcpt_add(s, rcpt, &rp) < 0)
		return smtpd_reply_error(s, 452, "4.3.1", "Out of memory");
	if (loglevel_on("smtp", LOGLEVEL_MEDIUM))
		log_event("rcpt", "peer=%s sender=%s rcpt=%s", log_quote(s->peer),
		    log_quote(*s->env.sender ? s->env.sender : "<>"),
		    log_quote(rcpt));
	smtp_reply(s->net, 250, "2.1.5", "Recipient <%s> OK", rcpt);
	return 0;
}

/* ---- RSET NOOP QUIT HELP VRFY EXPN TURN ---- */

int
smtpd_cmd_rset(void *v, char *args)
{
	struct session *s = v;

	if (*args != '\0')
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: RSET");
	smtpd_transaction_reset(s);
	return smtp_reply(s->net, 250, "2.0.0", "OK"), 0;
}

int
smtpd_cmd_noop(void *v, char *args)
{
	struct session *s = v;

	return smtp_reply(s->net, 250, "2.0.0", "OK"), 0;
}

int
smtpd_cmd_quit(void *v, char *args)
{
	struct session *s = v;

	smtp_reply(s->net, 221, "2.0.0", "%s closing connection", smtpd_server_host(s->srv));
	s->is_closing = 1;
	return 0;
}

int
smtpd_cmd_help(void *v, char *args)
{
	struct session *s = v;

	smtp_reply(s->net, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT HELP VRFY STARTTLS AUTH ETRN\n"
	    "See RFC 5321 and the README of bridgehead");
	return 0;
}

int
smtpd_cmd_vrfy(void *v, char *args)
{
	struct session *s = v;
	char path[ADDR_MAX + 1], addr[ADDR_MAX], kind[32], name[256];
	size_t len = strlen(args);

	if (len == 0 || len > ADDR_MAX)
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: VRFY address");
	if (!s->srv->is_vrfy)
		return smtp_reply(s->net, 252, "2.5.2", "Cannot VRFY user, but will "
		    "accept message and attempt delivery"), 0;
	snprintf(path, sizeof path, "%.*s", (int)(args[0] == '<' &&
	    args[len - 1] == '>' ? len - 2 : len), args + (args[0] == '<'));
	if (addr_parse(path, addr, sizeof addr, 0) < 0)
		return smtpd_reply_error(s, 501, "5.1.3", "Bad address syntax");
	directory_refresh(&smtpd_dir);
	if (directory_lookup(&smtpd_dir, addr, kind, sizeof kind, name, sizeof name) == 1)
		return smtp_reply(s->net, 250, "2.1.5", "<%s>", addr), 0;
	if (smtpd_domain_accepted(addr_domain(addr)) != 1)
		return smtp_reply(s->net, 252, "2.5.2", "<%s>: not a local "
		    "address; will accept message and attempt delivery", addr), 0;
	return smtpd_reply_error(s, 550, "5.1.1", "<%s>: User unknown", addr);
}

int
smtpd_cmd_not_implemented(void *v, char *args)
{
	struct session *s = v;

	return smtpd_reply_error(s, 502, "5.5.1", "Command not implemented");
}
