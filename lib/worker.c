/*
 * worker: bh-remote's worker processes and their pipes (see worker.h).
 *
 * The pipes: the scheduler writes a batch as one name a line and an empty
 * line; the worker answers "0\n" (settled) or "1\n" once every envelope of
 * it is settled, then waits for the next batch. A batch is at most
 * CHAN_MAX bytes and is only written to a worker that has answered the
 * last one (or is new), so the pipe is empty and the write never blocks
 * for long. A worker that stops after a batch (its link failed, or it had
 * trouble) exits without answering: its exit status settles the batch, as
 * does a crash. Only the scheduler ends an idle worker, by closing the
 * pipe: a worker never exits just as it is handed a batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "worker.h"

enum {
	CHAN_MAX = WORKER_BATCH_MAX * (NAME_MAX + 1) + 1,	/* a batch as text */
};

/* ---- a worker's end of the pipes ---- */

struct dispatch_chan {
	int in, out;
	char buf[CHAN_MAX];
	size_t len, used;	/* bytes read; of them, the batch handed out */
	char *names[WORKER_BATCH_MAX];
};

/* Splits the complete batch at the start of buf into names. */
static void
chan_split(struct dispatch_chan *ch, const char *end, char ***names,
    size_t *n)
{
	char *p, *nl;

	*n = 0;
	for (p = ch->buf; p <= end && *n < WORKER_BATCH_MAX; p = nl + 1) {
		nl = memchr(p, '\n', end + 1 - p);
		*nl = '\0';
		ch->names[(*n)++] = p;
	}
	ch->used = end + 2 - ch->buf;
	*names = ch->names;
}

int
dispatch_next(struct dispatch_chan *ch, int watch_fd, char ***names,
    size_t *n)
{
	struct pollfd pfd[2];
	struct timespec zero = { 0, 0 };
	const char *end;
	sigset_t none;
	ssize_t got;

	memmove(ch->buf, ch->buf + ch->used, ch->len - ch->used);
	ch->len -= ch->used;
	ch->used = 0;
	sigemptyset(&none);
	for (;;) {
		/* names are never empty: the first empty line ends a batch */
		end = memmem(ch->buf, ch->len, "\n\n", 2);
		if (spool_stop_requested || (end == NULL && ch->len == CHAN_MAX))
			return DISPATCH_END;
		pfd[0] = (struct pollfd){ ch->in, POLLIN, 0 };
		pfd[1] = (struct pollfd){ watch_fd, POLLIN, 0 };
		/* a batch in hand still looks at the connection first: it may
		 * have died while we waited */
		if (ppoll(pfd, watch_fd >= 0 ? 2 : 1, end ? &zero : NULL, &none) < 0) {
			if (errno == EINTR)
				continue;	/* a stop: seen above */
			return DISPATCH_END;
		}
		if (watch_fd >= 0 && pfd[1].revents != 0)
			return DISPATCH_WATCHED;
		if (end != NULL) {
			chan_split(ch, end, names, n);
			return DISPATCH_BATCH;
		}
		if (pfd[0].revents == 0)
			continue;
		got = read(ch->in, ch->buf + ch->len, CHAN_MAX - ch->len);
		if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
			return DISPATCH_END;
		if (got > 0)
			ch->len += got;
	}
}

int
dispatch_answer(struct dispatch_chan *ch, int status)
{
	return write_all(ch->out, status == 0 ? "0\n" : "1\n", 2);
}

/* ---- workers, as the scheduler sees them ---- */

static int
worker_is_idle(const struct worker *w)
{
	return w->n == 0 && w->to_fd >= 0;
}

/* May an idle worker take another batch? */
static int
worker_is_fresh(const struct worker_pool *p, const struct worker *w,
    long long now)
{
	return w->generation == p->generation && w->uses < DISPATCH_USES_MAX &&
	    now - w->born_ms < DISPATCH_AGE_SEC * 1000LL;
}

void
worker_retire(struct worker *w)
{
	if (w->to_fd >= 0)
		close(w->to_fd);
	w->to_fd = -1;
}

void
worker_forget(struct worker_pool *p, int idx)
{
	free(p->workers[idx].items);
	p->workers[idx] = p->workers[--p->nworkers];
}

/* In a new worker: only its own pipe ends stay open (a copy of another
 * worker's pipe would keep that worker from ever seeing its end). */
static _Noreturn void
worker_start(struct worker_pool *p, int sched_fd, int in, int out)
{
	static struct dispatch_chan ch;
	int i;

	for (i = 0; i < p->nworkers; i++) {
		if (p->workers[i].to_fd >= 0)
			close(p->workers[i].to_fd);
		if (p->workers[i].from_fd >= 0)
			close(p->workers[i].from_fd);
	}
	if (sched_fd >= 0)
		close(sched_fd);
	ch.in = in;
	ch.out = out;
	p->run(p->st, &ch);
	_exit(EXIT_TEMP);	/* a worker never returns */
}

struct worker *
worker_new(struct worker_pool *p, struct dsched *d, int sched_fd)
{
	struct worker *w = &p->workers[p->nworkers];
	int down[2], up[2];
	pid_t pid;

	memset(w, 0, sizeof *w);
	if ((w->items = calloc(WORKER_BATCH_MAX, sizeof *w->items)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0)
		die(EXIT_TEMP, errno, "unable to make a pipe");
	if ((pid = fork()) < 0)
		die(EXIT_TEMP, errno, "unable to fork");
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		worker_start(p, sched_fd, down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	fcntl(up[0], F_SETFL, O_NONBLOCK);
	w->pid = pid;
	w->d = d;
	w->to_fd = down[1];
	w->from_fd = up[0];
	w->born_ms = clock_ms();
	w->generation = p->generation;
	p->nworkers++;
	return w;
}

void
worker_send(struct worker_pool *p, struct worker *w, const char *const *names)
{
	static char text[CHAN_MAX];
	size_t len = 0, i, k;

	for (i = 0; i < w->n; i++) {
		k = strlen(names[i]);
		memcpy(text + len, names[i], k);
		text[len + k] = '\n';
		len += k + 1;
	}
	text[len++] = '\n';
	w->uses++;
	/* failing (EPIPE: it died): its exit status settles the batch */
	if (write_all(w->to_fd, text, len) < 0 || p->idle_max_ms == 0 ||
	    p->st->once)
		worker_retire(w);
}

int
worker_answer(struct worker *w)
{
	char answer[16];
	ssize_t got = read(w->from_fd, answer, sizeof answer);

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (got <= 0) {		/* it is ending: its exit status will tell */
		close(w->from_fd);
		w->from_fd = -1;
		return -1;
	}
	return answer[0] != '0';
}

struct worker *
worker_idle_of(struct worker_pool *p, const struct dsched *d, int *n)
{
	long long now = clock_ms();
	struct worker *found = NULL;
	int i;

	*n = 0;
	for (i = 0; i < p->nworkers; i++)
		if (p->workers[i].d == d && worker_is_idle(&p->workers[i]) &&
		    worker_is_fresh(p, &p->workers[i], now)) {
			found = &p->workers[i];
			(*n)++;
		}
	return found;
}

/* The idle worker that has waited longest, or NULL. */
static struct worker *
idle_longest(struct worker_pool *p)
{
	struct worker *w = NULL;
	int i;

	for (i = 0; i < p->nworkers; i++)
		if (worker_is_idle(&p->workers[i]) &&
		    (w == NULL || p->workers[i].idle_ms < w->idle_ms))
			w = &p->workers[i];
	return w;
}

void
worker_retire_idle(struct worker_pool *p, int starved)
{
	long long now = clock_ms();
	struct worker *w;
	int i, ending = 0;

	for (i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		if (worker_is_idle(w) && (!worker_is_fresh(p, w, now) ||
		    now - w->idle_ms >= p->idle_max_ms))
			worker_retire(w);
		ending += w->to_fd < 0;
	}
	while ((p->nworkers - ending > p->max_workers || ending < starved) &&
	    (w = idle_longest(p)) != NULL) {
		worker_retire(w);
		ending++;
	}
}

long long
worker_idle_wait_ms(const struct worker_pool *p)
{
	long long now = clock_ms(), due, best = -1;
	const struct worker *w;
	int i;

	for (i = 0; i < p->nworkers; i++) {
		w = &p->workers[i];
		if (!worker_is_idle(w))
			continue;
		due = w->idle_ms + p->idle_max_ms;
		if (due > w->born_ms + DISPATCH_AGE_SEC * 1000LL)
			due = w->born_ms + DISPATCH_AGE_SEC * 1000LL;
		if (best < 0 || due - now < best)
			best = due > now ? due - now : 0;
	}
	return best;
}
