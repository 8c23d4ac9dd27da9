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
 * Here: the retry policy, settling an envelope after an attempt, the
 * worker, ATRN and the scheduler. A worker's SMTP session is lib/deliver;
 * the recipients' outcomes of one attempt are lib/outcome.
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
#include "stage.h"

enum { BATCH_MAX = 100, HASH_SIZE = 4096, COOL_SEC = 60 };

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
	if (outcome_start(&e) < 0)
		goto out;
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

/* Exits 0 when every envelope was settled (or vanished), 111 otherwise:
 * the scheduler then leaves the rest alone for a while. */
static _Noreturn void
worker(struct stage *st, char **names, size_t n)
{
	struct deliver_link *l = calloc(1, sizeof *l);
	struct worker_outcome o;
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
	deliver_route_key(&e, key, sizeof key);
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
