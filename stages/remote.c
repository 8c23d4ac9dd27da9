/*
 * bh-remote: deliver the envelopes of spool/remote to other SMTP servers.
 *
 * reads   spool/remote/new/NAME   one envelope per next hop (bh-route): dest,
 *                                 hops, connector, source; content spool/msg/NAME
 * writes  spool/remote/retry/NAME deferred recipients, mtime = next attempt
 *         spool/ndr/new/NAME.*    failure, delay and relayed records
 *         spool/state/DEST        destination link state: Ready / Retry
 * config  settings: retry, delay-notify, expire, max-remote,
 *         max-remote-per-domain, remote-port, timeout, dns, hostname;
 *         connectors.cdb (helo, tls, tls-ca, auth, rate, etrn-request);
 *         servers.cdb (the source= server's listen address and hostname)
 * exit    0 queue drained (-1) or SIGTERM; 100 bad usage; 111 spool trouble
 *
 * bh-remote --turn DEST,... [NAME] is the ATRN role reversal: fd 0 is a
 * connection whose client now acts as the server; the envelopes in
 * spool/remote/hold/ for those destinations go over it (see turn()).
 *
 * Concurrency: a scheduler and forked workers. The parent never touches the
 * network: it watches new/ (inotify), groups waiting envelopes by
 * destination and starts one worker process per connection, at most
 * max-remote (20) at once and max-remote-per-domain (5) per destination (1
 * when the connector has rate=). A worker resolves the next hop (udns, all
 * queries at once), connects, delivers its batch of envelopes over one
 * session, records each envelope's outcome (done, deferred to retry/,
 * reports to spool/ndr) and exits. A slow peer holds only its own worker.
 * We chose processes over one event loop because a worker's blocking code
 * with deadlines is simple to read, and one peer's trouble (or a crash)
 * cannot reach the others.
 *
 * SIGTERM: the parent passes it to the workers, which abandon the message
 * in hand (its envelope stays in new/ unchanged: at worst delivered twice,
 * never lost) and exit; then the parent exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"
#include "client.h"
#include "conf.h"
#include "content.h"
#include "dest.h"
#include "dns.h"
#include "log.h"
#include "root.h"
#include "stage.h"
#include "track.h"

/* LONG_ADDR: longer addresses would not fit a command line (RFC 5321
 * allows 256); the DSN parameters are short by their RFCs (ENVID 100,
 * ORCPT 500) and are cut to fit. */
enum { BATCH_MAX = 100, HASH_SIZE = 4096, COOL_SEC = 60, LONG_ADDR = 512 };

/* ---- the retry policy ---- */

struct policy {
	long long retry[4];	/* first, second, third, subsequent */
	long long delay_notify, expire;
};

static void
policy_read(struct policy *p)
{
	static const long long def[4] = { 600, 600, 600, 900 };
	char list[256], *s, *save = NULL;
	long long t;
	int i;

	memcpy(p->retry, def, sizeof def);
	conf_setting("retry", NULL, list, sizeof list);
	for (i = 0, s = strtok_r(list, ", ", &save); s != NULL && i < 4;
	    i++, s = strtok_r(NULL, ", ", &save))
		if ((t = conf_parse_time(s)) > 0)
			p->retry[i] = t;
	for (; i > 0 && i < 4; i++)
		p->retry[i] = p->retry[i - 1];
	p->delay_notify = conf_setting_time("delay-notify", 12 * 3600);
	p->expire = conf_setting_time("expire", 2 * 86400);
}

/* When the message's clock started: arrival, else the first failure. */
static time_t
start_time(const struct envelope *e, time_t now)
{
	const char *v = envelope_get(e, "arrived");

	if (v == NULL)
		v = envelope_get(e, "first-failure");
	return v != NULL ? (time_t)strtoll(v, NULL, 10) : now;
}

/* ---- recording outcomes ---- */

/* The recipients whose outcome this attempt set: stage_report's pick
 * functions see only a recipient, so the attempt's marks live here. */
static const struct envelope *mark_env;
static unsigned char *mark;

static int
marked(const struct rcpt *r)
{
	return mark_env != NULL && mark[r - mark_env->rcpt];
}

static int
pick_failed(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return marked(r) && s != NULL && strcmp(s, "failed") == 0;
}

static int
pick_relayed(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return marked(r) && s != NULL && strcmp(s, "relayed") == 0;
}

static int
is_active(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return s == NULL || strcmp(s, "remote") == 0 || strcmp(s, "deferred") == 0 ||
	    strcmp(s, "new") == 0;
}

static int
pick_deferred(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return s != NULL && strcmp(s, "deferred") == 0;
}

/* Sets one recipient's outcome from a reply class (2, 4, 5) or a failure. */
static void
rcpt_result(struct envelope *e, struct rcpt *r, int class, const char *status,
    const char *reason, const char *mta, int has_dsn)
{
	const char *notify = rcpt_get(r, "notify");
	const char *state = class == 2 ? "delivered" : class == 5 ? "failed" :
	    "deferred";
	char now[32];

	/* the receiver cannot send the success notice asked for: we do */
	if (class == 2 && !has_dsn && notify != NULL && strstr(notify, "SUCCESS"))
		state = "relayed";
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	rcpt_outcome(r, state, status, reason);
	rcpt_set(r, "remote-mta", mta != NULL && *mta ? mta : NULL);
	rcpt_set(r, "last-attempt", now);
	mark[r - e->rcpt] = 1;
}

static void
all_active(struct envelope *e, int class, const char *status,
    const char *reason, const char *mta)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (is_active(&e->rcpt[i]))
			rcpt_result(e, &e->rcpt[i], class, status, reason, mta, 0);
}

/* Expiry: every recipient still waiting fails with code (4.4.7, or 4.3.2
 * when the destination was frozen). */
static void
expire_active(struct envelope *e, const char *code, const char *why)
{
	char reason[1200];
	size_t i;

	for (i = 0; i < e->nrcpt; i++) {
		const char *last = rcpt_get(&e->rcpt[i], "reason");
		if (!is_active(&e->rcpt[i]))
			continue;
		snprintf(reason, sizeof reason, "%s%s%s", why,
		    last ? "; last error: " : "", last ? last : "");
		rcpt_outcome(&e->rcpt[i], "failed", code, reason);
		mark[i] = 1;
	}
}

static void
track_marked(const char *name, const struct envelope *e)
{
	static const char *events[][2] = {
		{ "delivered", "delivered" }, { "relayed", "delivered" },
		{ "failed", "failed" }, { "deferred", "deferred" },
	};
	size_t i, k;

	for (i = 0; i < e->nrcpt; i++) {
		const char *s = rcpt_get(&e->rcpt[i], "state");
		for (k = 0; mark[i] && s != NULL && k < 4; k++)
			if (strcmp(s, events[k][0]) == 0)
				track(events[k][1], name, e, &e->rcpt[i],
				    rcpt_get(&e->rcpt[i], "reason"));
	}
}

static int
has_active(const struct envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (is_active(&e->rcpt[i]))
			return 1;
	return 0;
}

static void
set_number(struct envelope *e, const char *key, long long n)
{
	char v[32];

	snprintf(v, sizeof v, "%lld", n);
	envelope_set(e, key, v);
}

/* The next attempt for a deferred envelope, counting this try (a frozen
 * destination's wait is no try). Never later than its expiry. */
static time_t
next_attempt(struct envelope *e, const struct policy *p, time_t now,
    int is_try)
{
	const char *v = envelope_get(e, "tries");
	long long tries = v ? strtoll(v, NULL, 10) : 0;
	time_t when, end;

	if (is_try) {
		tries++;
		set_number(e, "tries", tries);
		if (envelope_get(e, "first-failure") == NULL)
			set_number(e, "first-failure", now);
	}
	when = now + p->retry[tries < 1 ? 0 : tries > 4 ? 3 : tries - 1];
	end = start_time(e, now) + p->expire;
	if (when > end)
		when = end > now ? end : now + 1;
	set_number(e, "next-attempt", when);
	return when;
}

/* Set in --turn mode: the input folder is hold/, and a deferred envelope
 * is rewritten there (it waits for the next ATRN, not for a retry time). */
static int turn_mode;

static int
defer_in_place(struct stage *st, const char *name, const struct envelope *e,
    time_t when)
{
	struct buf b = BUF_INIT;
	int rc = -1, err;

	if (envelope_format(e, &b) == 0)
		rc = spool_put(&st->in, "retry", name, b.data, b.len, when);
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

/* After an attempt: reports, then the envelope is done or deferred.
 * 1 deferred (*when set), 0 finished, -1 left in new/ (spool trouble). */
static int
envelope_settle(struct stage *st, const char *name, struct envelope *e,
    const struct policy *p, int is_frozen, time_t *when)
{
	time_t now = time(NULL), start = start_time(e, now);

	if (has_active(e) && now >= start + p->expire)
		expire_active(e, is_frozen ? "4.3.2" : "4.4.7", is_frozen ?
		    "the destination was frozen until the message expired" :
		    "the message expired before it could be delivered");
	mark_env = e;
	track_marked(name, e);
	if (stage_report(name, e, "failure", pick_failed) < 0 ||
	    stage_report(name, e, "relayed", pick_relayed) < 0)
		goto trouble;
	if (!has_active(e)) {
		stage_done(st, name, 0);
		return 0;
	}
	*when = next_attempt(e, p, now, !is_frozen);
	if (envelope_get(e, "delay-notified") == NULL &&
	    now - start >= p->delay_notify) {
		if (stage_report(name, e, "delay", pick_deferred) < 0)
			goto trouble;
		envelope_set(e, "delay-notified", "yes");
	}
	if ((turn_mode ? defer_in_place(st, name, e, *when) :
	    stage_defer(st, name, e, *when)) < 0)
		goto trouble;
	return 1;
trouble:
	log_event("error", "id=%s msg=\"unable to record the outcome\" error=%s",
	    name, log_quote(strerror(errno)));
	return -1;
}

/* ---- one connection: what to say, and opening it ---- */

struct link {
	char key[4096];		/* hops, connector, source: what the session fits */
	char helo[256], user[256], pass[256], etrn[256], ca[512];
	int use_helo, tls_required, has_auth, rate_per_min, port, timeout_cap;
	struct sockaddr_storage bind;
	socklen_t bind_len;
	struct dns_hosts hosts;
	int resolved;		/* 1 hosts, 0 none (hosts.code), -1 not yet */
	struct client c;
	int is_open, failed;	/* failed: no host took a session: stop trying */
	char status[16], reason[CLIENT_REPLY_MAX], mta[300];
	time_t last_send;
};

/* The source= server: bind its listen address, greet with its name. */
static void
link_source(struct link *l, const char *server)
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
link_connector(struct link *l, const char *name)
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
static void
route_key(const struct envelope *e, char *out, size_t cap)
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
static int
link_prepare(struct link *l, const struct envelope *e)
{
	const char *conn = envelope_get(e, "connector");
	const char *source = envelope_get(e, "source");
	char key[sizeof l->key], route[DEST_NAME_MAX + 8];

	route_key(e, route, sizeof route);
	snprintf(key, sizeof key, "%s|%s|%s", route, conn ? conn : "",
	    source ? source : "");
	if (strcmp(key, l->key) == 0)
		return 0;
	if (l->is_open)
		client_close(&l->c, 1);
	memset(l, 0, offsetof(struct link, c));
	memcpy(l->key, key, sizeof key);
	snprintf(l->helo, sizeof l->helo, "%s", conf_hostname());
	l->port = conf_setting_size("remote-port", 25);
	l->timeout_cap = conf_setting_time("timeout", 0);
	l->resolved = -1;
	l->is_open = l->failed = 0;
	if (conn != NULL)
		link_connector(l, conn);
	if (source != NULL)
		link_source(l, source);
	return 1;
}

static void
link_error(struct link *l, const struct client *c)
{
	snprintf(l->status, sizeof l->status, "%s", c->status);
	snprintf(l->reason, sizeof l->reason, "%s", c->reply);
	if (c->code > 0)
		snprintf(l->mta, sizeof l->mta, "%s", c->host);
}

/* After the greeting: EHLO, STARTTLS, AUTH. 0 ready, -1 not (reason set). */
static int
session_hello(struct link *l, int try_tls)
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
session_open(struct link *l)
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
			if (rc == 220 && (rc = session_hello(l, try_tls)) == 0) {
				l->is_open = 1;
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
rcpt_reply(struct link *l, struct envelope *e, size_t i, int code,
    size_t *ok, size_t *nok)
{
	if (code / 100 == 2)
		ok[(*nok)++] = i;
	else
		rcpt_result(e, &e->rcpt[i], code / 100 == 5 ? 5 : 4, l->c.status,
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
 * allows. The number of accepted recipients (in ok[]), -2 when MAIL was
 * refused (every recipient has its outcome), -1 when the session is lost. */
static int
envelope_commands(struct link *l, struct envelope *e, long long size,
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
	if ((code = client_reply(c, CLIENT_T_MAIL)) < 0)
		return -1;
	if (code / 100 != 2) {
		for (i = 0; i < n; i++)
			rcpt_result(e, &e->rcpt[idx[i]], code / 100 == 5 ? 5 : 4,
			    c->status, c->reply, l->mta, 0);
		/* drain the pipelined RCPT and DATA replies */
		for (i = 0; c->has_pipelining && i < n + (with_data != 0); i++)
			if (client_reply(c, CLIENT_T_RCPT) < 0)
				return -1;
		return -2;
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
 * on, -1 it is lost (recipients without a reply keep their state). */
static int
transaction(struct link *l, struct envelope *e, int fd, long long size,
    size_t *idx, size_t n, size_t *ok)
{
	struct client *c = &l->c;
	const char *body = envelope_get(e, "body");
	int use_bdat = body != NULL && strcmp(body, "BINARYMIME") == 0;
	int with_data = !use_bdat && c->has_pipelining, code, nok;
	size_t i;

	if ((nok = envelope_commands(l, e, size, idx, n, ok, with_data)) < 0)
		return nok == -2 ? rset(c) : -1;
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
		rcpt_result(e, &e->rcpt[ok[i]], code / 100 == 2 ? 2 :
		    code / 100 == 5 ? 5 : 4, c->status, c->reply, l->mta,
		    c->has_dsn);
	return 0;
}

static int
too_many(const struct rcpt *r)
{
	const char *reason = rcpt_get(r, "reason");

	return pick_deferred(r) && reason != NULL && strncmp(reason, "452", 3) == 0;
}

/* Delivers e's active recipients over the open session. 0 or -1 (lost). */
static int
deliver(struct link *l, struct envelope *e, const char *name)
{
	char reason[CLIENT_REPLY_MAX];
	const char *status;
	size_t *idx, *ok, i, n = 0, last_n = 0, round;
	struct stat sb;
	int fd, rc = 0;

	if ((fd = content_open(name)) < 0 || fstat(fd, &sb) < 0) {
		log_event("error", "id=%s msg=\"no content\" error=%s", name,
		    log_quote(strerror(errno)));
		all_active(e, 4, "4.3.0", "451 4.3.0 message content unreadable", "");
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (strlen(e->sender) > LONG_ADDR) {
		all_active(e, 5, "5.1.7", "553 5.1.7 sender address too long", "");
		close(fd);
		return 0;
	}
	for (i = 0; i < e->nrcpt; i++)
		if (is_active(&e->rcpt[i]) && strlen(e->rcpt[i].addr) > LONG_ADDR)
			rcpt_result(e, &e->rcpt[i], 5, "5.1.3",
			    "553 5.1.3 recipient address too long", "", 0);
	if ((status = refusal(&l->c, e, sb.st_size, reason, sizeof reason)) != NULL) {
		all_active(e, 5, status, reason, l->mta);
		close(fd);
		return 0;
	}
	idx = calloc(e->nrcpt + 1, sizeof *idx);
	ok = calloc(e->nrcpt + 1, sizeof *ok);
	if (idx == NULL || ok == NULL)
		all_active(e, 4, "4.3.0", "451 4.3.0 out of memory", "");
	/* a server's recipient limit (452) only ends this transaction: the
	 * rest go in the next one at once, as long as each one makes progress */
	for (round = 0; idx != NULL && ok != NULL && rc == 0; round++) {
		for (i = 0, n = 0; i < e->nrcpt; i++)
			if (is_active(&e->rcpt[i]) && (round == 0 ||
			    (mark[i] && too_many(&e->rcpt[i]))))
				idx[n++] = i;
		if (n == 0 || n == last_n || lseek(fd, 0, SEEK_SET) < 0)
			break;
		last_n = n;
		rc = transaction(l, e, fd, sb.st_size, idx, n, ok);
	}
	free(idx);
	free(ok);
	close(fd);
	return rc;
}

/* ---- a worker: one destination's batch over one session ---- */

static int
dest_frozen(const char *dest)
{
	struct dest_state ds;

	return dest_read(dest, &ds) == 1 && strcmp(ds.state, "Frozen") == 0;
}

/* What a worker learnt about its destination. */
struct outcome {
	char dest[DEST_NAME_MAX];	/* the link-state name (field dest) */
	time_t earliest;	/* the soonest deferred attempt */
	int had_session;	/* some host took a session: Ready */
	int had_trouble;	/* no session (connection or DNS 4.x.x): Retry */
	int spool_trouble;	/* an envelope could not be settled */
};

/* Ready when a session was made, Retry with the error when none could be;
 * a Frozen (or other operator) state is never overwritten. */
static void
dest_update(const char *dest, const struct link *l, const struct outcome *o)
{
	struct dest_state ds;
	int rc = dest_read(dest, &ds);

	if (rc < 0 || (strcmp(ds.state, "Ready") != 0 && strcmp(ds.state, "Retry") != 0))
		return;
	if (o->had_session || !o->had_trouble) {
		if (rc == 1 && o->had_session)
			dest_clear(dest);
		return;
	}
	if (strcmp(ds.state, "Retry") != 0)
		ds.since = time(NULL);
	snprintf(ds.state, sizeof ds.state, "Retry");
	snprintf(ds.error, sizeof ds.error, "%.*s", (int)sizeof ds.error - 1,
	    l->reason);
	ds.next_attempt = o->earliest;
	if (dest_write(dest, &ds) < 0)
		log_event("warning", "dest=%s msg=\"unable to write state\"",
		    log_quote(dest));
}

/* Waits until the connector's rate allows the next message. */
static void
rate_wait(struct link *l)
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

/* Resolves and connects as needed, then delivers. The envelope's active
 * recipients all get an outcome, unless we are stopping. */
static void
attempt(struct link *l, struct envelope *e, const char *name)
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
		all_active(e, l->hosts.code[0] - '0', l->hosts.code, reason, "");
		snprintf(l->status, sizeof l->status, "%s", l->hosts.code);
		snprintf(l->reason, sizeof l->reason, "%s", reason);
		return;
	}
	if (!l->is_open && (l->failed || session_open(l) < 0)) {
		all_active(e, 4, temp_status(l->status), l->reason, l->mta);
		return;
	}
	rate_wait(l);
	if (spool_stop_requested)
		return;
	if (deliver(l, e, name) < 0) {
		link_error(l, &l->c);
		client_close(&l->c, 0);
		l->is_open = 0;
		if (!spool_stop_requested)
			all_active(e, 4, temp_status(l->status), l->reason, l->mta);
	}
	l->last_send = time(NULL);
}

static int
any_marked(const struct envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (mark[i])
			return 1;
	return 0;
}

static void
worker_one(struct stage *st, struct link *l, const char *name,
    const struct policy *p, struct outcome *o)
{
	struct envelope e = ENVELOPE_INIT;
	const char *dest;
	int frozen, rc;
	time_t when;

	if (stage_read(st, name, &e) < 0) {
		if (errno != ENOENT) {
			log_event("error", "id=%s msg=\"unreadable envelope\" error=%s",
			    name, log_quote(strerror(errno)));
			o->spool_trouble = 1;
		}
		return;
	}
	if ((mark = calloc(e.nrcpt + 1, 1)) == NULL)
		goto out;
	dest = envelope_get(&e, "dest");
	frozen = dest != NULL && dest_frozen(dest);
	if (dest != NULL)
		snprintf(o->dest, sizeof o->dest, "%s", dest);
	if (!turn_mode)
		link_prepare(l, &e);
	if (!frozen)
		attempt(l, &e, name);
	o->had_session |= l->is_open;
	if (!frozen && !l->is_open && l->status[0] == '4')
		o->had_trouble = 1;
	/* stopping: an interrupted attempt leaves the envelope as it was */
	if (spool_stop_requested && !any_marked(&e))
		goto out;
	rc = envelope_settle(st, name, &e, p, frozen, &when);
	if (rc < 0)
		o->spool_trouble = 1;
	if (rc == 1 && (o->earliest == 0 || when < o->earliest))
		o->earliest = when;
out:
	free(mark);
	mark = NULL;
	mark_env = NULL;
	envelope_free(&e);
}

/* Exits 0 when every envelope was settled (or vanished), 111 otherwise:
 * the scheduler then leaves the rest alone for a while. */
static _Noreturn void
worker(struct stage *st, char **names, size_t n)
{
	struct link *l = calloc(1, sizeof *l);
	struct outcome o;
	struct policy p;
	size_t i;

	if (l == NULL)
		_exit(EXIT_TEMP);
	memset(&o, 0, sizeof o);
	policy_read(&p);
	for (i = 0; i < n && !spool_stop_requested; i++)
		worker_one(st, l, names[i], &p, &o);
	if (l->is_open && l->etrn[0] != '\0' && l->c.has_etrn &&
	    client_queue(&l->c, "ETRN %s", l->etrn) == 0)
		client_reply(&l->c, CLIENT_T_MAIL);
	if (l->is_open)
		client_close(&l->c, 1);
	/* bh-route treats a Retry without a time as down for good */
	if (o.earliest == 0)
		o.earliest = time(NULL) + p.retry[0];
	if (!spool_stop_requested && o.dest[0] != '\0' && !dest_frozen(o.dest))
		dest_update(o.dest, l, &o);
	_exit(o.spool_trouble || spool_stop_requested ? EXIT_TEMP : EXIT_DONE);
}

/* ---- ATRN: held mail over a connection the customer opened ---- */

static int
name_order(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in hold/ whose destination is in the comma-separated list. */
static size_t
turn_names(int holdfd, const char *dests, char ***out)
{
	struct envelope e = ENVELOPE_INIT;
	struct dirent *d;
	const char *dest;
	char **v = NULL, **grown;
	size_t n = 0, len;
	DIR *dir;
	int fd;

	if ((fd = dup(holdfd)) < 0 || (dir = fdopendir(fd)) == NULL)
		die(EXIT_TEMP, errno, "unable to list spool/remote/hold");
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || envelope_read(&e, holdfd, d->d_name) < 0)
			continue;
		dest = envelope_get(&e, "dest");
		len = dest ? strlen(dest) : 0;
		for (const char *p = dests; dest != NULL && *p; p += strcspn(p, ","),
		    p += *p == ',')
			if (strncmp(p, dest, len) == 0 && (p[len] == ',' || p[len] == '\0')) {
				if ((grown = realloc(v, (n + 1) * sizeof *v)) == NULL ||
				    (grown[n] = strdup(d->d_name)) == NULL)
					die(EXIT_TEMP, ENOMEM, "out of memory");
				v = grown;
				n++;
				break;
			}
		envelope_free(&e);
	}
	closedir(dir);
	if (n > 0)
		qsort(v, n, sizeof *v, name_order);
	*out = v;
	return n;
}

/* bh-remote --turn DEST,... [NAME]: fd 0 is a connection whose other end
 * has just had its ATRN accepted (RFC 2645) and now acts as the server.
 * Held envelopes of those destinations go over it; recipients that are
 * not delivered stay in hold/ for the next ATRN. */
static int
turn(struct stage *st, const char *dests, const char *peer)
{
	struct link *l = calloc(1, sizeof *l);
	struct outcome o;
	struct policy p;
	char **names;
	size_t i, n;
	int holdfd;

	if (l == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	if ((holdfd = openat(st->in.dirfd, "hold", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0 && (mkdirat(st->in.dirfd, "hold", 0700) < 0 ||
	    (holdfd = openat(st->in.dirfd, "hold", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0))
		die(EXIT_TEMP, errno, "unable to open spool/remote/hold");
	st->in.newfd = st->in.retryfd = holdfd;
	turn_mode = 1;
	memset(&o, 0, sizeof o);
	policy_read(&p);
	snprintf(l->helo, sizeof l->helo, "%s", conf_hostname());
	l->timeout_cap = conf_setting_time("timeout", 0);
	if (client_attach(&l->c, 0, peer, peer, l->timeout_cap) != 220 ||
	    session_hello(l, 0) != 0)
		die(EXIT_TEMP, 0, "no SMTP session after ATRN: %s", l->c.reply);
	l->is_open = l->resolved = 1;
	snprintf(l->mta, sizeof l->mta, "%s", peer);
	n = turn_names(holdfd, dests, &names);
	for (i = 0; i < n && !spool_stop_requested; i++) {
		worker_one(st, l, names[i], &p, &o);
		if (!l->is_open)
			l->failed = 1;	/* the customer went away: no reconnect */
		free(names[i]);
	}
	free(names);
	if (l->is_open)
		client_close(&l->c, 1);
	log_event("turn", "dests=%s peer=%s messages=%zu", log_quote(dests),
	    log_quote(peer), n);
	return o.spool_trouble ? EXIT_TEMP : EXIT_DONE;
}

/* ---- the scheduler ---- */

struct item {
	char *name;
	struct dsched *d;
	int state;		/* ITEM_PENDING, ITEM_RUNNING, ITEM_SEEN */
	time_t not_before;
	struct item *next;	/* hash chain */
	struct item *qnext;	/* its destination's pending queue */
};

enum { ITEM_PENDING, ITEM_RUNNING, ITEM_SEEN };

struct dsched {
	char *name;
	int running, limit;
	size_t npending, nitems;	/* pending; all items naming it */
	struct item *qhead, *qtail;	/* pending items, oldest first */
	time_t not_before;	/* rate pacing between workers */
	int rate_per_min;
	struct dsched *next;	/* hash chain */
};

struct worker {
	pid_t pid;
	struct dsched *d;
	struct item **items;
	size_t n;
};

struct sched {
	struct stage *st;
	struct item *hash[HASH_SIZE];
	struct dsched *dhash[HASH_SIZE];
	struct dsched **dests;
	size_t ndests, rotor;
	struct worker *workers;
	int nworkers, max_workers, per_dest, workers_cap;
	int inotify;
};

static volatile sig_atomic_t child_exited;

static void
on_child(int sig)
{
	(void)sig;
	child_exited = 1;
}

static unsigned
hash_name(const char *s)
{
	unsigned h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % HASH_SIZE;
}

static struct item *
item_find(struct sched *s, const char *name)
{
	struct item *it;

	for (it = s->hash[hash_name(name)]; it != NULL; it = it->next)
		if (strcmp(it->name, name) == 0)
			return it;
	return NULL;
}

static void
item_forget(struct sched *s, struct item *it)
{
	struct item **p = &s->hash[hash_name(it->name)];

	while (*p != it)
		p = &(*p)->next;
	*p = it->next;
	if (it->d != NULL)
		it->d->nitems--;
	free(it->name);
	free(it);
}

static void
item_pend(struct item *it)
{
	struct dsched *d = it->d;

	it->state = ITEM_PENDING;
	it->qnext = NULL;
	if (d->qtail != NULL)
		d->qtail->qnext = it;
	else
		d->qhead = it;
	d->qtail = it;
	d->npending++;
}

static struct item *
item_unpend(struct dsched *d)
{
	struct item *it = d->qhead;

	if (it == NULL)
		return NULL;
	if ((d->qhead = it->qnext) == NULL)
		d->qtail = NULL;
	d->npending--;
	it->state = ITEM_RUNNING;
	return it;
}

static int
connector_rate(const char *connector)
{
	struct conf cs;
	struct attrs a = ATTRS_INIT;
	char key[300];
	const char *v;
	int rate = 0;

	snprintf(key, sizeof key, "connector:%s", connector);
	if (conf_open(&cs, "connectors") == 0 && conf_record(&cs, key, &a) == 1 &&
	    (v = attrs_get(&a, "rate")) != NULL)
		rate = atoi(v);
	attrs_free(&a);
	conf_close(&cs);
	return rate;
}

static struct dsched *
dest_get(struct sched *s, const char *name, const char *connector)
{
	struct dsched *d, **v;
	unsigned h = hash_name(name);

	for (d = s->dhash[h]; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	if ((v = realloc(s->dests, (s->ndests + 1) * sizeof *v)) == NULL ||
	    (d = calloc(1, sizeof *d)) == NULL || (d->name = strdup(name)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	s->dests = v;
	d->next = s->dhash[h];
	s->dhash[h] = d;
	d->rate_per_min = connector ? connector_rate(connector) : 0;
	d->limit = d->rate_per_min > 0 ? 1 : 0;	/* 0: settings */
	s->dests[s->ndests++] = d;
	return d;
}

/* A name seen in new/: known ones are skipped, new ones join their dest. */
static void
consider(struct sched *s, const char *name, time_t now)
{
	struct envelope e = ENVELOPE_INIT;
	struct item *it = item_find(s, name);
	char key[DEST_NAME_MAX + 8];
	unsigned h;

	if (it != NULL) {
		if (it->state == ITEM_SEEN && it->d != NULL &&
		    it->not_before != 0 && it->not_before <= now)
			item_pend(it);
		return;
	}
	if ((it = calloc(1, sizeof *it)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	if ((it->name = strdup(name)) == NULL) {
		free(it);
		die(EXIT_TEMP, ENOMEM, "out of memory");
	}
	h = hash_name(name);
	it->next = s->hash[h];
	s->hash[h] = it;
	it->state = ITEM_SEEN;	/* unreadable: left alone until it changes */
	/* no stage_read here: its lock would be inherited by the worker that
	 * takes the envelope (flock belongs to the open file), and only the
	 * worker may hold the envelope against bh-queue */
	if (envelope_read(&e, s->st->in.newfd, name) < 0) {
		if (errno != ENOENT)
			log_event("error", "id=%s msg=\"unreadable envelope\"", name);
		else
			item_forget(s, it);
		envelope_free(&e);
		return;
	}
	route_key(&e, key, sizeof key);
	it->d = dest_get(s, key, envelope_get(&e, "connector"));
	it->d->nitems++;
	item_pend(it);
	envelope_free(&e);
}

/* Lists new/ (after releasing due retries into it). */
static void
scan(struct sched *s)
{
	struct spool *in = &s->st->in;
	char first[NAME_MAX + 1];
	time_t now = time(NULL);
	size_t i;

	in->due_known = 0;	/* workers may have deferred: look at retry/ */
	in->pos = in->nnames;
	if (spool_next(in, first, sizeof first, 1) != 1)
		return;
	for (i = 0; i < in->nnames; i++)
		consider(s, in->names[i], now);
	in->pos = in->nnames;
}

static void
launch(struct sched *s, struct dsched *d, size_t slots)
{
	struct worker *w = &s->workers[s->nworkers];
	size_t take = (d->npending + slots - 1) / slots, i, k = 0;
	char **names;
	pid_t pid;

	if (take > BATCH_MAX)
		take = BATCH_MAX;
	if ((w->items = calloc(take, sizeof *w->items)) == NULL ||
	    (names = calloc(take + 1, sizeof *names)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	while (k < take && (w->items[k] = item_unpend(d)) != NULL)
		k++;
	for (i = 0; i < k; i++)
		names[i] = w->items[i]->name;
	if ((pid = fork()) < 0)
		die(EXIT_TEMP, errno, "unable to fork");
	if (pid == 0) {
		if (s->inotify >= 0)
			close(s->inotify);
		worker(s->st, names, k);
	}
	free(names);
	w->pid = pid;
	w->d = d;
	w->n = k;
	d->running++;
	s->nworkers++;
}

/* Starts workers while limits allow, destinations in turn. */
static void
launch_all(struct sched *s)
{
	time_t now = time(NULL);
	size_t i, tried;
	struct dsched *d;
	int slots, idle;

	for (tried = 0; tried < s->ndests && s->nworkers < s->max_workers; tried++) {
		d = s->dests[s->rotor++ % s->ndests];
		if (d->npending == 0 || d->not_before > now)
			continue;
		slots = (d->limit > 0 ? d->limit : s->per_dest) - d->running;
		idle = s->max_workers - s->nworkers;
		if (slots > idle)
			slots = idle;
		for (i = 0; slots > 0 && d->npending > 0 && s->nworkers < s->max_workers;
		    i++, slots--)
			launch(s, d, slots);
	}
}

/* A destination nothing refers to any more: a long-running stage does
 * not keep every domain it ever saw. */
static void
dest_drop(struct sched *s, struct dsched *d)
{
	struct dsched **p = &s->dhash[hash_name(d->name)];
	size_t i;

	while (*p != d)
		p = &(*p)->next;
	*p = d->next;
	for (i = 0; i < s->ndests && s->dests[i] != d; i++)
		;
	if (i < s->ndests)
		s->dests[i] = s->dests[--s->ndests];
	free(d->name);
	free(d);
}

/* A worker ended: what it finished is forgotten (once-mode remembers all:
 * each envelope is tried once per run); what is still in new/ waits. */
static void
reap_one(struct sched *s, int idx, int status)
{
	struct worker *w = &s->workers[idx];
	time_t now = time(NULL);
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	size_t i;

	if (!ok && !spool_stop_requested)
		log_event("warning", "dest=%s msg=\"worker failed\" status=%d",
		    log_quote(w->d->name), status);
	for (i = 0; i < w->n; i++) {
		struct item *it = w->items[i];
		it->state = ITEM_SEEN;
		it->not_before = s->st->once ? 0 : now + COOL_SEC;
		if (ok && !s->st->once)
			item_forget(s, it);
	}
	w->d->running--;
	if (w->d->rate_per_min > 0)
		w->d->not_before = now + 60 / w->d->rate_per_min;
	else if (w->d->nitems == 0 && w->d->running == 0)
		dest_drop(s, w->d);
	free(w->items);
	s->workers[idx] = s->workers[--s->nworkers];
}

static void
reap(struct sched *s, int block)
{
	pid_t pid;
	int status, i;

	child_exited = 0;
	while (s->nworkers > 0 && (pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0)
		for (i = 0; i < s->nworkers; i++)
			if (s->workers[i].pid == pid) {
				reap_one(s, i, status);
				break;
			}
}

static size_t
total_pending(const struct sched *s, time_t *soonest)
{
	size_t i, n = 0;

	for (i = 0; i < s->ndests; i++) {
		n += s->dests[i]->npending;
		if (s->dests[i]->npending > 0 && s->dests[i]->not_before > 0 &&
		    (*soonest == 0 || s->dests[i]->not_before < *soonest))
			*soonest = s->dests[i]->not_before;
	}
	return n;
}

/* Sleeps until new/ changes, a worker ends, a retry or pacing time comes,
 * or a stop signal. */
static void
wait_event(struct sched *s, time_t soonest)
{
	char events[4096] __attribute__((aligned(8)));
	struct pollfd pfd = { s->inotify, POLLIN, 0 };
	struct timespec ts, *tsp = NULL;
	time_t now = time(NULL), due = s->st->in.next_due;
	sigset_t none;

	if (due != 0 && (soonest == 0 || due < soonest))
		soonest = due;
	if (soonest != 0) {
		ts.tv_sec = soonest > now ? soonest - now : 0;
		ts.tv_nsec = 100 * 1000 * 1000;
		tsp = &ts;
	}
	sigemptyset(&none);
	if (child_exited || spool_stop_requested)
		return;
	ppoll(&pfd, s->inotify >= 0, tsp, &none);
	while (s->inotify >= 0 && read(s->inotify, events, sizeof events) > 0)
		;
}

static int
watch_queue(void)
{
	char path[PATH_MAX];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0 || root_path(path, sizeof path, "spool/remote/new") < 0 ||
	    inotify_add_watch(fd, path, IN_MOVED_TO | IN_CREATE) < 0)
		die(EXIT_TEMP, errno, "unable to watch spool/remote/new");
	return fd;
}

/* The limits, read again before each round: a new settings.cdb applies
 * without a restart (running workers above a lowered limit finish). */
static void
sched_limits(struct sched *s)
{
	struct worker *w;
	int max = conf_setting_size("max-remote", 20);

	s->per_dest = conf_setting_size("max-remote-per-domain", 5);
	if (s->per_dest < 1)
		s->per_dest = 1;
	if (max < 1)
		max = 1;
	if (max > s->workers_cap) {
		if ((w = realloc(s->workers, max * sizeof *w)) == NULL)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		s->workers = w;
		s->workers_cap = max;
	}
	s->max_workers = max;
}

static void
sched_init(struct sched *s, struct stage *st)
{
	struct sigaction sa;
	sigset_t block;

	memset(s, 0, sizeof *s);
	s->st = st;
	sched_limits(s);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_child;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);
	s->inotify = watch_queue();
}

static void
sched_stop(struct sched *s)
{
	int i;

	for (i = 0; i < s->nworkers; i++)
		kill(s->workers[i].pid, SIGTERM);
	reap(s, 1);
	free(s->workers);
	s->workers = NULL;
}

int
main(int argc, char **argv)
{
	struct stage st;
	struct sched s;
	time_t soonest;

	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "--turn") == 0) {
		stage_start(&st, "remote", "remote", 1, argv);
		return turn(&st, argv[2], argc == 4 ? argv[3] : "atrn-client");
	}
	stage_start(&st, "remote", "remote", argc, argv);
	sched_init(&s, &st);
	while (!spool_stop_requested) {
		reap(&s, 0);
		sched_limits(&s);
		scan(&s);
		launch_all(&s);
		soonest = 0;
		if (st.once && s.nworkers == 0 && total_pending(&s, &soonest) == 0)
			break;
		total_pending(&s, &soonest);
		wait_event(&s, soonest);
	}
	sched_stop(&s);
	return EXIT_DONE;
}
