/*
 * spare: content files kept for reuse across programs (see spare.h).
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

#include "root.h"
#include "spare.h"
#include "spool.h"

/* SPARE_MAX files at most (a flush of a big queue with no new mail
 * would otherwise keep every inode it freed); a taker lists up to
 * SPARE_BATCH names at a time, uses a listing only when it has at least
 * SPARE_MIN (the fsync that makes them safe is shared by that many
 * messages), and looks again only after SPARE_WAIT_MS. */
enum { SPARE_MAX = 2048, SPARE_BATCH = 64, SPARE_MIN = 8, SPARE_WAIT_MS = 100,
    SPARE_COUNT_SEC = 10, SPARE_NAME_MAX = 128 };

static int spare_fd = -1;

/* spool/spare/msg, made when missing. */
static int
spare_dir(void)
{
	char path[PATH_MAX];

	if (spare_fd >= 0)
		return spare_fd;
	if (root_path(path, sizeof path, "spool/spare") < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST) ||
	    root_path(path, sizeof path, "spool/spare/msg") < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		return -1;
	spare_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return spare_fd;
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
spare_list(char (*v)[SPARE_NAME_MAX], int max, long start)
{
	DIR *dir;
	int fd, n;

	if (spare_dir() < 0 || (fd = dup(spare_fd)) < 0)
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
spare_room(void)
{
	static time_t counted;
	static int count;
	time_t now = time(NULL);

	if (now - counted >= SPARE_COUNT_SEC || count >= SPARE_MAX) {
		if ((count = spare_list(NULL, SPARE_MAX, 0)) < 0)
			return 0;
		counted = now;
	}
	if (count >= SPARE_MAX)
		return 0;
	count++;
	return 1;
}

int
spare_give(int msgdir, const char *name)
{
	struct stat sb;

	if (fstatat(msgdir, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(sb.st_mode) || sb.st_nlink != 1 ||
	    strlen(name) >= SPARE_NAME_MAX || !spare_room())
		return -1;
	return renameat(msgdir, name, spare_fd, name);
}

/* The names a taker may use: listed, then made safe by one fsync of
 * spool/msg (each left it before the listing). Their order is shuffled
 * so that takers working from the same directory rarely collide. */
static struct {
	char names[SPARE_BATCH][SPARE_NAME_MAX];
	int n;
	long long next_ms;	/* monotonic: no listing before */
	unsigned seed;
} have;

static long long
spare_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int
spare_refill(int msgdir)
{
	long long now = spare_now_ms();
	char t[SPARE_NAME_MAX];
	long start;
	int i, j;

	if (now < have.next_ms)
		return -1;
	if (have.seed == 0)	/* forked takers must not share an order */
		have.seed = (unsigned)getpid() ^ (unsigned)now;
	start = (long)(((unsigned long)rand_r(&have.seed) << 31 ^
	    (unsigned long)rand_r(&have.seed)) & LONG_MAX);
	if ((have.n = spare_list(have.names, SPARE_BATCH, start)) < SPARE_MIN ||
	    spool_fsync_dir(msgdir) < 0) {
		have.n = 0;
		have.next_ms = now + SPARE_WAIT_MS;
		return -1;
	}
	for (i = have.n - 1; i > 0; i--) {
		j = rand_r(&have.seed) % (i + 1);
		memcpy(t, have.names[i], sizeof t);
		memcpy(have.names[i], have.names[j], sizeof t);
		memcpy(have.names[j], t, sizeof t);
	}
	return 0;
}

/* Opens the taken file; -1 (and the name is dropped again) if it has
 * another link. */
static int
spare_open(int msgdir, const char *name)
{
	struct stat sb;
	int fd = openat(msgdir, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	/* checked before a byte of it changes */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		close(fd);
		unlinkat(msgdir, name, 0);
		return -1;
	}
	if (ftruncate(fd, 0) < 0) {
		close(fd);
		unlinkat(msgdir, name, 0);
		return -1;
	}
	return fd;
}

int
spare_take(int msgdir, const char *name)
{
	int fd;

	for (;;) {
		if (have.n == 0 && spare_refill(msgdir) < 0)
			return -1;
		have.n--;
		if (renameat2(spare_fd, have.names[have.n], msgdir, name,
		    RENAME_NOREPLACE) < 0) {
			if (errno == ENOENT)
				continue;	/* another taker was first */
			return -1;
		}
		if ((fd = spare_open(msgdir, name)) >= 0)
			return fd;
	}
}
