#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "root.h"
#include "spool.h"

volatile int spool_stop_requested;

enum { SPOOL_LOCK_WAIT_MS = 1000 };

int
write_all(int fd, const void *p, size_t len)
{
	const char *s = p;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, s, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += n;
		len -= n;
	}
	return 0;
}

int
spool_fsync_dir(int dirfd)
{
	return fsync(dirfd);
}

static int
open_sub(int dirfd, const char *sub)
{
	int fd;

	if ((fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		return fd;
	if (errno != ENOENT || (mkdirat(dirfd, sub, 0700) < 0 && errno != EEXIST))
		return -1;
	return openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int
spool_open(struct spool *s, const char *queue)
{
	char path[PATH_MAX];

	memset(s, 0, sizeof *s);
	s->dirfd = s->tmpfd = s->newfd = s->retryfd = s->inotify = -1;
	s->retry_wd = -1;
	snprintf(s->queue, sizeof s->queue, "%s", queue);
	if (root_path(path, sizeof path, "spool/%s", queue) < 0)
		return -1;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	if ((s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (s->tmpfd = open_sub(s->dirfd, "tmp")) < 0 ||
	    (s->newfd = open_sub(s->dirfd, "new")) < 0 ||
	    (s->retryfd = open_sub(s->dirfd, "retry")) < 0) {
		int err = errno;
		spool_close(s);
		errno = err;
		return -1;
	}
	return 0;
}

static void
free_batch(struct spool *s)
{
	size_t i;

	for (i = 0; i < s->nnames; i++)
		free(s->names[i]);
	free(s->names);
	s->names = NULL;
	s->nnames = s->pos = 0;
}

void
spool_close(struct spool *s)
{
	int *fds[] = { &s->dirfd, &s->tmpfd, &s->newfd, &s->retryfd, &s->inotify };
	size_t i;

	for (i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	free_batch(s);
}

static int
sub_fd(const struct spool *s, const char *sub)
{
	if (strcmp(sub, "new") == 0)
		return s->newfd;
	if (strcmp(sub, "retry") == 0)
		return s->retryfd;
	if (strcmp(sub, "tmp") == 0)
		return s->tmpfd;
	errno = EINVAL;
	return -1;
}

int
spool_put(const struct spool *s, const char *sub, const char *name,
    const char *text, size_t len, time_t when)
{
	struct timespec times[2];
	int fd, err, dst = sub_fd(s, sub);

	if (dst < 0)
		return -1;
	/* O_TRUNC: a crashed earlier attempt may have left tmp/NAME behind */
	fd = openat(s->tmpfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write_all(fd, text, len) < 0 || fsync(fd) < 0)
		goto fail_fd;
	if (dst == s->retryfd) {
		times[0].tv_sec = times[1].tv_sec = when;
		times[0].tv_nsec = times[1].tv_nsec = 0;
		if (futimens(fd, times) < 0)
			goto fail_fd;
	}
	if (close(fd) < 0 || renameat(s->tmpfd, name, dst, name) < 0)
		goto fail;
	/* the rename itself reaches the disk only with its directory */
	return spool_fsync_dir(dst);
fail_fd:
	err = errno;
	close(fd);
	errno = err;
fail:
	err = errno;
	unlinkat(s->tmpfd, name, 0);
	errno = err;	/* report the cause, not the cleanup */
	return -1;
}

int
spool_handover(const struct spool *next, const char *name,
    const char *text, size_t len)
{
	return spool_put(next, "new", name, text, len, 0);
}

int
spool_remove(const struct spool *s, const char *sub, const char *name)
{
	int fd = sub_fd(s, sub);

	if (fd < 0)
		return -1;
	if (unlinkat(fd, name, 0) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Calls each(s, name) for every entry of the directory fd but dot files,
 * reading it with getdents64 from its start: no DIR stream to open. */
static int
list_dir(struct spool *s, int fd, int (*each)(struct spool *, const char *))
{
	static char buf[32768] __attribute__((aligned(8)));
	struct dirent64 *d;
	ssize_t n, off;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = getdents64(fd, buf, sizeof buf)) > 0)
		for (off = 0; off < n; off += d->d_reclen) {
			d = (struct dirent64 *)(buf + off);
			if (d->d_name[0] != '.' && each(s, d->d_name) < 0)
				return -1;
		}
	return n < 0 ? -1 : 0;
}

static size_t spool_cap;	/* of the names array being filled */

static int
add_name(struct spool *s, const char *name)
{
	char **v;

	if (s->nnames == spool_cap) {
		v = realloc(s->names, (spool_cap ? spool_cap * 2 : 64) * sizeof *v);
		if (v == NULL)
			return -1;
		s->names = v;
		spool_cap = spool_cap ? spool_cap * 2 : 64;
	}
	if ((s->names[s->nnames] = strdup(name)) == NULL)
		return -1;
	s->nnames++;
	return 0;
}

/* Lists new/ into the batch, sorted so older ids come first. */
static int
scan_new(struct spool *s)
{
	free_batch(s);
	spool_cap = 0;
	/* out of memory: go on with the names we have */
	if (list_dir(s, s->newfd, add_name) < 0 && errno != ENOMEM)
		return -1;
	if (s->nnames > 1)
		qsort(s->names, s->nnames, sizeof s->names[0], name_cmp);
	return 0;
}

/* release_due's state while it lists retry/ */
static struct {
	time_t now, next;
	int force, moved;
} due;

static int
release_one(struct spool *s, const char *name)
{
	struct stat st;

	if (fstatat(s->retryfd, name, &st, 0) < 0)
		return 0;
	if (due.force || st.st_mtime <= due.now) {
		if (renameat(s->retryfd, name, s->newfd, name) == 0)
			due.moved++;
	} else if (due.next == 0 || st.st_mtime < due.next)
		due.next = st.st_mtime;
	return 0;
}

/* Moves retry/ entries whose time has come (all with force) into new/,
 * and remembers the earliest time still to come. */
static int
release_due(struct spool *s, int force)
{
	due.now = time(NULL);
	due.next = 0;
	due.force = force;
	due.moved = 0;
	if (list_dir(s, s->retryfd, release_one) < 0)
		return -1;
	if (due.moved > 0)
		spool_fsync_dir(s->newfd);
	s->next_due = due.next;
	s->due_known = 1;
	return due.moved;
}

int
spool_retry_all(struct spool *s)
{
	return release_due(s, 1) < 0 ? -1 : 0;
}

static int
watch(struct spool *s)
{
	if (s->inotify >= 0)
		return 0;
	if ((s->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		return -1;
	return 0;
}

static int
add_watches(struct spool *s)
{
	char path[PATH_MAX];

	if (root_path(path, sizeof path, "spool/%s/new", s->queue) < 0 ||
	    inotify_add_watch(s->inotify, path, IN_MOVED_TO | IN_CREATE) < 0)
		return -1;
	if (root_path(path, sizeof path, "spool/%s/retry", s->queue) < 0 ||
	    (s->retry_wd = inotify_add_watch(s->inotify, path,
	    IN_MOVED_TO | IN_CREATE | IN_ATTRIB | IN_MOVED_FROM | IN_DELETE)) < 0)
		return -1;
	return 0;
}

/* Whether a read of inotify events tells of a change in retry/ (or of
 * lost events): then retry/ is listed again; new/ alone leaves it. */
static int
events_touch_retry(const struct spool *s, const char *events, size_t len)
{
	const struct inotify_event *ev;
	size_t off;

	for (off = 0; off + sizeof *ev <= len; off += sizeof *ev + ev->len) {
		ev = (const struct inotify_event *)(events + off);
		if (ev->wd == s->retry_wd || (ev->mask & IN_Q_OVERFLOW))
			return 1;
	}
	return 0;
}

/* Reads the events queued so far, without waiting. The listing that
 * follows sees all they told of; our own moves in new/ (bh-categorize's
 * exchange) thus no longer wake the next wait for nothing. */
static void
drain_events(struct spool *s)
{
	char events[4096] __attribute__((aligned(8)));
	ssize_t n;

	if (s->inotify < 0)
		return;
	while ((n = read(s->inotify, events, sizeof events)) > 0)
		if (events_touch_retry(s, events, n))
			s->due_known = 0;	/* retry/ changed: list it again */
}

/* Blocks until an inotify event, a due retry or a stop signal. */
static int
wait_for_work(struct spool *s)
{
	struct timespec ts, *tsp = NULL;
	struct pollfd pfd;
	sigset_t none;
	time_t now;

	if (s->next_due != 0) {
		now = time(NULL);
		ts.tv_sec = s->next_due > now ? s->next_due - now : 0;
		ts.tv_nsec = 0;
		tsp = &ts;
	}
	pfd.fd = s->inotify;
	pfd.events = POLLIN;
	sigemptyset(&none);
	/* signals stay blocked outside ppoll: a SIGTERM between the check of
	 * spool_stop_requested and the wait cannot be lost */
	if (ppoll(&pfd, 1, tsp, &none) < 0 && errno != EINTR)
		return -1;
	return 0;	/* spool_next reads the events */
}

int
spool_next(struct spool *s, char *name, size_t cap, int once)
{
	for (;;) {
		if (spool_stop_requested)
			return 0;
		if (s->pos < s->nnames) {
			snprintf(name, cap, "%s", s->names[s->pos++]);
			return 1;
		}
		if (!once && s->inotify < 0 && (watch(s) < 0 || add_watches(s) < 0))
			return -1;
		drain_events(s);	/* before the listing: nothing is missed */
		if (!s->due_known || (s->next_due != 0 && s->next_due <= time(NULL)))
			if (release_due(s, 0) < 0)
				return -1;
		if (scan_new(s) < 0)
			return -1;
		if (s->nnames > 0)
			continue;
		if (once)
			return 0;
		if (wait_for_work(s) < 0)
			return -1;
	}
}

/* Waits for the flock of fd, but not forever: bh-queue holds one only for
 * a rename (microseconds), so a lock held for a second belongs to a process
 * of this stage itself (a parent that read the envelope with a lock, then
 * forked the worker calling us). Rather than deadlock, go on unlocked. */
static int
lock_briefly(int fd)
{
	struct timespec pause = { 0, 1000000 };	/* 1 ms */
	int i;

	for (i = 0; i < SPOOL_LOCK_WAIT_MS; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		nanosleep(&pause, NULL);
	}
	return 0;
}

int
spool_lock(const struct spool *s, const char *name)
{
	struct stat held;

	return spool_lock_stat(s, name, &held);
}

int
spool_lock_stat(const struct spool *s, const char *name, struct stat *held)
{
	struct stat named;
	int fd, err;

	if ((fd = openat(s->newfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (lock_briefly(fd) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	/* bh-queue renames under the same lock: if the name no longer leads
	 * to the file we locked, it took the envelope before us */
	if (fstat(fd, held) < 0 || fstatat(s->newfd, name, &named, 0) < 0 ||
	    held->st_ino != named.st_ino || held->st_dev != named.st_dev) {
		close(fd);
		errno = ENOENT;
		return -1;
	}
	return fd;
}
