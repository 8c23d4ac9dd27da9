#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "dest.h"
#include "queue.h"
#include "root.h"

struct found {
	const char *sub;
	char *name;
};

struct found_list {
	struct found *v;
	size_t n, cap;
};

static int
found_add(struct found_list *l, const char *sub, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct found *v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n].name = strdup(name)) == NULL)
		return -1;
	l->v[l->n++].sub = sub;
	return 0;
}

static void
found_free(struct found_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

static int
found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Lists QUEUE/SUB into l; a missing sub-folder is empty. */
static int
list_sub(const char *queue, const char *sub, struct found_list *l)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dir;
	int rc = 0;

	if (root_path(path, sizeof path, "spool/%s/%s", queue, sub) < 0)
		return -1;
	if ((dir = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (rc == 0 && (d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			rc = found_add(l, sub, d->d_name);
	closedir(dir);
	return rc;
}

/* Reads one listed envelope and hands it to fn; vanished ones are skipped. */
static int
scan_one(const char *queue, const struct found *f,
    int (*fn)(const struct queue_entry *, void *), void *arg)
{
	struct envelope e = ENVELOPE_INIT;
	struct queue_entry q;
	char path[PATH_MAX];
	struct stat st;
	int dirfd, rc = 0;

	if (root_path(path, sizeof path, "spool/%s/%s", queue, f->sub) < 0)
		return -1;
	if ((dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0;
	if (fstatat(dirfd, f->name, &st, 0) == 0 &&
	    envelope_read(&e, dirfd, f->name) == 0) {
		q.queue = queue;
		q.sub = f->sub;
		q.name = f->name;
		q.mtime = st.st_mtime;
		q.env = &e;
		rc = fn(&q, arg);
	}
	envelope_free(&e);
	close(dirfd);
	return rc;
}

int
queue_scan(const char *queue,
    int (*fn)(const struct queue_entry *, void *), void *arg)
{
	static const char *subs[] = { QUEUE_SUBS };
	struct found_list l = { NULL, 0, 0 };
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < sizeof subs / sizeof subs[0]; i++)
		rc = list_sub(queue, subs[i], &l);
	if (rc == 0 && l.n > 0)
		qsort(l.v, l.n, sizeof l.v[0], found_cmp);
	for (i = 0; rc == 0 && i < l.n; i++)
		rc = scan_one(queue, &l.v[i], fn, arg);
	found_free(&l);
	return rc;
}

int
queue_name_matches(const char *name, const char *id)
{
	size_t n = strlen(id);

	return n > 0 && strncmp(name, id, n) == 0 &&
	    (name[n] == '\0' || name[n] == '.');
}

time_t
queue_arrived(const struct queue_entry *q)
{
	const char *s = envelope_get(q->env, "arrived");
	char digits[11];

	if (s != NULL && *s >= '0' && *s <= '9')
		return (time_t)strtoll(s, NULL, 10);
	/* ids begin with 10 digits of seconds and 6 of microseconds */
	if (strspn(q->name, "0123456789") >= 16) {
		memcpy(digits, q->name, 10);
		digits[10] = '\0';
		return (time_t)strtoll(digits, NULL, 10);
	}
	return q->mtime;
}

long long
queue_size(const struct queue_entry *q)
{
	const char *s = envelope_get(q->env, "size");
	char path[PATH_MAX];
	struct stat st;

	if (s != NULL && *s >= '0' && *s <= '9')
		return strtoll(s, NULL, 10);
	if (root_path(path, sizeof path, "spool/msg/%s", q->name) == 0 &&
	    stat(path, &st) == 0)
		return st.st_size;
	return 0;
}

const char *
queue_dest(const struct queue_entry *q)
{
	const char *d = envelope_get(q->env, "dest");

	if (d != NULL && *d != '\0')
		return d;
	if (q->env->nrcpt == 0)
		return "unknown";
	if ((d = rcpt_get(&q->env->rcpt[0], "dest")) != NULL && *d != '\0')
		return d;
	d = addr_domain(q->env->rcpt[0].addr);
	return *d != '\0' ? d : "unknown";
}

static int
open_sub(const char *queue, const char *sub, int create)
{
	char path[PATH_MAX];
	int fd;

	if (root_path(path, sizeof path, "spool/%s/%s", queue, sub) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd;
}

/* The rename itself, with the envelope locked so a stage that locks its
 * input is never robbed in the middle of its work. */
static int
take_locked(int from, const char *name, int to, const char *newname)
{
	int fd, rc, err;

	if ((fd = openat(from, name, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? EBUSY : errno;
		close(fd);
		errno = err;
		return -1;
	}
	/* RENAME_NOREPLACE: a stage deferring an envelope writes retry/NAME
	 * before it removes new/NAME; replacing that new/NAME would let the
	 * stage's removal destroy the moved envelope */
	rc = renameat2(from, name, to, newname, RENAME_NOREPLACE);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

int
queue_take(const char *queue, const char *from, const char *name,
    const char *to, const char *newname)
{
	int fromfd, tofd, rc = -1, err;

	if ((fromfd = open_sub(queue, from, 0)) < 0)
		return -1;
	if ((tofd = open_sub(queue, to, 1)) < 0) {
		err = errno;
		close(fromfd);
		errno = err;
		return -1;
	}
	if (take_locked(fromfd, name, tofd, newname ? newname : name) == 0 &&
	    fsync(tofd) == 0 && fsync(fromfd) == 0)
		rc = 0;
	err = errno;
	close(fromfd);
	close(tofd);
	errno = err;
	return rc;
}

/* ---- the summary: one line per queue and destination ---- */

static const char *fixed_queues[] = { "incoming", "route", "local", "ndr",
    "badmail" };
static const char *fixed_info[] = { "awaiting directory lookup",
    "waiting to be routed", "local delivery", "delivery reports to build",
    "reports that could not be delivered" };
enum { NFIXED = sizeof fixed_queues / sizeof fixed_queues[0] };

const char *
queue_sub_state(const char *sub)
{
	static const char *map[][2] = { { "new", "Ready" }, { "retry", "Retry" },
	    { "frozen", "Frozen" }, { "hold", "Held" },
	    { "scheduled", "Scheduled" } };
	size_t i;

	for (i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(sub, map[i][0]) == 0)
			return map[i][1];
	return sub;
}

int
queue_is_fixed(const char *name)
{
	size_t i;

	for (i = 0; i < NFIXED; i++)
		if (strcmp(name, fixed_queues[i]) == 0)
			return 1;
	return 0;
}

static struct queue_line *
line_get(struct queue_summary *s, const char *name, int is_dest)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].is_dest == is_dest && strcmp(s->v[i].name, name) == 0)
			return &s->v[i];
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct queue_line *v = realloc(s->v, cap * sizeof *v);
		if (v == NULL)
			return NULL;
		s->v = v;
		s->cap = cap;
	}
	memset(&s->v[s->n], 0, sizeof s->v[0]);
	snprintf(s->v[s->n].name, sizeof s->v[0].name, "%s", name);
	s->v[s->n].is_dest = is_dest;
	return &s->v[s->n++];
}

static void
min_time(time_t *t, time_t v)
{
	if (*t == 0 || v < *t)
		*t = v;
}

static int
summary_add(const struct queue_entry *q, void *arg)
{
	int is_dest = strcmp(q->queue, "remote") == 0;
	struct queue_line *l = line_get(arg, is_dest ? queue_dest(q) : q->queue,
	    is_dest);

	if (l == NULL)
		return -1;
	l->count++;
	l->bytes += queue_size(q);
	min_time(&l->oldest, queue_arrived(q));
	if (strcmp(q->sub, "new") == 0)
		l->nnew++;
	else if (strcmp(q->sub, "retry") == 0) {
		l->nretry++;
		min_time(&l->next_retry, q->mtime);
	} else if (strcmp(q->sub, "frozen") == 0)
		l->nfrozen++;
	else if (strcmp(q->sub, "hold") == 0)
		l->nheld++;
	else if (strcmp(q->sub, "scheduled") == 0) {
		l->nscheduled++;
		min_time(&l->next_scheduled, q->mtime);
	}
	return 0;
}

/* Destinations with a state file but no mail (a frozen link, say). */
static int
summary_states(struct queue_summary *s)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dir;
	int rc = 0;

	if (root_path(path, sizeof path, "spool/state") < 0)
		return -1;
	if ((dir = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (rc == 0 && (d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.' && strstr(d->d_name, ".tmp") == NULL &&
		    line_get(s, d->d_name, 1) == NULL)
			rc = -1;
	closedir(dir);
	return rc;
}

static void
state_fixed(struct queue_line *l)
{
	snprintf(l->state, sizeof l->state, "Ready");
	if (l->count > 0 && l->nfrozen == l->count)
		snprintf(l->state, sizeof l->state, "Frozen");
	else if (l->nretry > 0 && l->nretry + l->nfrozen == l->count) {
		snprintf(l->state, sizeof l->state, "Retry");
		l->next = l->next_retry;
	}
}

/* A state file written by hand may hold the error double-quoted. */
static void
unquote(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		memmove(s, s + 1, n - 2);
		s[n - 2] = '\0';
	}
}

/* The link state of a destination, from its state file and its mail. */
static void
state_dest(struct queue_line *l, time_t now, long long unreachable_after)
{
	struct dest_state st;
	long long waiting = l->count - l->nfrozen;

	if (dest_read(l->name, &st) < 0)
		memset(&st, 0, sizeof st);
	snprintf(l->state, sizeof l->state, "%s", *st.state ? st.state : "Ready");
	snprintf(l->error, sizeof l->error, "%s", st.error);
	unquote(l->error);
	if (strcmp(st.state, "Frozen") == 0)
		return;
	if (strcmp(st.state, "Retry") == 0) {
		l->next = st.next_attempt ? st.next_attempt : l->next_retry;
		if (st.since != 0 && now - st.since >= unreachable_after)
			snprintf(l->state, sizeof l->state, "Unreachable");
	} else if (waiting > 0 && l->nheld == waiting)
		snprintf(l->state, sizeof l->state, "Held");
	else if (waiting > 0 && l->nscheduled == waiting) {
		snprintf(l->state, sizeof l->state, "Scheduled");
		l->next = l->next_scheduled;
	} else if (l->count > 0 && waiting == 0)
		snprintf(l->state, sizeof l->state, "Frozen");
	else if (waiting > 0 && l->nretry == waiting) {
		snprintf(l->state, sizeof l->state, "Retry");
		l->next = l->next_retry;
	}
}

static int
line_cmp(const void *a, const void *b)
{
	const struct queue_line *x = a, *y = b;

	return strcmp(x->name, y->name);
}

int
queue_summary_build(struct queue_summary *s, time_t now,
    long long unreachable_after)
{
	size_t i;

	memset(s, 0, sizeof *s);
	for (i = 0; i < NFIXED; i++) {
		struct queue_line *l = line_get(s, fixed_queues[i], 0);
		if (l == NULL)
			return -1;
		l->info = fixed_info[i];
	}
	for (i = 0; i < NFIXED; i++)
		if (queue_scan(fixed_queues[i], summary_add, s) < 0)
			return -1;
	if (queue_scan("remote", summary_add, s) < 0 || summary_states(s) < 0)
		return -1;
	/* fixed queues keep their order; destinations follow by name */
	if (s->n > NFIXED)
		qsort(s->v + NFIXED, s->n - NFIXED, sizeof s->v[0], line_cmp);
	for (i = 0; i < s->n; i++) {
		if (s->v[i].is_dest)
			state_dest(&s->v[i], now, unreachable_after);
		else
			state_fixed(&s->v[i]);
		if (s->v[i].info == NULL)
			s->v[i].info = *s->v[i].error ? s->v[i].error :
			    "remote delivery";
	}
	return 0;
}

void
queue_summary_free(struct queue_summary *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* ---- selecting envelopes, and acting on each ---- */

static int
in_list(const char *list, const char *word)
{
	char key[32];

	snprintf(key, sizeof key, " %s ", word);
	return strstr(list, key) != NULL;
}

static int
select_add(const struct queue_entry *q, void *arg)
{
	struct queue_selection *s = arg;
	struct queue_match *m;

	if (s->id != NULL && !queue_name_matches(q->name, s->id))
		return 0;
	if (s->dest != NULL && (strcmp(q->queue, "remote") != 0 ||
	    strcmp(queue_dest(q), s->dest) != 0))
		return 0;
	if (!in_list(s->subs, q->sub))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		if ((m = realloc(s->v, cap * sizeof *m)) == NULL)
			return -1;
		s->v = m;
		s->cap = cap;
	}
	m = &s->v[s->n++];
	snprintf(m->queue, sizeof m->queue, "%s", q->queue);
	snprintf(m->sub, sizeof m->sub, "%s", q->sub);
	snprintf(m->name, sizeof m->name, "%s", q->name);
	m->mtime = q->mtime;
	return 0;
}

int
queue_select(struct queue_selection *s)
{
	static const char *queues[] = { QUEUE_NAMES };
	size_t i;

	s->n = 0;
	for (i = 0; i < sizeof queues / sizeof queues[0]; i++) {
		if (s->dest != NULL && strcmp(queues[i], "remote") != 0)
			continue;
		if (s->queues != NULL && !in_list(s->queues, queues[i]))
			continue;
		if (queue_scan(queues[i], select_add, s) < 0)
			return -1;
	}
	return 0;
}

int
queue_act(struct queue_selection *s, int (*act)(const struct queue_match *),
    int *nbusy, struct queue_match *failed)
{
	int pass, again, done = 0;
	size_t i;

	for (pass = 0; pass < QUEUE_ACT_PASSES; pass++) {
		if (queue_select(s) < 0)
			return -1;
		again = *nbusy = 0;
		for (i = 0; i < s->n; i++) {
			if (act(&s->v[i]) == 0)
				done++;
			else if (errno == ENOENT || errno == EEXIST || errno == EBUSY) {
				again = 1;
				*nbusy += errno == EBUSY;
			} else {
				*failed = s->v[i];
				return -1;
			}
		}
		if (!again)
			break;
		usleep(20000 << pass);	/* 20, 40, 80, 160 ms */
	}
	return done;
}

void
queue_selection_free(struct queue_selection *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
