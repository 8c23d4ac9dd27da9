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
 *
 * The decision for one message is lib/routeplan.c; the scans of held and
 * scheduled mail are lib/waiting.c. This file writes the plan out and runs
 * the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "connector.h"
#include "content.h"
#include "log.h"
#include "root.h"
#include "routeplan.h"
#include "spool.h"
#include "stage.h"
#include "track.h"
#include "waiting.h"

enum {
	RETRY_SEC = 60		/* a message we could not route: again in */
};

struct router {
	struct stage st;
	struct spool local, remote;
	struct waiting wait;		/* spool/remote/hold, .../scheduled */
	struct connectors cs;
	unsigned long turn[64];		/* rotates source= servers, per
					 * connector (by its index) */
	int scheduled_dirty;		/* rescan spool/remote/scheduled */
	int retry_wd;			/* our watch of spool/route/retry */
};

/* stage_report's pick works on a copy of the input whose recipients are
 * in the input's order: these say which of them this run failed. */
static const struct rcpt *report_base;
static const struct route_failure *report_fail;

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

/* Writes one group's envelope where it waits, then tracks its recipients. */
static int
group_write(struct router *rt, const char *name, size_t k,
    struct route_group *g)
{
	char child[PATH_MAX], suffix[32];
	struct buf status = BUF_INIT;
	int subfd = strcmp(g->where, "hold") == 0 ? rt->wait.hold_fd :
	    rt->wait.scheduled_fd;
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
		waiting_note_dest(g->dest, "Held", "waiting for ETRN/ATRN", 0);
	else if (strcmp(g->where, "scheduled") == 0) {
		waiting_note_dest(g->dest, "Scheduled", "waiting for the "
		    "connector's schedule", g->when);
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
    const struct routeplan *p)
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
    struct routeplan *p)
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
	struct routeplan p;

	memset(&p, 0, sizeof p);
	p.cs = &rt->cs;
	p.turn = rt->turn;
	if (stage_read(&rt->st, name, &e) < 0) {
		set_aside(rt, name, errno);
		return;
	}
	if (connectors_refresh(&rt->cs) < 0 || routeplan_make(&p, name, &e) < 0 ||
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
	routeplan_free(&p);
	envelope_free(&e);
}

/* Releases held and scheduled mail as the configuration and the clock
 * say. The next scheduled opening (0: none), or -1 when some mail was sent
 * back to our input to be routed again. */
static time_t
release_waiting(struct router *rt)
{
	time_t due;

	conf_mark();	/* a changed connectors.cdb is what may have woken us */
	if (connectors_refresh(&rt->cs) < 0)
		die(EXIT_TEMP, errno, "unable to read connectors.cdb");
	rt->wait.nrerouted = 0;
	if (rt->scheduled_dirty)	/* a config change, or our start */
		waiting_release_held(&rt->wait);
	rt->scheduled_dirty = 0;
	due = waiting_release_scheduled(&rt->wait);
	if (rt->wait.nrerouted > 0) {
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
	int fd, i, wd;

	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		die(EXIT_TEMP, errno, "inotify");
	for (i = 0; i < 2; i++) {
		if (root_path(path, sizeof path, "%s", dirs[i]) < 0 ||
		    (wd = inotify_add_watch(fd, path, i == 0 ?
		    IN_MOVED_TO | IN_CREATE :	/* new/: only arrivals matter */
		    IN_MOVED_TO | IN_CREATE | IN_ATTRIB | IN_DELETE |
		    IN_MOVED_FROM)) < 0)
			die(EXIT_TEMP, errno, "unable to watch %s", dirs[i]);
		if (i == 1)
			rt->retry_wd = wd;
	}
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
			if (ev->wd == cdb_wd || (ev->mask & IN_Q_OVERFLOW))
				rt->scheduled_dirty = 1;
			if (ev->wd == rt->retry_wd || (ev->mask & IN_Q_OVERFLOW))
				rt->st.in.due_known = 0;	/* list retry/ again */
		}
}

static void
router_start(struct router *rt, int argc, char **argv)
{
	memset(rt, 0, sizeof *rt);
	stage_start(&rt->st, "route", "route", argc, argv);
	if (spool_open(&rt->local, "local") < 0 ||
	    spool_open(&rt->remote, "remote") < 0)
		die(EXIT_TEMP, errno, "unable to open spool/local or spool/remote");
	if ((rt->wait.hold_fd = open_remote_sub(rt, "hold")) < 0 ||
	    (rt->wait.scheduled_fd = open_remote_sub(rt, "scheduled")) < 0)
		die(EXIT_TEMP, errno, "unable to open spool/remote/hold or "
		    "spool/remote/scheduled");
	if (connectors_open(&rt->cs) < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/connectors.cdb");
	rt->wait.remote_new_fd = rt->remote.newfd;
	rt->wait.route_new_fd = rt->st.in.newfd;
	rt->wait.cs = &rt->cs;
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
