/*
 * deliver: one bh-remote worker's SMTP session (see deliver.h): the
 * connector's and source server's settings, resolving the next hops,
 * connecting with EHLO/STARTTLS/AUTH, and each message's transaction
 * (MAIL, RCPTs, DATA or BDAT) with every recipient's outcome recorded
 * through lib/outcome.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"
#include "conf.h"
#include "content.h"
#include "deliver.h"
#include "dest.h"
#include "log.h"
#include "loglevel.h"
#include "outcome.h"
#include "spool.h"

/* LONG_ADDR: longer addresses would not fit a command line (RFC 5321
 * allows 256); the DSN parameters are short by their RFCs (ENVID 100,
 * ORCPT 500) and are cut to fit. */
enum { LONG_ADDR = 512 };

/* How a message's transaction ended when not with the session usable:
 * lost (recipients without a reply keep their state), MAIL refused (every
 * recipient has its outcome), or stale: a kept session was found closed
 * before MAIL was answered (nothing happened: worth a new session). */
enum { SESSION_LOST = -1, MAIL_REFUSED = -2, SESSION_STALE = -3 };

/* ---- one connection: what to say, and opening it ---- */


/* The source= server: bind its listen address, greet with its name. */
static void
link_source(struct deliver_link *l, const char *server)
{
	struct conf servers;
	struct attrs a = ATTRS_INIT;
	struct sockaddr_in *sin = (struct sockaddr_in *)&l->bind;
	char key[300], ip[64];
	const char *listen, *host;

	snprintf(key, sizeof key, "server:%s", server);
	if (conf_open(&servers, "servers") < 0 || conf_record(&servers, key, &a) != 1)
		goto out;
	if ((host = attrs_get(&a, "hostname")) != NULL && *host)
		snprintf(l->helo, sizeof l->helo, "%s", host);
	if ((listen = attrs_get(&a, "listen")) != NULL &&
	    sscanf(listen, "%63[0-9.]", ip) == 1 &&
	    inet_pton(AF_INET, ip, &sin->sin_addr) == 1 &&
	    strcmp(ip, "0.0.0.0") != 0) {
		sin->sin_family = AF_INET;
		l->bind_len = sizeof *sin;
	}
out:
	attrs_free(&a);
	conf_close(&servers);
}

static void
link_connector(struct deliver_link *l, const char *name)
{
	struct conf cs;
	struct attrs a = ATTRS_INIT;
	char key[300];
	const char *v;

	snprintf(key, sizeof key, "connector:%s", name);
	if (conf_open(&cs, "connectors") < 0 || conf_record(&cs, key, &a) != 1)
		goto out;
	l->use_helo = (v = attrs_get(&a, "helo")) != NULL && conf_parse_bool(v) == 1;
	l->tls_required = (v = attrs_get(&a, "tls")) != NULL &&
	    strcmp(v, "required") == 0;
	if ((v = attrs_get(&a, "auth")) != NULL && strchr(v, ':') != NULL) {
		snprintf(l->user, sizeof l->user, "%.*s", (int)(strchr(v, ':') - v), v);
		snprintf(l->pass, sizeof l->pass, "%s", strchr(v, ':') + 1);
		l->has_auth = 1;
	}
	if ((v = attrs_get(&a, "rate")) != NULL)
		l->rate_per_min = atoi(v);
	if ((v = attrs_get(&a, "etrn-request")) != NULL)
		snprintf(l->etrn, sizeof l->etrn, "%s", v);
	if ((v = attrs_get(&a, "tls-ca")) != NULL)
		snprintf(l->ca, sizeof l->ca, "%s", v);
out:
	attrs_free(&a);
	conf_close(&cs);
}

/* What connections are counted and shared by: the recipient domain for
 * mail going by its own MX (one "mx:DOMAIN" hop), else the destination
 * (a connector: its smart host list comes shuffled per envelope, so the
 * hops text would split one destination into many). */
void
deliver_route_key(const struct envelope *e, char *out, size_t cap)
{
	const char *hops = envelope_get(e, "hops"), *dest = envelope_get(e, "dest");

	if (hops != NULL && strncmp(hops, "mx:", 3) == 0 && strchr(hops, ' ') == NULL)
		snprintf(out, cap, "%s", hops);
	else if (dest != NULL && *dest != '\0')
		snprintf(out, cap, "%s", dest);
	else
		snprintf(out, cap, "%s", e->nrcpt > 0 ? addr_domain(e->rcpt[0].addr) :
		    "unknown");
}

/* Sets up l for envelope e unless it already fits. 1 changed, 0 same. */
int
deliver_prepare(struct deliver_link *l, const struct envelope *e)
{
	const char *conn = envelope_get(e, "connector");
	const char *source = envelope_get(e, "source");
	char key[sizeof l->key], route[DEST_NAME_MAX + 8];

	deliver_route_key(e, route, sizeof route);
	snprintf(key, sizeof key, "%s|%s|%s", route, conn ? conn : "",
	    source ? source : "");
	if (strcmp(key, l->key) == 0)
		return 0;
	if (l->is_open)
		client_close(&l->c, 1);
	memset(l, 0, offsetof(struct deliver_link, c));
	memcpy(l->key, key, sizeof key);
	snprintf(l->helo, sizeof l->helo, "%s", conf_hostname());
	l->port = conf_setting_size("remote-port", 25);
	l->timeout_cap = conf_setting_time("timeout", 0);
	l->resolved = -1;
	l->is_open = l->failed = l->is_reused = 0;
	if (conn != NULL)
		link_connector(l, conn);
	if (source != NULL)
		link_source(l, source);
	return 1;
}

static void
link_error(struct deliver_link *l, const struct client *c)
{
	snprintf(l->status, sizeof l->status, "%s", c->status);
	snprintf(l->reason, sizeof l->reason, "%s", c->reply);
	if (c->code > 0)
		snprintf(l->mta, sizeof l->mta, "%s", c->host);
}

/* After the greeting: EHLO, STARTTLS, AUTH. 0 ready, -1 not (reason set). */
int
deliver_hello(struct deliver_link *l, int try_tls)
{
	struct client *c = &l->c;
	int code;

	if ((code = client_hello(c, l->helo, l->use_helo)) / 100 != 2)
		return -1;
	if (c->has_starttls && try_tls) {
		if ((code = client_starttls(c, l->ca)) < 0)
			/* a failed handshake may be retried in clear, never a
			 * certificate that did not verify */
			return l->ca[0] != '\0' ? -1 : -2;
		if (code == 220 && client_hello(c, l->helo, 0) / 100 != 2)
			return -1;
	}
	if (l->tls_required && !c->is_tls) {
		snprintf(c->status, sizeof c->status, "4.7.10");
		snprintf(c->reply, sizeof c->reply, "4.7.10 TLS is required for "
		    "this connector but %s does not offer it", c->peer);
		c->code = 0;
		return -1;
	}
	if (l->has_auth && (c->has_auth_plain || c->has_auth_login) &&
	    client_auth(c, l->user, l->pass) != 235)
		return -1;
	return 0;
}

/* Connects to the next address that takes a session. 0 open, -1 none. */
static int
session_open(struct deliver_link *l)
{
	struct client *c = &l->c;
	size_t i;
	int rc, try_tls;

	for (i = 0; i < l->hosts.n && !spool_stop_requested; i++) {
		for (try_tls = 1; try_tls >= 0; try_tls--) {
			rc = client_open(c, (struct sockaddr *)&l->hosts.v[i].sa,
			    l->hosts.v[i].len, l->bind_len ? (struct sockaddr *)&l->bind
			    : NULL, l->bind_len, l->hosts.v[i].host, l->hosts.v[i].text,
			    l->timeout_cap);
			if (rc == 220 && (rc = deliver_hello(l, try_tls)) == 0) {
				l->is_open = 1;
				l->is_reused = 0;
				snprintf(l->mta, sizeof l->mta, "%s", c->host);
				return 0;
			}
			link_error(l, c);
			client_close(c, rc != -2 && c->fd >= 0 && c->code > 0);
			if (rc != -2 || l->tls_required)
				break;
		}
		log_event("connect", "peer=%s host=%s status=%s reason=%s",
		    l->hosts.v[i].text, log_quote(l->hosts.v[i].host), l->status,
		    log_quote(l->reason));
	}
	l->failed = 1;
	return -1;
}

/* ---- one message over an open session ---- */

static const char *
mail_params(const struct client *c, const struct envelope *e, long long size,
    char *out, size_t cap)
{
	const char *body = envelope_get(e, "body"), *ret = envelope_get(e, "ret");
	const char *envid = envelope_get(e, "envid");
	const char *utf8 = envelope_get(e, "smtputf8");
	int n = 0;

	out[0] = '\0';
	if (c->has_size)
		n += snprintf(out + n, cap - n, " SIZE=%lld", size);
	if (c->has_smtputf8 && utf8 != NULL && strcmp(utf8, "yes") == 0)
		n += snprintf(out + n, cap - n, " SMTPUTF8");
	if (body != NULL && strcmp(body, "7BIT") != 0 && c->is_esmtp)
		n += snprintf(out + n, cap - n, " BODY=%s", body);
	if (c->has_dsn && ret != NULL && (size_t)n < cap)
		n += snprintf(out + n, cap - n, " RET=%s", ret);
	if (c->has_dsn && envid != NULL && (size_t)n < cap)
		snprintf(out + n, cap - n, " ENVID=%.100s", envid);
	return out;
}

/* What the server cannot take at all: 5.3.4 too big, 5.6.3 8-bit or binary
 * content it does not announce, 5.6.7 internationalized mail (SMTPUTF8)
 * to a server without SMTPUTF8 (RFC 6531 §3.2: we fail rather than
 * convert: the message stays as its author sent it). NULL when it can be
 * sent. */
static const char *
refusal(const struct client *c, const struct envelope *e, long long size,
    char *reason, size_t cap)
{
	const char *body = envelope_get(e, "body");
	const char *utf8 = envelope_get(e, "smtputf8");

	if (c->max_size > 0 && size > c->max_size) {
		snprintf(reason, cap, "552 5.3.4 message size %lld exceeds the limit "
		    "%lld of %s", size, c->max_size, c->peer);
		return "5.3.4";
	}
	if (body != NULL && strcmp(body, "8BITMIME") == 0 && !c->has_8bitmime) {
		snprintf(reason, cap, "554 5.6.3 %s does not accept 8-bit "
		    "content (no 8BITMIME)", c->peer);
		return "5.6.3";
	}
	if (body != NULL && strcmp(body, "BINARYMIME") == 0 &&
	    !(c->has_binarymime && c->has_chunking)) {
		snprintf(reason, cap, "554 5.6.3 %s does not accept binary "
		    "content (no BINARYMIME/CHUNKING)", c->peer);
		return "5.6.3";
	}
	if (utf8 != NULL && strcmp(utf8, "yes") == 0 && !c->has_smtputf8) {
		snprintf(reason, cap, "553 5.6.7 %s does not accept "
		    "internationalized mail (no SMTPUTF8)", c->peer);
		return "5.6.7";
	}
	return NULL;
}

static int
queue_rcpt(struct client *c, const struct rcpt *r)
{
	const char *notify = rcpt_get(r, "notify"), *orcpt = rcpt_get(r, "orcpt");
	char params[1200] = "";
	int n = 0;

	if (c->has_dsn && notify != NULL)
		n = snprintf(params, sizeof params, " NOTIFY=%s", notify);
	if (c->has_dsn && orcpt != NULL && n < (int)sizeof params)
		snprintf(params + n, sizeof params - n, " ORCPT=%.500s", orcpt);
	return client_queue(c, "RCPT TO:<%s>%s", r->addr, params);
}

/* One RCPT reply: accepted ones are listed in ok[]. */
static void
rcpt_reply(struct deliver_link *l, struct envelope *e, size_t i, int code,
    size_t *ok, size_t *nok)
{
	if (code / 100 == 2)
		ok[(*nok)++] = i;
	else
		outcome_rcpt(e, &e->rcpt[i], code / 100 == 5 ? 5 : 4, l->c.status,
		    l->c.reply, l->mta, 0);
}

/* Ends a transaction that will send no message. 0, or -1 (lost). */
static int
rset(struct client *c)
{
	return client_queue(c, "RSET") == 0 && client_reply(c, CLIENT_T_MAIL) > 0
	    ? 0 : -1;
}

/* MAIL and the RCPTs, pipelined (with DATA when not BDAT) when the server
 * allows. The number of accepted recipients (in ok[]), MAIL_REFUSED,
 * SESSION_LOST, or SESSION_STALE: a kept session ended before MAIL had
 * its answer (the peer timed it out: gone, or 421). */
static int
envelope_commands(struct deliver_link *l, struct envelope *e, long long size,
    size_t *idx, size_t n, size_t *ok, int with_data)
{
	struct client *c = &l->c;
	char params[1200];
	size_t i, nok = 0;
	int code;

	client_queue(c, "MAIL FROM:<%s>%s", e->sender,
	    mail_params(c, e, size, params, sizeof params));
	if (c->has_pipelining) {
		for (i = 0; i < n; i++)
			queue_rcpt(c, &e->rcpt[idx[i]]);
		if (with_data)
			client_queue(c, "DATA");
	}
	/* a peer that is merely slow is not worth a second session */
	if ((code = client_reply(c, CLIENT_T_MAIL)) < 0)
		return l->is_reused && errno != ETIMEDOUT && !spool_stop_requested ?
		    SESSION_STALE : SESSION_LOST;
	if (code == 421 && l->is_reused)
		return SESSION_STALE;
	if (code / 100 != 2) {
		for (i = 0; i < n; i++)
			outcome_rcpt(e, &e->rcpt[idx[i]], code / 100 == 5 ? 5 : 4,
			    c->status, c->reply, l->mta, 0);
		/* drain the pipelined RCPT and DATA replies */
		for (i = 0; c->has_pipelining && i < n + (with_data != 0); i++)
			if (client_reply(c, CLIENT_T_RCPT) < 0)
				return SESSION_LOST;
		return MAIL_REFUSED;
	}
	for (i = 0; i < n; i++) {
		if (!c->has_pipelining && queue_rcpt(c, &e->rcpt[idx[i]]) < 0)
			return -1;
		if ((code = client_reply(c, CLIENT_T_RCPT)) < 0)
			return -1;
		rcpt_reply(l, e, idx[i], code, ok, &nok);
	}
	return nok;
}

/* The transaction: MAIL, RCPTs, then DATA or BDAT. 0 the session may go
 * on, SESSION_LOST or SESSION_STALE. */
static int
transaction(struct deliver_link *l, struct envelope *e, int fd, long long size,
    size_t *idx, size_t n, size_t *ok)
{
	struct client *c = &l->c;
	const char *body = envelope_get(e, "body");
	int use_bdat = body != NULL && strcmp(body, "BINARYMIME") == 0;
	int with_data = !use_bdat && c->has_pipelining, code, nok;
	size_t i;

	if ((nok = envelope_commands(l, e, size, idx, n, ok, with_data)) < 0)
		return nok == MAIL_REFUSED ? rset(c) : nok;
	if (!use_bdat) {
		if (!with_data && nok == 0)
			return rset(c);
		if (!with_data && client_queue(c, "DATA") < 0)
			return -1;
		if ((code = client_reply(c, CLIENT_T_DATA)) < 0)
			return -1;
		if (nok == 0) {
			if (code == 354) {	/* nothing accepted: end it empty */
				client_queue(c, ".");
				return client_reply(c, CLIENT_T_DOT) < 0 ? -1 : 0;
			}
			return rset(c);
		}
		if (code == 354)
			code = client_data(c, fd);
	} else if (nok == 0)
		return rset(c);
	else
		code = client_bdat(c, fd);
	if (code < 0)
		return -1;
	for (i = 0; i < (size_t)nok; i++)
		outcome_rcpt(e, &e->rcpt[ok[i]], code / 100 == 2 ? 2 :
		    code / 100 == 5 ? 5 : 4, c->status, c->reply, l->mta,
		    c->has_dsn);
	return 0;
}

static int
too_many(const struct rcpt *r)
{
	const char *reason = rcpt_get(r, "reason");

	return outcome_pick_deferred(r) && reason != NULL &&
	    strncmp(reason, "452", 3) == 0;
}

/* Delivers e's active recipients over the open session. 0, SESSION_LOST,
 * or SESSION_STALE (only before anything of e was sent). */
static int
deliver_message(struct deliver_link *l, struct envelope *e, const char *name)
{
	char reason[CLIENT_REPLY_MAX];
	const char *status;
	size_t *idx, *ok, i, n = 0, last_n = 0, round;
	struct stat sb;
	int fd, rc = 0;

	if ((fd = content_open(name)) < 0 || fstat(fd, &sb) < 0) {
		log_event("error", "id=%s msg=\"no content\" error=%s", name,
		    log_quote(strerror(errno)));
		outcome_all_active(e, 4, "4.3.0", "451 4.3.0 message content unreadable", "");
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (strlen(e->sender) > LONG_ADDR) {
		outcome_all_active(e, 5, "5.1.7", "553 5.1.7 sender address too long", "");
		close(fd);
		return 0;
	}
	for (i = 0; i < e->nrcpt; i++)
		if (outcome_is_active(&e->rcpt[i]) && strlen(e->rcpt[i].addr) > LONG_ADDR)
			outcome_rcpt(e, &e->rcpt[i], 5, "5.1.3",
			    "553 5.1.3 recipient address too long", "", 0);
	if ((status = refusal(&l->c, e, sb.st_size, reason, sizeof reason)) != NULL) {
		outcome_all_active(e, 5, status, reason, l->mta);
		close(fd);
		return 0;
	}
	idx = calloc(e->nrcpt + 1, sizeof *idx);
	ok = calloc(e->nrcpt + 1, sizeof *ok);
	if (idx == NULL || ok == NULL)
		outcome_all_active(e, 4, "4.3.0", "451 4.3.0 out of memory", "");
	/* a server's recipient limit (452) only ends this transaction: the
	 * rest go in the next one at once, as long as each one makes progress */
	for (round = 0; idx != NULL && ok != NULL && rc == 0; round++) {
		for (i = 0, n = 0; i < e->nrcpt; i++)
			if (outcome_is_active(&e->rcpt[i]) && (round == 0 ||
			    (outcome_marked(&e->rcpt[i]) &&
			    too_many(&e->rcpt[i]))))
				idx[n++] = i;
		if (n == 0 || n == last_n || lseek(fd, 0, SEEK_SET) < 0)
			break;
		last_n = n;
		rc = transaction(l, e, fd, sb.st_size, idx, n, ok);
		if (rc == SESSION_STALE && round > 0)
			rc = SESSION_LOST;	/* some recipients have outcomes */
	}
	free(idx);
	free(ok);
	close(fd);
	return rc;
}

/* Waits until the connector's rate allows the next message. */
static void
rate_wait(struct deliver_link *l)
{
	struct timespec ts;
	time_t gap, now;
	sigset_t none;

	if (l->rate_per_min <= 0 || l->last_send == 0)
		return;
	gap = (60 + l->rate_per_min - 1) / l->rate_per_min;
	sigemptyset(&none);
	while (!spool_stop_requested && (now = time(NULL)) < l->last_send + gap) {
		ts.tv_sec = l->last_send + gap - now;
		ts.tv_nsec = 0;
		ppoll(NULL, 0, &ts, &none);
	}
}

/* A session-level refusal (554 greeting, 535 AUTH) defers the mail: its
 * code is shown as the temporary one, 5.7.8 as 4.7.8. */
static const char *
temp_status(char *status)
{
	if (status[0] == '5')
		status[0] = '4';
	return status;
}

/* Sends e over the open session. A kept session found closed before MAIL
 * was answered is opened again once for it. */
static void
send_message(struct deliver_link *l, struct envelope *e, const char *name)
{
	int rc;

	if ((rc = deliver_message(l, e, name)) == SESSION_STALE) {
		log_detail(LOGLEVEL_MEDIUM, "connect", "host=%s msg=\"kept session "
		    "was closed: connecting again\"", log_quote(l->mta));
		client_close(&l->c, 0);
		l->is_open = 0;
		if (session_open(l) < 0) {
			outcome_all_active(e, 4, temp_status(l->status), l->reason,
			    l->mta);
			return;
		}
		rc = deliver_message(l, e, name);	/* a new session: not stale */
	}
	if (rc < 0) {
		link_error(l, &l->c);
		client_close(&l->c, 0);
		l->is_open = 0;
		if (!spool_stop_requested)
			outcome_all_active(e, 4, temp_status(l->status), l->reason, l->mta);
	} else
		l->is_reused = 1;
}

/* Resolves and connects as needed, then delivers. The envelope's active
 * recipients all get an outcome, unless we are stopping. */
void
deliver_attempt(struct deliver_link *l, struct envelope *e, const char *name)
{
	const char *hops = envelope_get(e, "hops");

	if (l->resolved < 0) {
		l->resolved = hops == NULL ? 0 : dns_resolve_hops(hops, l->port,
		    l->timeout_cap > 0 && l->timeout_cap < 60 ? l->timeout_cap : 60,
		    &l->hosts);
		if (l->resolved <= 0 && hops != NULL && l->hosts.code[0] == '\0')
			snprintf(l->hosts.code, sizeof l->hosts.code, "4.4.3");
		if (hops == NULL || l->resolved < 0)
			snprintf(l->hosts.error, sizeof l->hosts.error,
			    "bad or missing next hop %s", hops ? hops : "");
		if (hops == NULL)
			snprintf(l->hosts.code, sizeof l->hosts.code, "5.4.4");
	}
	if (l->resolved <= 0) {
		char reason[400];
		snprintf(reason, sizeof reason, "%s", l->hosts.error);
		outcome_all_active(e, l->hosts.code[0] - '0', l->hosts.code, reason, "");
		snprintf(l->status, sizeof l->status, "%s", l->hosts.code);
		snprintf(l->reason, sizeof l->reason, "%s", reason);
		return;
	}
	if (!l->is_open && (l->failed || session_open(l) < 0)) {
		outcome_all_active(e, 4, temp_status(l->status), l->reason, l->mta);
		return;
	}
	rate_wait(l);
	if (spool_stop_requested)
		return;
	send_message(l, e, name);
	l->last_send = time(NULL);
}

void
deliver_idle_lost(struct deliver_link *l)
{
	log_detail(LOGLEVEL_MEDIUM, "connect", "host=%s msg=\"kept session "
	    "closed by the peer\"", log_quote(l->mta));
	/* QUIT all the same: what woke us may not have been the end */
	client_close(&l->c, 1);
	l->is_open = 0;
	l->is_reused = 0;
}
