#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recycle.h"
#include "root.h"

/* Files kept, available and pending together: enough for two group
 * commits of a busy stage. */
/* When none is available but POOL_BATCH are pending, recycle_take settles
 * them all by one fsync of their directories (a create costs far more);
 * with fewer it creates, and the pool grows. */
enum { POOL_MAX = 128, POOL_BATCH = 8, POOL_DIRS = 8, POOL_TRIES = 16 };

struct pool_entry {
	char name[RECYCLE_NAME_MAX];
	unsigned gen;		/* pending: given in this generation */
	int fromdir;		/* pending: to be fsync'ed before reuse */
};

static struct {
	int dir;		/* -1: no pool in this process */
	pid_t pid;		/* ours, in the names we make */
	struct pool_entry avail[POOL_MAX], pend[POOL_MAX];
	size_t navail, npend;
	unsigned gen;
	unsigned long seq;
	int dirs[POOL_DIRS];
} pool = { .dir = -1 };

/* A forked child shares the directory but not our lists: it must not
 * take files the parent may take too. */
static void
recycle_forget(void)
{
	pool.dir = -1;
	pool.navail = pool.npend = 0;
}

static int
is_recycle_name(const char *name)
{
	return strncmp(name, ".recycle.", 9) == 0;
}

static void
adopt(const char *name)
{
	size_t len = strlen(name);

	if (pool.navail == POOL_MAX || len >= RECYCLE_NAME_MAX) {
		unlinkat(pool.dir, name, 0);
		return;
	}
	memcpy(pool.avail[pool.navail++].name, name, len + 1);
}

int
recycle_open(int dirfd)
{
	static int registered;
	struct dirent *d;
	DIR *dp;
	int fd;

	if (!registered && pthread_atfork(NULL, NULL, recycle_forget) != 0)
		return -1;
	registered = 1;
	recycle_forget();
	/* one process per pool: a second copy of the stage (a manual -1 run
	 * beside the daemon) would take the same files */
	if (flock(dirfd, LOCK_EX | LOCK_NB) < 0)
		return -1;
	if ((fd = dup(dirfd)) < 0)
		return -1;
	if ((dp = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	pool.dir = dirfd;
	pool.pid = getpid();
	rewinddir(dp);
	while ((d = readdir(dp)) != NULL)
		if (is_recycle_name(d->d_name))
			adopt(d->d_name);
	closedir(dp);
	/* files left by an earlier run may have been given without their
	 * old folder reaching the disk since: one flush of the file system
	 * makes every such departure durable before any of them is written */
	if (pool.navail > 0 && syncfs(dirfd) < 0)
		pool.navail = 0;
	return 0;
}

/* Not the queue's tmp/: there the receiving programs create files, and a
 * create holds the directory's lock for as long as ext4 searches for a
 * free inode, which our renames would wait for. */
int
recycle_open_queue(const char *queue)
{
	char path[PATH_MAX];
	int fd;

	if (root_path(path, sizeof path, "spool/recycle") < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST) ||
	    root_path(path, sizeof path, "spool/recycle/%s", queue) < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		return -1;
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if (recycle_open(fd) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return 0;
}

int
recycle_dir(void)
{
	return pool.dir;
}

static void
fresh_name(char name[RECYCLE_NAME_MAX])
{
	snprintf(name, RECYCLE_NAME_MAX, ".recycle.%ld.%lu", (long)pool.pid,
	    ++pool.seq);
}

/* Makes the pending files available: fsyncs the directories they left. */
static void
settle_now(void)
{
	const int *dirs;
	size_t i, n;
	unsigned seal = recycle_seal(&dirs, &n);

	for (i = 0; i < n; i++)
		if (fsync(dirs[i]) < 0)
			recycle_hold_dir(dirs[i]);
	recycle_settle(seal);
}

int
recycle_take(char name[RECYCLE_NAME_MAX], off_t *size)
{
	struct stat st;
	int fd;

	if (pool.dir >= 0 && pool.navail == 0 && pool.npend >= POOL_BATCH)
		settle_now();

	while (pool.dir >= 0 && pool.navail > 0) {
		snprintf(name, RECYCLE_NAME_MAX, "%s", pool.avail[--pool.navail].name);
		if ((fd = recycle_open_sole(pool.dir, name, &st)) >= 0) {
			*size = st.st_size;
			return fd;
		}
	}
	return -1;
}

int
recycle_open_sole(int dirfd, const char *name, struct stat *st)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	/* after a crash and fsck a stale pool name may share its file with
	 * an envelope in a queue: never write into such a file */
	if (fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_nlink == 1)
		return fd;
	close(fd);
	unlinkat(dirfd, name, 0);
	return -1;
}

int
recycle_create(char name[RECYCLE_NAME_MAX])
{
	int fd, i;

	if (pool.dir < 0) {
		errno = ENOENT;
		return -1;
	}
	for (i = 0; i < POOL_TRIES; i++) {
		fresh_name(name);
		fd = openat(pool.dir, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

static int
is_full(void)
{
	return pool.navail + pool.npend >= POOL_MAX;
}

static void
add_pending(int fromdir, const char *name)
{
	struct pool_entry *p = &pool.pend[pool.npend++];

	snprintf(p->name, RECYCLE_NAME_MAX, "%s", name);
	p->gen = pool.gen;
	p->fromdir = fromdir;
}

int
recycle_give(int fromdir, const char *name)
{
	char fresh[RECYCLE_NAME_MAX];
	int i;

	if (pool.dir < 0 || is_full())
		return -1;
	for (i = 0; i < POOL_TRIES; i++) {
		fresh_name(fresh);
		if (renameat2(fromdir, name, pool.dir, fresh, RENAME_NOREPLACE) == 0) {
			add_pending(fromdir, fresh);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

void
recycle_return(int fromdir, const char *name)
{
	if (pool.dir < 0 || is_full()) {
		unlinkat(pool.dir, name, 0);
		return;
	}
	if (fromdir < 0)	/* never shown anywhere: reusable now */
		snprintf(pool.avail[pool.navail++].name, RECYCLE_NAME_MAX, "%s",
		    name);
	else
		add_pending(fromdir, name);
}

void
recycle_drop(const char *name, int unlink_it)
{
	if (unlink_it && pool.dir >= 0)
		unlinkat(pool.dir, name, 0);
}

unsigned
recycle_seal(const int **dirs, size_t *ndirs)
{
	size_t i, j, n = 0;

	for (i = 0; i < pool.npend; i++) {
		for (j = 0; j < n && pool.dirs[j] != pool.pend[i].fromdir; j++)
			;
		if (j < n)
			continue;
		if (n < POOL_DIRS)
			pool.dirs[n++] = pool.pend[i].fromdir;
		else	/* no room: waits for the next commit */
			pool.pend[i].gen = pool.gen + 1;
	}
	*dirs = pool.dirs;
	*ndirs = n;
	return pool.gen++;
}

void
recycle_hold_dir(int fromdir)
{
	size_t i;

	for (i = 0; i < pool.npend; i++)
		if (pool.pend[i].fromdir == fromdir)
			pool.pend[i].gen = pool.gen;	/* after the seal */
}

void
recycle_settle(unsigned seal)
{
	size_t i, kept = 0;

	for (i = 0; i < pool.npend; i++) {
		if ((int)(pool.pend[i].gen - seal) <= 0 && pool.navail < POOL_MAX)
			pool.avail[pool.navail++] = pool.pend[i];
		else
			pool.pend[kept++] = pool.pend[i];
	}
	pool.npend = kept;
}
