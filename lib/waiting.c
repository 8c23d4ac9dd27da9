#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dest.h"
#include "envelope.h"
#include "log.h"
#include "schedule.h"
#include "spool.h"
#include "waiting.h"

enum {
	UNREADABLE_SEC = 60	/* an envelope we could not read: again in */
};

/* Records a destination as Held or Scheduled for bh-queue, unless
 * bh-remote or an operator has said something stronger (Retry, Frozen). */
void
waiting_note_dest(const char *dest, const char *state, const char *why,
    time_t when)
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

/* Destinations seen in one scan of spool/remote/scheduled. */
struct waiting_dest {
	char dest[DEST_NAME_MAX];
	time_t opens;		/* earliest opening still waiting; 0: none */
	int released;
};

static void
note_waiting(struct waiting_dest *w, size_t *n, size_t cap, const char *dest,
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
waiting_connector(struct waiting *wt, int dirfd, const char *name,
    struct envelope *e, char *dest, size_t cap, const struct connector **c)
{
	const char *v;

	dest[0] = '\0';
	if (envelope_read(e, dirfd, name) < 0)
		return -1;
	v = envelope_get(e, "dest");
	snprintf(dest, cap, "%s", v != NULL ? v : "");
	v = envelope_get(e, "connector");
	*c = v != NULL ? connectors_find(wt->cs, v) : NULL;
	if (*c == NULL && wt->cs->cdb.fd < 0)
		return -1;	/* no connectors.cdb at all: wait for one */
	if (*c != NULL && dirfd == wt->hold_fd &&
	    ((v = attrs_get(&(*c)->attrs, "hold")) == NULL ||
	    conf_parse_bool(v) != 1))
		*c = NULL;
	return *c != NULL;
}

/* When may the scheduled envelope `name` go? 0 now, -1 never: its
 * connector is gone and it must be routed again, else the time. The
 * schedule is read anew each time: a changed connector takes effect. */
static time_t
scheduled_opens(struct waiting *wt, const char *name, char *dest, size_t cap)
{
	struct envelope e = ENVELOPE_INIT;
	const struct connector *c;
	const char *v;
	time_t now = time(NULL), opens = 0;
	int rc;

	rc = waiting_connector(wt, wt->scheduled_fd, name, &e, dest, cap, &c);
	if (rc <= 0) {
		envelope_free(&e);
		return rc < 0 ? now + UNREADABLE_SEC : -1;
	}
	v = envelope_get(&e, "size");
	if (schedule_open(connector_schedule(c,
	    v != NULL ? strtoll(v, NULL, 10) : 0), now, &opens) == 0 && opens == 0)
		opens = now + SCHEDULE_NEVER_SEC;
	envelope_free(&e);
	return opens;
}

/* Sends a waiting envelope back to our own input (spool/route/new): its
 * connector is gone, or no longer holds mail. 1 moved, 0 not. */
static int
reroute(struct waiting *wt, int dirfd, const char *name, const char *dest)
{
	if (renameat(dirfd, name, wt->route_new_fd, name) < 0)
		return 0;
	log_event("rerouted", "envelope=%s dest=%s msg=\"its connector changed\"",
	    name, log_quote(dest));
	wt->nrerouted++;
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
update_waiting(const struct waiting_dest *w, size_t n)
{
	struct dest_state ds;
	size_t i;

	for (i = 0; i < n; i++) {
		if (w[i].opens != 0)
			waiting_note_dest(w[i].dest, "Scheduled", "waiting for the "
			    "connector's schedule", w[i].opens);
		else if (w[i].dest[0] != '\0' && dest_read(w[i].dest, &ds) == 1 &&
		    strcmp(ds.state, "Scheduled") == 0)
			dest_clear(w[i].dest);
	}
}

/* Calls fn for each entry of the folder dirfd (dot files skipped). Dies
 * (111) when the folder cannot be read. */
static void
each_entry(struct waiting *wt, int dirfd, const char *what,
    void (*fn)(struct waiting *, const char *, void *), void *arg)
{
	struct dirent *d;
	DIR *dir;
	int fd;

	if ((fd = dup(dirfd)) < 0 || (dir = fdopendir(fd)) == NULL)
		die(EXIT_TEMP, errno, "unable to read %s", what);
	rewinddir(dir);
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			fn(wt, d->d_name, arg);
	closedir(dir);
}

/* What one scan of spool/remote/scheduled found. */
struct scan {
	struct waiting_dest seen[256];
	size_t nseen;
	time_t next;		/* the earliest opening still ahead; 0: none */
	int moved;		/* entries released into spool/remote/new */
};

/* One scheduled entry: released when its window is open, rerouted when
 * its connector is gone, else its mtime set to the next opening. */
static void
release_one(struct waiting *wt, const char *name, void *arg)
{
	struct scan *sc = arg;
	size_t cap = sizeof sc->seen / sizeof sc->seen[0];
	char dest[DEST_NAME_MAX];
	time_t opens = scheduled_opens(wt, name, dest, sizeof dest);

	if (opens < 0) {
		note_waiting(sc->seen, &sc->nseen, cap, dest, 0);
		reroute(wt, wt->scheduled_fd, name, dest);
		return;
	}
	note_waiting(sc->seen, &sc->nseen, cap, dest, opens);
	if (opens == 0 && renameat(wt->scheduled_fd, name, wt->remote_new_fd,
	    name) == 0) {
		log_event("released", "envelope=%s dest=%s", name,
		    log_quote(dest));
		sc->moved++;
	} else if (opens != 0) {
		set_mtime(wt->scheduled_fd, name, opens);
		if (sc->next == 0 || opens < sc->next)
			sc->next = opens;
	}
}

time_t
waiting_release_scheduled(struct waiting *wt)
{
	struct scan sc;

	memset(&sc, 0, sizeof sc);
	each_entry(wt, wt->scheduled_fd, "spool/remote/scheduled", release_one,
	    &sc);
	if (sc.moved > 0 && spool_fsync_dir(wt->remote_new_fd) < 0)
		die(EXIT_TEMP, errno, "unable to sync spool/remote/new");
	if (wt->nrerouted > 0 && spool_fsync_dir(wt->route_new_fd) < 0)
		die(EXIT_TEMP, errno, "unable to sync spool/route/new");
	update_waiting(sc.seen, sc.nseen);
	return sc.next;
}

/* One held entry: routed again when its connector no longer holds. */
static void
reroute_held(struct waiting *wt, const char *name, void *arg)
{
	struct envelope e = ENVELOPE_INIT;
	const struct connector *c;
	char dest[DEST_NAME_MAX];
	struct dest_state ds;
	int rc;

	rc = waiting_connector(wt, wt->hold_fd, name, &e, dest, sizeof dest, &c);
	envelope_free(&e);
	if (rc == 0 && reroute(wt, wt->hold_fd, name, dest) &&
	    dest_read(dest, &ds) == 1 && strcmp(ds.state, "Held") == 0)
		dest_clear(dest);
}

void
waiting_release_held(struct waiting *wt)
{
	each_entry(wt, wt->hold_fd, "spool/remote/hold", reroute_held, NULL);
	if (wt->nrerouted > 0 && spool_fsync_dir(wt->route_new_fd) < 0)
		die(EXIT_TEMP, errno, "unable to sync spool/route/new");
}
