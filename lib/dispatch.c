/*
 * dispatch: bh-remote's scheduler (see dispatch.h). It never touches the
 * network: it watches spool/remote/new (inotify), groups the waiting
 * envelopes by destination and hands them to workers, one per connection,
 * within max-remote and max-remote-per-domain (1 when the connector has
 * rate=): to an idle worker of that destination first, else to a new one.
 * The worker processes, their pipes and the pool of kept ones are
 * lib/worker.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "deliver.h"
#include "dest.h"
#include "log.h"
#include "root.h"
#include "dispatch.h"
#include "worker.h"

enum { HASH_SIZE = 4096, COOL_SEC = 60 };

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

struct sched {
	struct stage *st;
	struct item *hash[HASH_SIZE];
	struct dsched *dhash[HASH_SIZE];
	struct dsched **dests;
	size_t ndests, rotor;
	struct worker_pool pool;	/* workers, max-remote, remote-idle */
	struct pollfd *pfds;	/* inotify, then busy workers' answers */
	int *pfd_worker;	/* pfds[k] is workers[pfd_worker[k]]'s */
	int per_dest;
	int inotify, queue_wd, cdb_wd;	/* watches of new/ and of cdb/ */
	int is_config_dirty;	/* something in cdb/ changed: read it again */
	unsigned long long config_stamp;/* of the .cdb files a worker reads */
	int starved;		/* destinations waiting for a free slot */
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
	if (strchr(name, '\n') != NULL) {	/* it would break a batch's lines */
		log_event("error", "id=%s msg=\"newline in the name\"",
		    log_quote(name));
		return;
	}
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

/* Gives w up to take of its destination's pending items as its next
 * batch (worker_send). */
static void
batch_hand(struct sched *s, struct worker *w, size_t take)
{
	const char *names[WORKER_BATCH_MAX];
	struct item *it;

	if (take > WORKER_BATCH_MAX)
		take = WORKER_BATCH_MAX;
	for (w->n = 0; w->n < take && (it = item_unpend(w->d)) != NULL; w->n++) {
		w->items[w->n] = it;
		names[w->n] = it->name;
	}
	worker_send(&s->pool, w, names);
}

/* The batch is over: what it finished is forgotten (once-mode remembers
 * all: each envelope is tried once per run); what is still in new/ waits. */
static void
batch_settle(struct sched *s, struct worker *w, int ok)
{
	time_t now = time(NULL);
	struct item *it;
	size_t i;

	for (i = 0; i < w->n; i++) {
		it = w->items[i];
		it->state = ITEM_SEEN;
		it->not_before = s->st->once ? 0 : now + COOL_SEC;
		if (ok && !s->st->once)
			item_forget(s, it);
	}
	w->n = 0;
}

/* Reads w's answer if there is one: its batch is settled, it is idle. */
static void
answer_read(struct sched *s, struct worker *w)
{
	int failed = worker_answer(w);

	if (failed < 0 || w->n == 0)
		return;
	if (failed && !spool_stop_requested)
		log_event("warning", "dest=%s msg=\"batch failed\"",
		    log_quote(w->d->name));
	batch_settle(s, w, !failed);
	w->idle_ms = clock_ms();
}

/* Hands d's pending items out evenly: to its idle workers first, then to
 * new ones within the limits. */
static void
launch_dest(struct sched *s, struct dsched *d)
{
	int limit = d->limit > 0 ? d->limit : s->per_dest, idle, fresh, slots;
	struct worker *w;

	fresh = limit - d->running;
	if (fresh > s->pool.max_workers - s->pool.nworkers)
		fresh = s->pool.max_workers - s->pool.nworkers;
	worker_idle_of(&s->pool, d, &idle);
	slots = idle + (fresh > 0 ? fresh : 0);
	if (slots == 0 && d->running < limit)
		s->starved++;	/* an idle worker elsewhere may make room */
	for (; slots > 0 && d->npending > 0; slots--) {
		if ((w = worker_idle_of(&s->pool, d, &idle)) == NULL) {
			w = worker_new(&s->pool, d, s->inotify);
			d->running++;
		}
		batch_hand(s, w, (d->npending + slots - 1) / slots);
	}
}

/* Hands out work while limits allow, destinations in turn. */
static void
launch_all(struct sched *s)
{
	time_t now = time(NULL);
	struct dsched *d;
	size_t tried;

	s->starved = 0;
	for (tried = 0; tried < s->ndests; tried++) {
		d = s->dests[s->rotor++ % s->ndests];
		if (d->npending > 0 && d->not_before <= now)
			launch_dest(s, d);
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

/* A worker ended: a batch it had not answered is settled by its exit
 * status (0: every envelope settled). */
static void
reap_one(struct sched *s, int idx, int status)
{
	struct worker *w = &s->pool.workers[idx];
	struct dsched *d = w->d;
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (!ok && !spool_stop_requested)
		log_event("warning", "dest=%s msg=\"worker failed\" status=%d",
		    log_quote(d->name), status);
	if (w->n > 0 && w->from_fd >= 0)
		answer_read(s, w);	/* it may have answered, then ended */
	if (w->n > 0)
		batch_settle(s, w, ok);
	worker_retire(w);
	if (w->from_fd >= 0)
		close(w->from_fd);
	d->running--;
	if (d->rate_per_min > 0)
		d->not_before = time(NULL) + 60 / d->rate_per_min;
	else if (d->nitems == 0 && d->running == 0)
		dest_drop(s, d);
	worker_forget(&s->pool, idx);
}

static void
reap(struct sched *s, int block)
{
	pid_t pid;
	int status, i;

	if (!block && !child_exited)
		return;
	child_exited = 0;
	while (s->pool.nworkers > 0 &&
	    (pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0)
		for (i = 0; i < s->pool.nworkers; i++)
			if (s->pool.workers[i].pid == pid) {
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

/* How long wait_event may sleep: until a retry or pacing time (soonest),
 * or an idle worker's end. NULL: no limit. */
static struct timespec *
wait_limit(struct sched *s, time_t soonest, struct timespec *ts)
{
	time_t now = time(NULL), due = s->st->in.next_due;
	long long ms = worker_idle_wait_ms(&s->pool), until;

	if (due != 0 && (soonest == 0 || due < soonest))
		soonest = due;
	if (soonest != 0) {
		until = (soonest > now ? (long long)(soonest - now) * 1000 : 0) + 100;
		if (ms < 0 || until < ms)
			ms = until;
	}
	if (ms < 0)
		return NULL;
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = ms % 1000 * 1000000;
	return ts;
}

/* Drains the watches' events: any but new/'s (cdb/, or an overflow)
 * means the configuration is to be read again. */
static void
events_read(struct sched *s)
{
	char events[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t got;
	char *p;

	while ((got = read(s->inotify, events, sizeof events)) > 0)
		for (p = events; p < events + got; p += sizeof *ev + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->wd != s->queue_wd)
				s->is_config_dirty = 1;
		}
}

/* Sleeps until new/ changes, a worker answers or ends, a retry or pacing
 * time comes, an idle worker is due to end, or a stop signal. */
static void
wait_event(struct sched *s, time_t soonest)
{
	struct timespec ts, *tsp = wait_limit(s, soonest, &ts);
	nfds_t n = 1, k;
	sigset_t none;
	int i;

	sigemptyset(&none);
	if (child_exited || spool_stop_requested)
		return;
	s->pfds[0] = (struct pollfd){ s->inotify, POLLIN, 0 };
	for (i = 0; i < s->pool.nworkers; i++)
		if (s->pool.workers[i].n > 0 && s->pool.workers[i].from_fd >= 0) {
			s->pfd_worker[n] = i;
			s->pfds[n++] = (struct pollfd){ s->pool.workers[i].from_fd, POLLIN, 0 };
		}
	if (ppoll(s->pfds, n, tsp, &none) <= 0)
		return;
	events_read(s);
	for (k = 1; k < n; k++)
		if (s->pfds[k].revents != 0)
			answer_read(s, &s->pool.workers[s->pfd_worker[k]]);
}

/* new/, and cdb/: settings are read again only when a database there
 * was replaced (without that watch, each round), and a replaced one ends
 * the idle workers now rather than at their remote-idle. */
static void
watch_queue(struct sched *s)
{
	char path[PATH_MAX];

	if ((s->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    root_path(path, sizeof path, "spool/remote/new") < 0 ||
	    (s->queue_wd = inotify_add_watch(s->inotify, path,
	    IN_MOVED_TO | IN_CREATE)) < 0)
		die(EXIT_TEMP, errno, "unable to watch spool/remote/new");
	s->cdb_wd = root_path(path, sizeof path, "cdb") < 0 ? -1 :
	    inotify_add_watch(s->inotify, path, IN_MOVED_TO | IN_CLOSE_WRITE);
}

/* The limits, read again when settings.cdb changed: a new one applies
 * without a restart (running workers above a lowered limit finish; idle
 * ones end). */
static void
sched_limits(struct sched *s)
{
	int max = conf_setting_size("max-remote", 20);
	long long idle = conf_setting_time("remote-idle", 2);

	s->per_dest = conf_setting_size("max-remote-per-domain", 5);
	if (s->per_dest < 1)
		s->per_dest = 1;
	if (max < 1)
		max = 1;
	if (max > s->pool.workers_cap) {
		if ((s->pool.workers = realloc(s->pool.workers,
		    max * sizeof *s->pool.workers)) == NULL ||
		    (s->pfds = realloc(s->pfds, (max + 1) * sizeof *s->pfds)) == NULL ||
		    (s->pfd_worker = realloc(s->pfd_worker,
		    (max + 1) * sizeof *s->pfd_worker)) == NULL)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		s->pool.workers_cap = max;
	}
	s->pool.max_workers = max;
	s->pool.idle_max_ms = idle > 0 ? idle * 1000 : 0;
}

/* A worker reads these databases when it starts and keeps what it read:
 * after a change, idle workers end and busy ones take no more batches. */
static void
sched_config(struct sched *s)
{
	static const char *const names[] = { "settings", "connectors", "servers" };
	unsigned long long stamp = 0;
	char path[PATH_MAX];
	struct stat sb;
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (root_path(path, sizeof path, "cdb/%s.cdb", names[i]) == 0 &&
		    stat(path, &sb) == 0)
			stamp = stamp * 31 + (unsigned long long)sb.st_ino * 1000003 +
			    (unsigned long long)sb.st_mtim.tv_sec * 1000000000 +
			    (unsigned long long)sb.st_mtim.tv_nsec;
	if (stamp != s->config_stamp) {
		s->config_stamp = stamp;
		s->pool.generation++;
	}
}

static void
sched_init(struct sched *s, struct stage *st, dispatch_worker_fn *run)
{
	struct sigaction sa;
	sigset_t block;

	memset(s, 0, sizeof *s);
	s->st = st;
	s->pool.st = st;
	s->pool.run = run;
	watch_queue(s);		/* first: a change from now on is seen */
	sched_limits(s);
	sched_config(s);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_child;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);
}

static void
sched_stop(struct sched *s)
{
	int i;

	for (i = 0; i < s->pool.nworkers; i++)
		kill(s->pool.workers[i].pid, SIGTERM);
	reap(s, 1);
	free(s->pool.workers);
	free(s->pfds);
	free(s->pfd_worker);
	s->pool.workers = NULL;
	s->pfds = NULL;
	s->pfd_worker = NULL;
}

void
dispatch_run(struct stage *st, dispatch_worker_fn *run)
{
	/* static: what it holds stays reachable until the process exits */
	static struct sched s;
	time_t soonest;

	sched_init(&s, st, run);
	while (!spool_stop_requested) {
		reap(&s, 0);
		if (s.is_config_dirty || s.cdb_wd < 0) {
			s.is_config_dirty = 0;
			sched_limits(&s);
			sched_config(&s);
		}
		scan(&s);
		launch_all(&s);
		worker_retire_idle(&s.pool, s.starved);
		soonest = 0;
		if (st->once && s.pool.nworkers == 0 && total_pending(&s, &soonest) == 0)
			break;
		total_pending(&s, &soonest);
		wait_event(&s, soonest);
	}
	sched_stop(&s);
}
