/*
 * bh-route: choose the next hop for every recipient of an envelope.
 *
 * reads   spool/route/new/NAME           (content stays in spool/msg/NAME)
 *         spool/remote/scheduled/NAME    mail waiting for its connector's
 *                                        schedule (mtime = when it may go)
 *         spool/state/DEST               link state: connectors in Retry
 *                                        are avoided
 * writes  spool/local/new/NAME           recipients delivered on this host
 *         spool/remote/new/NAME.Rn       one envelope per next hop (fields
 *                                        dest, connector, hops, source: see
 *                                        lib/connector.h)
 *         spool/remote/hold/NAME.Rn      hold=yes connectors (ETRN/ATRN)
 *         spool/remote/scheduled/NAME.Rn outside the connector's schedule
 *         spool/ndr/new/NAME.F...        recipients without a route (5.4.4),
 *                                        restricted (5.7.1, 5.2.3), loops
 *                                        (5.3.5)
 *         spool/state/DEST               Scheduled / Held
 * config  cdb/connectors.cdb, cdb/servers.cdb, cdb/settings.cdb (smarthost,
 *         direct-first, hostname, remote-port), reopened when changed
 * exit    0 queue drained (-1) or SIGTERM; 100 bad usage;
 *         111 spool or system trouble: the supervisor restarts us
 *
 * Scheduled mail: bh-route owns spool/remote/scheduled. After draining its
 * input it rescans that folder when the earliest opening is due or when
 * connectors.cdb changed (inotify on cdb/), re-reading each envelope's
 * connector schedule: open windows move the envelope to spool/remote/new
 * (one rename: bh-remote takes it from there), closed ones get their mtime
 * set to the next opening, which is also the timer of the next rescan. The
 * one wait (ppoll) covers our input, our retry/ and that timer, so an idle
 * router uses no CPU. Held mail (spool/remote/hold) is released by ETRN or
 * ATRN, not here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "connector.h"
#include "content.h"
#include "dest.h"
#include "log.h"
#include "root.h"
#include "spool.h"
#include "stage.h"
#include "track.h"

enum {
	HEADER_MAX = 64 << 10,	/* header bytes read for the priority */
	RETRY_SEC = 60,		/* a message we could not route: again in */
	NEVER_SEC = 366 * 86400	/* mtime of mail whose schedule is "never" */
};

struct router {
	struct stage st;
	struct spool local, remote;
	int hold_fd, scheduled_fd;	/* spool/remote/hold, .../scheduled */
	struct connectors cs;
	unsigned long turn[64];		/* rotates source= servers, per
					 * connector (by its index) */
	int scheduled_dirty;		/* rescan spool/remote/scheduled */
	int nrerouted;			/* waiting mail sent back to route */
};

/* One next hop of the message being routed, and its recipients. */
struct group {
	const struct connector *conn;	/* NULL: DNS or settings smarthost */
	char dest[DEST_NAME_MAX];
	char domain[256];		/* for mx: hops, else "" */
	char relay[256];		/* relay-host= of unresolved recipients */
	const char *where;		/* "new", "hold" or "scheduled" */
	time_t when;			/* scheduled: when the window opens */
	const char *fail_code;		/* set: its recipients fail */
	char fail_reason[256];
	struct envelope env;
};

/* A recipient this run fails: its code, and the reason for the report. */
struct failure {
	const char *code;		/* NULL: not failed */
	char reason[600];
};

/* The choice made for a domain, reused for its other recipients: equal
 * costs are broken at random, and one message's recipients in one domain
 * belong in one envelope. */
struct choice {
	char domain[256];
	const struct connector *conn;
	size_t decided_by;		/* the recipient whose failure it shares */
};

struct plan {
	struct group *v;
	size_t n, cap;
	struct choice *choices;
	size_t nchoices;
	struct envelope local;
	struct failure *fail;		/* one per input recipient */
};

/* stage_report's pick works on a copy of the input whose recipients are
 * in the input's order: these say which of them this run failed. */
static const struct rcpt *report_base;
static const struct failure *report_fail;

static int
pick_failed(const struct rcpt *r)
{
	return report_fail[r - report_base].code != NULL;
}

/* Writes e as spool/remote/SUB/NAME (SUB hold or scheduled, dirfd subfd)
 * the way spool_put writes new/: tmp, fsync, mtime `when` (0: now), rename,
 * fsync the directory. The content link msg/NAME must exist already. */
static int
put_sub(struct router *rt, int subfd, const char *name,
    const struct envelope *e, time_t when)
{
	struct timespec times[2];
	struct buf b = BUF_INIT;
	int fd, rc = -1, err;

	if (envelope_format(e, &b) < 0)
		return -1;
	fd = openat(rt->remote.tmpfd, name, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	times[0].tv_sec = times[1].tv_sec = when;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0 ||
	    (when != 0 && futimens(fd, times) < 0)) {
		err = errno;
		close(fd);
		errno = err;
		goto fail;
	}
	if (close(fd) < 0 || renameat(rt->remote.tmpfd, name, subfd, name) < 0)
		goto fail;
	rc = spool_fsync_dir(subfd);
	goto out;
fail:
	err = errno;
	unlinkat(rt->remote.tmpfd, name, 0);
	errno = err;
out:
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

/* Opens (creating) spool/remote/SUB. */
static int
open_remote_sub(struct router *rt, const char *sub)
{
	int fd;

	if (mkdirat(rt->remote.dirfd, sub, 0700) < 0 && errno != EEXIST)
		return -1;
	fd = openat(rt->remote.dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd;
}

/* Records a destination as Held or Scheduled for bh-queue, unless
 * bh-remote or an operator has said something stronger (Retry, Frozen). */
static void
note_dest(const char *dest, const char *state, const char *why, time_t when)
{
	struct dest_state ds;

	if (dest_read(dest, &ds) < 0 || (strcmp(ds.state, "Ready") != 0 &&
	    strcmp(ds.state, "Held") != 0 && strcmp(ds.state, "Scheduled") != 0))
		return;
	if (strcmp(ds.state, state) != 0)
		ds.since = time(NULL);
	snprintf(ds.state, sizeof ds.state, "%s", state);
	snprintf(ds.error, sizeof ds.error, "%s", why);
	ds.next_attempt = when;
	if (dest_write(dest, &ds) < 0)
		log_event("warning", "dest=%s msg=\"unable to write state\"",
		    log_quote(dest));
}

/* Link state for connectors_select: a destination in Retry is down until
 * its next attempt is due. Then new mail may go to it again and so probe
 * the link: with no mail of its own left queued, nothing else would ever
 * bring it back to Ready. */
static int
dest_is_down(const char *dest)
{
	struct dest_state ds;

	return dest_read(dest, &ds) == 1 && strcmp(ds.state, "Retry") == 0 &&
	    (ds.next_attempt == 0 || ds.next_attempt > time(NULL));
}

/* Reads the header of spool/msg/NAME (up to HEADER_MAX) for its priority. */
static int
read_priority(const char *name)
{
	char *head;
	ssize_t n;
	size_t len = 0;
	int fd, pr = PRIORITY_NORMAL;

	if ((fd = content_open(name)) < 0)
		return pr;
	if ((head = malloc(HEADER_MAX)) != NULL) {
		while (len < HEADER_MAX &&
		    (n = read(fd, head + len, HEADER_MAX - len)) > 0)
			len += n;
		pr = connector_priority(head, len);
		free(head);
	}
	close(fd);
	return pr;
}

static int
needs_priority(const struct connectors *cs)
{
	size_t i;

	for (i = 0; i < cs->n; i++)
		if (attrs_get(&cs->v[i].attrs, "priorities") != NULL)
			return 1;
	return 0;
}

static void
message_facts(struct router *rt, const char *name, const struct envelope *e,
    struct route_facts *m)
{
	const char *v = envelope_get(e, "size");
	struct stat st;
	int fd;

	m->sender = e->sender != NULL ? e->sender : "";
	m->size = v != NULL ? strtoll(v, NULL, 10) : 0;
	if (v == NULL && (fd = content_open(name)) >= 0) {
		if (fstat(fd, &st) == 0)
			m->size = st.st_size;
		close(fd);
	}
	m->priority = needs_priority(&rt->cs) ? read_priority(name) :
	    PRIORITY_NORMAL;
}

/* Hops without a connector: DNS, or settings smarthost (after DNS with
 * direct-first). */
static int
default_hops(const char *domain, struct buf *b)
{
	char hosts[2048], first[16];

	if (conf_setting("smarthost", NULL, hosts, sizeof hosts) <= 0 ||
	    hosts[0] == '\0')
		return buf_printf(b, "mx:%s", domain);
	conf_setting("direct-first", "no", first, sizeof first);
	if (conf_parse_bool(first) == 1 && buf_printf(b, "mx:%s ", domain) < 0)
		return -1;
	return connector_smarthost_hops(hosts, b);
}

/* Where a new group's envelope waits: hold/, scheduled/ (g->when) or new/. */
static void
group_where(struct group *g, long long size)
{
	const char *v, *sched;
	time_t now = time(NULL);
	int open;

	g->where = "new";
	if (g->conn == NULL)
		return;
	if ((v = attrs_get(&g->conn->attrs, "hold")) != NULL &&
	    conf_parse_bool(v) == 1) {
		g->where = "hold";
		return;
	}
	sched = connector_schedule(g->conn, size);
	open = connector_schedule_open(sched, now, &g->when);
	if (open < 0)
		log_event("warning", "connector=%s schedule=%s msg=\"bad schedule, "
		    "taken as always\"", log_quote(g->conn->name),
		    log_quote(sched));
	if (open != 0)
		return;
	g->where = "scheduled";
	if (g->when == 0)
		g->when = now + NEVER_SEC;	/* "never": until the config changes */
}

/* The source= server for the next envelope of a connector, in turn. */
static int
pick_source(struct router *rt, const struct connector *c, char *out,
    size_t cap)
{
	const char *list = attrs_get(&c->attrs, "source");
	char word[256];
	size_t n = 0, i;
	const char *p;

	for (p = list; p != NULL && (p = strchr(p, ',')) != NULL; p++)
		n++;
	if (list == NULL || *list == '\0')
		return 0;
	n = rt->turn[(size_t)(c - rt->cs.v) % 64]++ % (n + 1);
	for (p = list, i = 0; i < n; i++)
		p = strchr(p, ',') + 1;
	snprintf(word, sizeof word, "%.*s", (int)strcspn(p, ","), p);
	snprintf(out, cap, "%s", word);
	return 1;
}

/* Fills a new group's envelope head: the input's fields with this hop's
 * dest, connector, hops and source (stale ones from an earlier routing
 * removed). A hop leading back to us fails its recipients with 5.3.5. */
static int
group_head(struct router *rt, struct group *g, const struct envelope *e,
    long long size)
{
	struct buf hops = BUF_INIT;
	char source[256];
	int rc = -1;

	if (envelope_copy_head(&g->env, e) < 0 ||
	    envelope_set(&g->env, "connector", NULL) < 0 ||
	    envelope_set(&g->env, "source", NULL) < 0 ||
	    envelope_set(&g->env, "dest", g->dest) < 0)
		return -1;
	if ((g->relay[0] != '\0' ? connector_smarthost_hops(g->relay, &hops) :
	    g->conn != NULL ? connector_hops(g->conn, g->domain, &hops) :
	    default_hops(g->domain, &hops)) < 0 ||
	    envelope_set(&g->env, "hops", hops.data) < 0)
		goto out;
	if (g->conn != NULL &&
	    (envelope_set(&g->env, "connector", g->conn->name) < 0 ||
	    (pick_source(rt, g->conn, source, sizeof source) &&
	    envelope_set(&g->env, "source", source) < 0)))
		goto out;
	if (connector_hops_self(hops.data)) {
		g->fail_code = "5.3.5";
		snprintf(g->fail_reason, sizeof g->fail_reason,
		    "554 5.3.5 next hop %s is this server itself (mail loop)",
		    hops.data);
	}
	group_where(g, size);
	rc = 0;
out:
	buf_free(&hops);
	return rc;
}

/* The group for (conn, dest, domain, relay), made when new; NULL on
 * ENOMEM. */
static struct group *
group_for(struct router *rt, struct plan *p, const struct envelope *e,
    const struct connector *conn, const char *dest, const char *domain,
    const char *relay, long long size)
{
	struct group *g;
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->v[i].conn == conn && strcmp(p->v[i].dest, dest) == 0 &&
		    strcmp(p->v[i].domain, domain) == 0 &&
		    strcmp(p->v[i].relay, relay) == 0)
			return &p->v[i];
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		if ((g = realloc(p->v, cap * sizeof *g)) == NULL)
			return NULL;
		p->v = g;
		p->cap = cap;
	}
	g = &p->v[p->n++];
	memset(g, 0, sizeof *g);
	g->conn = conn;
	snprintf(g->dest, sizeof g->dest, "%s", dest);
	snprintf(g->domain, sizeof g->domain, "%s", domain);
	snprintf(g->relay, sizeof g->relay, "%s", relay);
	if (group_head(rt, g, e, size) < 0)
		return NULL;
	return g;
}

static void
fail_rcpt(struct failure *f, const char *code, const char *fmt,
    const char *arg)
{
	f->code = code;
	snprintf(f->reason, sizeof f->reason, fmt, arg);
}

/* Chooses the connector of one remote recipient: 0 chosen (*conn NULL:
 * no connectors, DNS or settings smarthost), 1 failed (f set), -1 error. */
static int
choose(struct router *rt, const char *domain, const struct route_facts *m,
    const struct connector **conn, struct failure *f)
{
	*conn = NULL;
	if (*domain == '\0') {
		fail_rcpt(f, "5.4.4", "550 5.4.4 no route: address has no domain%s", "");
		return 1;
	}
	if (rt->cs.n == 0)
		return 0;
	switch (connectors_select(&rt->cs, domain, m, dest_is_down, conn)) {
	case CONNECTOR_OK:
		return 0;
	case -1:
		fail_rcpt(f, "5.4.4", "550 5.4.4 no route to %s: no connector's "
		    "address space matches", domain);
		return 1;
	case CONNECTOR_RESTRICTED:
		fail_rcpt(f, "5.7.1", "550 5.7.1 no route to %s: the message is "
		    "refused by every matching connector's restrictions", domain);
		return 1;
	case CONNECTOR_TOO_BIG:
		fail_rcpt(f, "5.2.3", "552 5.2.3 message too large for every "
		    "connector to %s", domain);
		return 1;
	default:
		return -1;
	}
}

/* choose() once per domain of a message (p->choices has room for one per
 * recipient). The same returns, with p->fail[i] set on failure. */
static int
choose_once(struct router *rt, struct plan *p, const char *domain,
    const struct route_facts *m, size_t i, const struct connector **conn)
{
	struct choice *c;
	size_t k;
	int rc;

	for (k = 0; k < p->nchoices; k++) {
		c = &p->choices[k];
		if (strcmp(c->domain, domain) != 0)
			continue;
		*conn = c->conn;
		if (p->fail[c->decided_by].code == NULL)
			return 0;
		p->fail[i] = p->fail[c->decided_by];
		return 1;
	}
	if ((rc = choose(rt, domain, m, conn, &p->fail[i])) < 0)
		return -1;
	c = &p->choices[p->nchoices++];
	snprintf(c->domain, sizeof c->domain, "%s", domain);
	c->conn = *conn;
	c->decided_by = i;
	return rc;
}

/* Places one remote recipient in its group (or fails it). 0 or -1. */
static int
route_remote(struct router *rt, struct plan *p, const struct envelope *e,
    size_t i, const struct route_facts *m)
{
	const struct rcpt *r = &e->rcpt[i];
	const struct connector *conn;
	const char *relay;
	char domain[256];
	struct group *g;
	struct rcpt *copy;
	int rc;

	if (addr_key(addr_domain(r->addr), domain, sizeof domain) < 0)
		domain[0] = '\0';
	/* the categorizer's unresolved-host: straight there, no connector */
	if ((relay = rcpt_get(r, "relay-host")) != NULL && *relay != '\0')
		conn = NULL;
	else if ((rc = choose_once(rt, p, domain, m, i, &conn)) != 0)
		return rc < 0 ? -1 : 0;
	else
		relay = "";
	g = group_for(rt, p, e, conn, conn != NULL ? conn->name : domain,
	    conn == NULL || connector_is_dns(conn) ? domain : "", relay, m->size);
	if (g == NULL)
		return -1;
	if (g->fail_code != NULL) {
		fail_rcpt(&p->fail[i], g->fail_code, "%s", g->fail_reason);
		return 0;
	}
	if (envelope_copy_rcpt(&g->env, r) < 0)
		return -1;
	copy = &g->env.rcpt[g->env.nrcpt - 1];
	return rcpt_set(copy, "state", "remote") < 0 ||
	    rcpt_set(copy, "dest", g->dest) < 0 ? -1 : 0;
}

/* Recipients that are done with (failed ones were reported already). */
static int
is_finished(const char *state)
{
	static const char *done[] = { "failed", "delivered", "relayed",
	    "expanded" };
	size_t i;

	for (i = 0; i < sizeof done / sizeof done[0]; i++)
		if (strcmp(state, done[i]) == 0)
			return 1;
	return 0;
}

/* Sorts every recipient of e into the plan. 0 or -1 (ENOMEM). */
static int
plan_make(struct router *rt, struct plan *p, const char *name,
    const struct envelope *e)
{
	struct route_facts m;
	const char *state;
	size_t i;

	if ((p->fail = calloc(e->nrcpt + 1, sizeof *p->fail)) == NULL ||
	    (p->choices = calloc(e->nrcpt + 1, sizeof *p->choices)) == NULL ||
	    envelope_copy_head(&p->local, e) < 0)
		return -1;
	message_facts(rt, name, e, &m);
	for (i = 0; i < e->nrcpt; i++) {
		state = rcpt_get(&e->rcpt[i], "state");
		if (state == NULL)
			state = "remote";
		if (is_finished(state))
			continue;
		if (strcmp(state, "local") == 0) {
			if (envelope_copy_rcpt(&p->local, &e->rcpt[i]) < 0)
				return -1;
			continue;
		}
		/* anything else still needs a next hop: never drop a recipient */
		if (strcmp(state, "remote") != 0)
			log_event("warning", "id=%s rcpt=%s state=%s msg=\"routed "
			    "as remote\"", name, log_quote(e->rcpt[i].addr),
			    log_quote(state));
		if (route_remote(rt, p, e, i, &m) < 0)
			return -1;
	}
	return 0;
}

static void
plan_free(struct plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		envelope_free(&p->v[i].env);
	free(p->v);
	free(p->choices);
	free(p->fail);
	envelope_free(&p->local);
}

/* Writes one group's envelope where it waits, then tracks its recipients. */
static int
group_write(struct router *rt, const char *name, size_t k, struct group *g)
{
	char child[PATH_MAX], suffix[32];
	struct buf status = BUF_INIT;
	int subfd = strcmp(g->where, "hold") == 0 ? rt->hold_fd : rt->scheduled_fd;
	size_t i;

	snprintf(suffix, sizeof suffix, "R%zu", k + 1);
	if (stage_child_name(child, sizeof child, name, suffix) < 0)
		return -1;
	if (strcmp(g->where, "new") == 0) {
		if (stage_pass(&rt->remote, name, child, &g->env) < 0)
			return -1;
	} else if (content_link(name, child) < 0 ||
	    put_sub(rt, subfd, child, &g->env, g->when) < 0)
		return -1;
	if (strcmp(g->where, "hold") == 0)
		note_dest(g->dest, "Held", "waiting for ETRN/ATRN", 0);
	else if (strcmp(g->where, "scheduled") == 0) {
		note_dest(g->dest, "Scheduled", "waiting for the connector's "
		    "schedule", g->when);
		rt->scheduled_dirty = 1;
	}
	buf_printf(&status, "connector=%s dest=%s hops=\"%s\" queue=%s "
	    "envelope=%s", g->conn ? g->conn->name : "none", g->dest,
	    envelope_get(&g->env, "hops"), g->where, child);
	log_event("routed", "id=%s envelope=%s dest=%s connector=%s queue=%s "
	    "nrcpt=%zu hops=%s", name, child, log_quote(g->dest),
	    g->conn ? log_quote(g->conn->name) : "none", g->where, g->env.nrcpt,
	    log_quote(envelope_get(&g->env, "hops")));
	for (i = 0; i < g->env.nrcpt; i++)
		track("routed", name, &g->env, &g->env.rcpt[i], status.data);
	buf_free(&status);
	return 0;
}

/* Hands the failed recipients to spool/ndr, on a copy of e (e stays as it
 * came, so that a deferral routes it again from scratch). 0 or -1. */
static int
report_failures(const char *name, const struct envelope *e,
    const struct plan *p)
{
	struct envelope copy = ENVELOPE_INIT;
	size_t i;
	int rc = -1;

	if (envelope_copy_head(&copy, e) < 0)
		goto out;
	for (i = 0; i < e->nrcpt; i++)
		if (envelope_copy_rcpt(&copy, &e->rcpt[i]) < 0 ||
		    (p->fail[i].code != NULL && rcpt_outcome(&copy.rcpt[i],
		    "failed", p->fail[i].code, p->fail[i].reason) < 0))
			goto out;
	report_base = copy.rcpt;
	report_fail = p->fail;
	if (stage_report(name, &copy, "failure", pick_failed) < 0)
		goto out;
	for (i = 0; i < copy.nrcpt; i++)
		if (p->fail[i].code != NULL) {
			log_event("failed", "id=%s rcpt=%s code=%s reason=%s", name,
			    log_quote(copy.rcpt[i].addr), p->fail[i].code,
			    log_quote(p->fail[i].reason));
			track("failed", name, &copy, &copy.rcpt[i], p->fail[i].reason);
		}
	rc = 0;
out:
	envelope_free(&copy);
	return rc;
}

static int
plan_write(struct router *rt, const char *name, const struct envelope *e,
    struct plan *p)
{
	size_t i, k = 0;

	/* the remote envelopes and reports link the content from NAME, so
	 * they come first; the local envelope keeps the name and moves last */
	for (i = 0; i < p->n; i++)
		if (p->v[i].env.nrcpt > 0 && group_write(rt, name, k++, &p->v[i]) < 0)
			return -1;
	if (report_failures(name, e, p) < 0)
		return -1;
	if (p->local.nrcpt == 0)
		return 0;
	if (stage_move(&rt->st, &rt->local, name, &p->local) < 0)
		return -1;
	for (i = 0; i < p->local.nrcpt; i++)
		track("routed", name, &p->local, &p->local.rcpt[i], "local");
	return 0;
}

/* An input we cannot read waits in retry/ (it will not get better by
 * itself, but an operator can look at it there). */
static void
set_aside(struct router *rt, const char *name, int err)
{
	struct timespec times[2];

	if (err == ENOENT)
		return;
	log_event("error", "id=%s msg=\"unreadable envelope set aside in "
	    "retry/\" error=%s", name, log_quote(strerror(err)));
	times[0].tv_sec = times[1].tv_sec = time(NULL) + 3600;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	utimensat(rt->st.in.newfd, name, times, 0);
	if (renameat(rt->st.in.newfd, name, rt->st.in.retryfd, name) < 0)
		die(EXIT_TEMP, errno, "unable to set %s aside", name);
}

static void
route_one(struct router *rt, const char *name)
{
	struct envelope e = ENVELOPE_INIT;
	struct plan p;

	memset(&p, 0, sizeof p);
	if (stage_read(&rt->st, name, &e) < 0) {
		set_aside(rt, name, errno);
		return;
	}
	if (connectors_refresh(&rt->cs) < 0 || plan_make(rt, &p, name, &e) < 0 ||
	    plan_write(rt, name, &e, &p) < 0) {
		if (errno == ENOENT && faccessat(rt->st.in.newfd, name, F_OK, 0) < 0)
			goto out;	/* taken by bh-queue while we worked */
		log_event("deferred", "id=%s msg=\"routing failed, again in %ds\" "
		    "error=%s", name, RETRY_SEC, log_quote(strerror(errno)));
		if (stage_defer(&rt->st, name, &e, time(NULL) + RETRY_SEC) < 0)
			die(EXIT_TEMP, errno, "unable to defer %s", name);
	} else if (p.local.nrcpt == 0)
		stage_done(&rt->st, name, 0);	/* else it moved to spool/local */
out:
	plan_free(&p);
	envelope_free(&e);
}

/* Destinations seen in one scan of spool/remote/scheduled. */
struct waiting {
	char dest[DEST_NAME_MAX];
	time_t opens;		/* earliest opening still waiting; 0: none */
	int released;
};

static void
note_waiting(struct waiting *w, size_t *n, size_t cap, const char *dest,
    time_t opens)
{
	size_t i;

	for (i = 0; i < *n && strcmp(w[i].dest, dest) != 0; i++)
		;
	if (i == *n) {
		if (*n == cap)
			return;
		memset(&w[i], 0, sizeof w[i]);
		snprintf(w[i].dest, sizeof w[i].dest, "%s", dest);
		(*n)++;
	}
	if (opens == 0)
		w[i].released = 1;
	else if (w[i].opens == 0 || opens < w[i].opens)
		w[i].opens = opens;
}

/* Reads a waiting envelope's dest into dest and finds its connector:
 * 1 found (*c), 0 the connector is gone (or hold/ mail whose connector no
 * longer holds: either way it needs routing again), -1 unreadable. */
static int
waiting_connector(struct router *rt, int dirfd, const char *name,
    struct envelope *e, char *dest, size_t cap, const struct connector **c)
{
	const char *v;

	dest[0] = '\0';
	if (envelope_read(e, dirfd, name) < 0)
		return -1;
	v = envelope_get(e, "dest");
	snprintf(dest, cap, "%s", v != NULL ? v : "");
	v = envelope_get(e, "connector");
	*c = v != NULL ? connectors_find(&rt->cs, v) : NULL;
	if (*c == NULL && rt->cs.cdb.fd < 0)
		return -1;	/* no connectors.cdb at all: wait for one */
	if (*c != NULL && dirfd == rt->hold_fd &&
	    ((v = attrs_get(&(*c)->attrs, "hold")) == NULL ||
	    conf_parse_bool(v) != 1))
		*c = NULL;
	return *c != NULL;
}

/* When may the scheduled envelope `name` go? 0 now, -1 never: its
 * connector is gone and it must be routed again, else the time. The
 * schedule is read anew each time: a changed connector takes effect. */
static time_t
scheduled_opens(struct router *rt, const char *name, char *dest, size_t cap)
{
	struct envelope e = ENVELOPE_INIT;
	const struct connector *c;
	const char *v;
	time_t now = time(NULL), opens = 0;
	int rc;

	rc = waiting_connector(rt, rt->scheduled_fd, name, &e, dest, cap, &c);
	if (rc <= 0) {
		envelope_free(&e);
		return rc < 0 ? now + RETRY_SEC : -1;
	}
	v = envelope_get(&e, "size");
	if (connector_schedule_open(connector_schedule(c,
	    v != NULL ? strtoll(v, NULL, 10) : 0), now, &opens) == 0 && opens == 0)
		opens = now + NEVER_SEC;
	envelope_free(&e);
	return opens;
}

/* Sends a waiting envelope back to our own input (spool/route/new): its
 * connector is gone, or no longer holds mail. 1 moved, 0 not. */
static int
reroute(struct router *rt, int dirfd, const char *name, const char *dest)
{
	if (renameat(dirfd, name, rt->st.in.newfd, name) < 0)
		return 0;
	log_event("rerouted", "envelope=%s dest=%s msg=\"its connector changed\"",
	    name, log_quote(dest));
	rt->nrerouted++;
	return 1;
}

/* Sets the file's mtime to when it may go (what bh-queue shows). */
static void
set_mtime(int dirfd, const char *name, time_t when)
{
	struct timespec times[2];
	struct stat st;

	if (fstatat(dirfd, name, &st, 0) == 0 && st.st_mtime == when)
		return;
	times[0].tv_sec = times[1].tv_sec = when;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	utimensat(dirfd, name, times, 0);
}

/* Brings the destinations' state files up to date after a scan. */
static void
update_waiting(const struct waiting *w, size_t n)
{
	struct dest_state ds;
	size_t i;

	for (i = 0; i < n; i++) {
		if (w[i].opens != 0)
			note_dest(w[i].dest, "Scheduled", "waiting for the "
			    "connector's schedule", w[i].opens);
		else if (w[i].dest[0] != '\0' && dest_read(w[i].dest, &ds) == 1 &&
		    strcmp(ds.state, "Scheduled") == 0)
			dest_clear(w[i].dest);
	}
}

/* Moves spool/remote/scheduled entries whose window is open into
 * spool/remote/new; returns the earliest opening still ahead (0: none). */
static time_t
release_scheduled(struct router *rt)
{
	struct waiting w[256];
	char dest[DEST_NAME_MAX];
	time_t opens, next = 0;
	struct dirent *d;
	size_t nw = 0;
	int fd, moved = 0;
	DIR *dir;

	if ((fd = dup(rt->scheduled_fd)) < 0 || (dir = fdopendir(fd)) == NULL)
		die(EXIT_TEMP, errno, "unable to read spool/remote/scheduled");
	rewinddir(dir);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		opens = scheduled_opens(rt, d->d_name, dest, sizeof dest);
		if (opens < 0) {
			note_waiting(w, &nw, sizeof w / sizeof w[0], dest, 0);
			reroute(rt, rt->scheduled_fd, d->d_name, dest);
			continue;
		}
		note_waiting(w, &nw, sizeof w / sizeof w[0], dest, opens);
		if (opens == 0 && renameat(rt->scheduled_fd, d->d_name,
		    rt->remote.newfd, d->d_name) == 0) {
			log_event("released", "envelope=%s dest=%s", d->d_name,
			    log_quote(dest));
			moved++;
		} else if (opens != 0) {
			set_mtime(rt->scheduled_fd, d->d_name, opens);
			if (next == 0 || opens < next)
				next = opens;
		}
	}
	closedir(dir);
	if (moved > 0 && spool_fsync_dir(rt->remote.newfd) < 0)
		die(EXIT_TEMP, errno, "unable to sync spool/remote/new");
	if (rt->nrerouted > 0 && spool_fsync_dir(rt->st.in.newfd) < 0)
		die(EXIT_TEMP, errno, "unable to sync spool/route/new");
	update_waiting(w, nw);
	return next;
}

/* After a configuration change: held mail whose connector is gone or no
 * longer has hold=yes is routed again (ETRN would never come for it). */
static void
release_held(struct router *rt)
{
	struct envelope e;
	const struct connector *c;
	char dest[DEST_NAME_MAX];
	struct dest_state ds;
	struct dirent *d;
	int fd, rc;
	DIR *dir;

	if ((fd = dup(rt->hold_fd)) < 0 || (dir = fdopendir(fd)) == NULL)
		die(EXIT_TEMP, errno, "unable to read spool/remote/hold");
	rewinddir(dir);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		memset(&e, 0, sizeof e);
		rc = waiting_connector(rt, rt->hold_fd, d->d_name, &e, dest,
		    sizeof dest, &c);
		envelope_free(&e);
		if (rc == 0 && reroute(rt, rt->hold_fd, d->d_name, dest) &&
		    dest_read(dest, &ds) == 1 && strcmp(ds.state, "Held") == 0)
			dest_clear(dest);
	}
	closedir(dir);
	if (rt->nrerouted > 0 && spool_fsync_dir(rt->st.in.newfd) < 0)
		die(EXIT_TEMP, errno, "unable to sync spool/route/new");
}

/* Releases held and scheduled mail as the configuration and the clock
 * say. The next scheduled opening (0: none), or -1 when some mail was sent
 * back to our input to be routed again. */
static time_t
release_waiting(struct router *rt)
{
	time_t due;

	if (connectors_refresh(&rt->cs) < 0)
		die(EXIT_TEMP, errno, "unable to read connectors.cdb");
	rt->nrerouted = 0;
	if (rt->scheduled_dirty)	/* a config change, or our start */
		release_held(rt);
	rt->scheduled_dirty = 0;
	due = release_scheduled(rt);
	if (rt->nrerouted > 0) {
		rt->scheduled_dirty = 1;	/* and look again after */
		return -1;
	}
	return due;
}

/* Watches for work: new input, our retry/ (deferrals) and the cdb folder
 * (a changed connectors.cdb may open or close a schedule). */
static int
watch_start(struct router *rt, int *cdb_wd)
{
	static const char *dirs[] = { "spool/route/new", "spool/route/retry" };
	char path[PATH_MAX];
	int fd, i;

	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		die(EXIT_TEMP, errno, "inotify");
	for (i = 0; i < 2; i++)
		if (root_path(path, sizeof path, "%s", dirs[i]) < 0 ||
		    inotify_add_watch(fd, path, IN_MOVED_TO | IN_CREATE |
		    IN_ATTRIB | IN_DELETE | IN_MOVED_FROM) < 0)
			die(EXIT_TEMP, errno, "unable to watch %s", dirs[i]);
	if (root_path(path, sizeof path, "cdb") < 0 ||
	    (*cdb_wd = inotify_add_watch(fd, path, IN_MOVED_TO |
	    IN_CLOSE_WRITE)) < 0)
		*cdb_wd = -1;	/* no cdb/: nothing to notice there */
	return fd;
}

/* Blocks until an event, the earliest of the two timers (0 = none), or a
 * stop signal; a cdb event asks for a rescan of scheduled mail. */
static void
watch_wait(struct router *rt, int fd, int cdb_wd, time_t due)
{
	char events[4096] __attribute__((aligned(8)));
	struct inotify_event *ev;
	struct timespec ts, *tsp = NULL;
	time_t now = time(NULL), retry = rt->st.in.next_due;
	struct pollfd pfd = { fd, POLLIN, 0 };
	sigset_t none;
	ssize_t n, off;

	if (retry != 0 && (due == 0 || retry < due))
		due = retry;
	if (due != 0) {
		ts.tv_sec = due > now ? due - now : 0;
		ts.tv_nsec = 0;
		tsp = &ts;
	}
	sigemptyset(&none);
	if (ppoll(&pfd, 1, tsp, &none) < 0 && errno != EINTR)
		die(EXIT_TEMP, errno, "ppoll");
	while ((n = read(fd, events, sizeof events)) > 0)
		for (off = 0; off < n; off += sizeof *ev + ev->len) {
			ev = (struct inotify_event *)(events + off);
			if (ev->wd == cdb_wd)
				rt->scheduled_dirty = 1;
		}
	rt->st.in.due_known = 0;	/* retry/ may have changed */
}

static void
router_start(struct router *rt, int argc, char **argv)
{
	memset(rt, 0, sizeof *rt);
	stage_start(&rt->st, "route", "route", argc, argv);
	if (spool_open(&rt->local, "local") < 0 ||
	    spool_open(&rt->remote, "remote") < 0)
		die(EXIT_TEMP, errno, "unable to open spool/local or spool/remote");
	if ((rt->hold_fd = open_remote_sub(rt, "hold")) < 0 ||
	    (rt->scheduled_fd = open_remote_sub(rt, "scheduled")) < 0)
		die(EXIT_TEMP, errno, "unable to open spool/remote/hold or "
		    "spool/remote/scheduled");
	if (connectors_open(&rt->cs) < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/connectors.cdb");
	srandom((unsigned)time(NULL) ^ (unsigned)getpid() << 16);
	rt->scheduled_dirty = 1;
}

int
main(int argc, char **argv)
{
	struct router rt;
	char name[PATH_MAX];
	int once, fd = -1, cdb_wd = -1;
	time_t due = 0;

	router_start(&rt, argc, argv);
	once = rt.st.once;
	rt.st.once = 1;		/* stage_next never blocks: we wait below */
	if (!once)
		fd = watch_start(&rt, &cdb_wd);
	for (;;) {
		while (stage_next(&rt.st, name, sizeof name))
			route_one(&rt, name);
		if (spool_stop_requested)
			break;
		if (rt.scheduled_dirty || (due != 0 && due <= time(NULL)))
			if ((due = release_waiting(&rt)) < 0)
				continue;	/* route what came back first */
		if (once)
			break;
		watch_wait(&rt, fd, cdb_wd, due);
	}
	connectors_free(&rt.cs);
	return EXIT_DONE;
}
