/*
 * bh-remote: deliver the envelopes of spool/remote to other SMTP servers.
 *
 * reads   spool/remote/new/NAME   one envelope per next hop (bh-route): dest,
 *                                 hops, connector, source; content spool/msg/NAME
 * writes  spool/remote/retry/NAME deferred recipients, mtime = next attempt
 *         spool/ndr/new/NAME.*    failure, delay and relayed records
 *         spool/state/DEST        destination link state: Ready / Retry
 * config  settings: retry, delay-notify, expire, max-remote,
 *         max-remote-per-domain, remote-idle, remote-port, timeout, dns,
 *         hostname;
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
 * session and records each envelope's outcome (done, deferred to retry/,
 * reports to spool/ndr). With its session open it then waits for the
 * next batch of its destination (connection reuse: the scheduler ends an
 * idle worker, see lib/dispatch.h). A slow peer holds only its own worker.
 * We chose processes over one event loop because a worker's blocking code
 * with deadlines is simple to read, and one peer's trouble (or a crash)
 * cannot reach the others.
 *
 * Here: the retry policy, settling an envelope after an attempt, the
 * worker and ATRN. The scheduler is lib/dispatch, a worker's SMTP session
 * lib/deliver, the recipients' outcomes of one attempt lib/outcome.
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

#include "conf.h"
#include "deliver.h"
#include "dest.h"
#include "log.h"
#include "outcome.h"
#include "root.h"
#include "dispatch.h"
#include "stage.h"

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

	if (outcome_has_active(e) && now >= start + p->expire)
		outcome_expire(e, is_frozen ? "4.3.2" : "4.4.7", is_frozen ?
		    "the destination was frozen until the message expired" :
		    "the message expired before it could be delivered");
	outcome_track(name, e);
	if (stage_report(name, e, "failure", outcome_pick_failed) < 0 ||
	    stage_report(name, e, "relayed", outcome_pick_relayed) < 0)
		goto trouble;
	if (!outcome_has_active(e)) {
		stage_done(st, name, 0);
		return 0;
	}
	*when = next_attempt(e, p, now, !is_frozen);
	if (envelope_get(e, "delay-notified") == NULL &&
	    now - start >= p->delay_notify) {
		if (stage_report(name, e, "delay", outcome_pick_deferred) < 0)
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

/* ---- a worker: one destination's batch over one session ---- */

static int
dest_frozen(const char *dest)
{
	struct dest_state ds;

	return dest_read(dest, &ds) == 1 && strcmp(ds.state, "Frozen") == 0;
}

/* What a worker learnt about its destination. */
struct worker_outcome {
	char dest[DEST_NAME_MAX];	/* the link-state name (field dest) */
	time_t earliest;	/* the soonest deferred attempt */
	int had_session;	/* some host took a session: Ready */
	int had_trouble;	/* no session (connection or DNS 4.x.x): Retry */
	int spool_trouble;	/* an envelope could not be settled */
};

/* Ready when a session was made, Retry with the error when none could be;
 * a Frozen (or other operator) state is never overwritten. */
static void
dest_update(const char *dest, const struct deliver_link *l,
    const struct worker_outcome *o)
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

static void
worker_one(struct stage *st, struct deliver_link *l, const char *name,
    const struct policy *p, struct worker_outcome *o)
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
	if (outcome_start(&e) < 0) {
		o->spool_trouble = 1;	/* its lock is still held: do not idle */
		goto out;
	}
	dest = envelope_get(&e, "dest");
	frozen = dest != NULL && dest_frozen(dest);
	if (dest != NULL)
		snprintf(o->dest, sizeof o->dest, "%s", dest);
	if (!turn_mode)
		deliver_prepare(l, &e);
	if (!frozen)
		deliver_attempt(l, &e, name);
	o->had_session |= l->is_open;
	if (!frozen && !l->is_open && l->status[0] == '4')
		o->had_trouble = 1;
	/* stopping: an interrupted attempt leaves the envelope as it was */
	if (spool_stop_requested && !outcome_any_marked(&e))
		goto out;
	rc = envelope_settle(st, name, &e, p, frozen, &when);
	if (rc < 0)
		o->spool_trouble = 1;
	if (rc == 1 && (o->earliest == 0 || when < o->earliest))
		o->earliest = when;
out:
	outcome_end();
	envelope_free(&e);
}

/* One batch over l's session (still open from the last batch, or made
 * now), then the link state. EXIT_DONE when every envelope was settled (or
 * vanished), EXIT_TEMP otherwise: the scheduler then leaves the rest alone
 * for a while. */
static int
worker_batch(struct stage *st, struct deliver_link *l, char **names, size_t n,
    const struct policy *p)
{
	struct worker_outcome o;
	size_t i;

	memset(&o, 0, sizeof o);
	for (i = 0; i < n && !spool_stop_requested; i++)
		worker_one(st, l, names[i], p, &o);
	/* bh-route treats a Retry without a time as down for good */
	if (o.earliest == 0)
		o.earliest = time(NULL) + p->retry[0];
	if (!spool_stop_requested && o.dest[0] != '\0')
		dest_update(o.dest, l, &o);	/* leaves Frozen alone */
	return o.spool_trouble || spool_stop_requested ? EXIT_TEMP : EXIT_DONE;
}

/* Batches from the scheduler, one session kept between them. A worker
 * waits for more only with its session open and every envelope settled
 * (so it holds no envelope lock), and not for a connector with
 * etrn-request (the ETRN goes right after the batch, as the dial-up
 * customer expects). It exits with the last batch's status. */
static _Noreturn void
worker(struct stage *st, struct dispatch_chan *ch)
{
	struct deliver_link *l = calloc(1, sizeof *l);
	struct policy p;
	char **names;
	size_t n;
	int rc, status = EXIT_DONE;

	if (l == NULL)
		_exit(EXIT_TEMP);
	policy_read(&p);
	while ((rc = dispatch_next(ch, l->is_open ? l->c.fd : -1, &names, &n)) !=
	    DISPATCH_END) {
		if (rc == DISPATCH_WATCHED) {
			deliver_idle_lost(l);	/* the next batch reconnects */
			continue;
		}
		status = worker_batch(st, l, names, n, &p);
		if (status != EXIT_DONE || !l->is_open || l->etrn[0] != '\0' ||
		    dispatch_answer(ch, status) < 0)
			break;
	}
	if (l->is_open && l->etrn[0] != '\0' && l->c.has_etrn &&
	    client_queue(&l->c, "ETRN %s", l->etrn) == 0)
		client_reply(&l->c, CLIENT_T_MAIL);
	if (l->is_open)
		client_close(&l->c, 1);
	_exit(status != EXIT_DONE || spool_stop_requested ? EXIT_TEMP : EXIT_DONE);
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
	struct deliver_link *l = calloc(1, sizeof *l);
	struct worker_outcome o;
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
	    deliver_hello(l, 0) != 0)
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

int
main(int argc, char **argv)
{
	struct stage st;

	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "--turn") == 0) {
		stage_start(&st, "remote", "remote", 1, argv);
		return turn(&st, argv[2], argc == 4 ? argv[3] : "atrn-client");
	}
	stage_start(&st, "remote", "remote", argc, argv);
	dispatch_run(&st, worker);
	return EXIT_DONE;
}
