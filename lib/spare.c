/*
 * spare: content and envelope files kept for reuse across programs (see
 * spare.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "recycle.h"
#include "root.h"
#include "spare.h"
#include "spool.h"

/* SPARE_MAX files of a kind at most (a flush of a big queue with no new
 * mail would otherwise keep every inode it freed); a taker lists up to
 * SPARE_BATCH names at a time, uses a listing only when it has at least
 * SPARE_MIN (the fsyncs that make them safe are shared by that many
 * messages), and looks again only after SPARE_WAIT_MS. */
enum { SPARE_MAX = 2048, SPARE_BATCH = 64, SPARE_MIN = 8, SPARE_WAIT_MS = 100,
    SPARE_COUNT_SEC = 10, SPARE_NAME_MAX = 128 };

/* A spare keeps at most this much of its old text: a bigger one is emptied
 * when given (its inode is what is worth keeping), so the spares never
 * hold more than SPARE_MAX * SPARE_KEEP_BYTES of disk (128 MB). */
enum { SPARE_KEEP_BYTES = 64 * 1024 };

struct kind {
	const char *sub;	/* spool/spare/SUB */
	int fd;
	/* giving: the count, looked at every SPARE_COUNT_SEC */
	time_t counted;
	int count;
	/* taking: names listed and made safe, in a shuffled order */
	char names[SPARE_BATCH][SPARE_NAME_MAX];
	int n;
	long long next_ms;	/* monotonic: no listing before */
	unsigned seed;
};

static struct kind content_kind = { .sub = "msg", .fd = -1 };
static struct kind envelope_kind = { .sub = "env", .fd = -1 };

/* spool/spare/SUB, made when missing. */
static int
spare_dir(struct kind *k)
{
	char path[PATH_MAX];

	if (k->fd >= 0)
		return k->fd;
	if (root_path(path, sizeof path, "spool/spare") < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST) ||
	    root_path(path, sizeof path, "spool/spare/%s", k->sub) < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		return -1;
	k->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return k->fd;
}

/* Is name among v[0..n-1]? */
static int
spare_seen(char (*v)[SPARE_NAME_MAX], int n, const char *name)
{
	while (n-- > 0)
		if (strcmp(v[n], name) == 0)
			return 1;
	return 0;
}

/* Reads names from dir until the end, position stop (0: none) or v has
 * max: the new count. A name already in v is not taken twice. */
static int
spare_read(DIR *dir, char (*v)[SPARE_NAME_MAX], int n, int max, long stop)
{
	struct dirent *d;

	while (n < max && (stop == 0 || telldir(dir) < stop) &&
	    (d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || strlen(d->d_name) >= SPARE_NAME_MAX)
			continue;
		if (v != NULL) {
			if (stop != 0 && spare_seen(v, n, d->d_name))
				continue;
			memcpy(v[n], d->d_name, strlen(d->d_name) + 1);
		}
		n++;
	}
	return n;
}

/* Up to max names of spare files into v (each SPARE_NAME_MAX), read from
 * directory position start on (then from the beginning): their number,
 * or -1. With v NULL, only counts. Takers start at a random position
 * (ext4 positions are name hashes), so that many takers listing at once
 * do not all go for the same files. */
static int
spare_list(struct kind *k, char (*v)[SPARE_NAME_MAX], int max, long start)
{
	DIR *dir;
	int fd, n;

	if (spare_dir(k) < 0 || (fd = dup(k->fd)) < 0)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(dir);
	if (start != 0)
		seekdir(dir, start);
	n = spare_read(dir, v, 0, max, 0);
	if (start != 0 && n < max) {
		rewinddir(dir);
		n = spare_read(dir, v, n, max, start);
	}
	closedir(dir);
	return n;
}

/* Is there room for one more? The count is looked at again every
 * SPARE_COUNT_SEC seconds and kept up to date in between. */
static int
spare_room(struct kind *k)
{
	time_t now = time(NULL);

	if (now - k->counted >= SPARE_COUNT_SEC || k->count >= SPARE_MAX) {
		if ((k->count = spare_list(k, NULL, SPARE_MAX, 0)) < 0)
			return 0;
		k->counted = now;
	}
	if (k->count >= SPARE_MAX)
		return 0;
	k->count++;
	return 1;
}

/* Empties a big spare (one that cannot be emptied is dropped). */
static void
spare_empty(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || ftruncate(fd, 0) < 0)
		unlinkat(dirfd, name, 0);
	if (fd >= 0)
		close(fd);
}

/* Gives dirfd/name as the spare newname when it is its only link. */
static int
spare_give_as(struct kind *k, int dirfd, const char *name, const char *newname)
{
	struct stat sb;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(sb.st_mode) || sb.st_nlink != 1 ||
	    strlen(newname) >= SPARE_NAME_MAX || !spare_room(k))
		return -1;
	if (renameat(dirfd, name, k->fd, newname) < 0)
		return -1;
	if (sb.st_size > SPARE_KEEP_BYTES)
		spare_empty(k->fd, newname);
	return 0;
}

int
spare_give(int msgdir, const char *name)
{
	return spare_give_as(&content_kind, msgdir, name, name);
}

int
spare_give_envelope(int newdir, const char *queue, const char *name)
{
	char spare[SPARE_NAME_MAX];

	if (snprintf(spare, sizeof spare, "%s,%s", queue, name) >=
	    (int)sizeof spare || strchr(queue, '/') != NULL)
		return -1;
	return spare_give_as(&envelope_kind, newdir, name, spare);
}

static void
spare_shuffle(struct kind *k)
{
	char t[SPARE_NAME_MAX];
	int i, j;

	for (i = k->n - 1; i > 0; i--) {
		j = rand_r(&k->seed) % (i + 1);
		memcpy(t, k->names[i], sizeof t);
		memcpy(k->names[i], k->names[j], sizeof t);
		memcpy(k->names[j], t, sizeof t);
	}
}

/* Makes the departure of each listed envelope spare durable: one fsync
 * of spool/QUEUE/new per queue named (QUEUE,NAME). 0 or -1. */
static int
spare_sync_sources(const struct kind *k)
{
	char queues[SPARE_BATCH][SPARE_NAME_MAX], path[PATH_MAX];
	int i, nq = 0, fd, rc = 0;
	size_t len;

	for (i = 0; i < k->n; i++) {
		len = strcspn(k->names[i], ",");
		if (k->names[i][len] != ',')
			return -1;
		snprintf(queues[nq], sizeof queues[nq], "%.*s", (int)len,
		    k->names[i]);
		if (!spare_seen(queues, nq, queues[nq]))
			nq++;
	}
	for (i = 0; i < nq && rc == 0; i++) {
		if (root_path(path, sizeof path, "spool/%s/new", queues[i]) < 0 ||
		    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return -1;
		rc = spool_fsync_dir(fd);
		close(fd);
	}
	return rc;
}

/* Lists the spares of kind k and makes them safe to write: fsyncs
 * spool/msg (msgdir) for content, each source queue's new/ for
 * envelopes. 0, or -1 (none to take now). */
static int
spare_refill(struct kind *k, int msgdir)
{
	long long now = clock_ms();
	long start;

	if (now < k->next_ms)
		return -1;
	if (k->seed == 0)	/* forked takers must not share an order */
		k->seed = (unsigned)getpid() ^ (unsigned)now;
	start = (long)(((unsigned long)rand_r(&k->seed) << 31 ^
	    (unsigned long)rand_r(&k->seed)) & LONG_MAX);
	if ((k->n = spare_list(k, k->names, SPARE_BATCH, start)) < SPARE_MIN ||
	    (msgdir >= 0 ? spool_fsync_dir(msgdir) : spare_sync_sources(k)) < 0) {
		k->n = 0;
		k->next_ms = now + SPARE_WAIT_MS;
		return -1;
	}
	spare_shuffle(k);
	return 0;
}

/* Opens the taken file (emptied unless keep); -1 (and the name is
 * dropped again) if it has another link. */
static int
spare_open(int dirfd, const char *name, int keep)
{
	struct stat sb;
	int fd = recycle_open_sole(dirfd, name, &sb);

	if (fd < 0)
		return -1;
	if (!keep && ftruncate(fd, 0) < 0) {
		close(fd);
		unlinkat(dirfd, name, 0);
		return -1;
	}
	return fd;
}

static int
spare_take_as(struct kind *k, int msgdir, int dirfd, const char *name,
    int keep)
{
	int fd;

	for (;;) {
		if (k->n == 0 && spare_refill(k, msgdir) < 0)
			return -1;
		k->n--;
		if (renameat2(k->fd, k->names[k->n], dirfd, name,
		    RENAME_NOREPLACE) < 0) {
			if (errno == ENOENT)
				continue;	/* another taker was first */
			return -1;
		}
		if ((fd = spare_open(dirfd, name, keep)) >= 0)
			return fd;
	}
}

int
spare_take(int msgdir, const char *name, int keep)
{
	return spare_take_as(&content_kind, msgdir, msgdir, name, keep);
}

int
spare_take_envelope(int tmpdir, const char *name, int keep)
{
	return spare_take_as(&envelope_kind, -1, tmpdir, name, keep);
}
