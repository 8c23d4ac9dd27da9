/*
 * dispatch: bh-remote's scheduler (see dispatch.h). It never touches the
 * network: it watches spool/remote/new (inotify), groups the waiting
 * envelopes by destination and forks one worker per connection, within
 * max-remote and max-remote-per-domain (1 when the connector has rate=).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "deliver.h"
#include "dest.h"
#include "log.h"
#include "root.h"
#include "dispatch.h"

enum { BATCH_MAX = 100, HASH_SIZE = 4096, COOL_SEC = 60 };

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
	dispatch_worker_fn *run;
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
		s->run(s->st, names, k);
		_exit(EXIT_TEMP);	/* a worker never returns */
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
sched_init(struct sched *s, struct stage *st, dispatch_worker_fn *run)
{
	struct sigaction sa;
	sigset_t block;

	memset(s, 0, sizeof *s);
	s->st = st;
	s->run = run;
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

void
dispatch_run(struct stage *st, dispatch_worker_fn *run)
{
	/* static: what it holds stays reachable until the process exits */
	static struct sched s;
	time_t soonest;

	sched_init(&s, st, run);
	while (!spool_stop_requested) {
		reap(&s, 0);
		sched_limits(&s);
		scan(&s);
		launch_all(&s);
		soonest = 0;
		if (st->once && s.nworkers == 0 && total_pending(&s, &soonest) == 0)
			break;
		total_pending(&s, &soonest);
		wait_event(&s, soonest);
	}
	sched_stop(&s);
}
