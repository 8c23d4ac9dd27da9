/*
 * commit: the group commit of lib/stage (see commit.h): the batch of
 * pending outputs and finished inputs, and what makes it durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content.h"
#include "log.h"
#include "recycle.h"
#include "commit.h"

/*
 * Group commit. stage_pass and stage_move write their envelope at once (into
 * a pool file, or a new file in tmp/), but its fsync, the rename into new/
 * and the directory fsyncs wait until the stage has no more input at hand
 * (stage_next), a stop, or STAGE_BATCH outputs: then all of them are done
 * together, so one fsync of each directory covers every message of the
 * batch. Inputs finished meanwhile (stage_done) are removed only after that
 * commit, so an input still leaves its queue only once its outputs are on
 * disk: a crash in between leaves it where it was, to be processed again
 * (at worst twice). Outputs become visible in the next queue only once
 * their file is fsync'ed, as with spool_put. stage_report stays immediate:
 * bh-remote's workers report and exit without ever calling stage_next.
 */
enum { STAGE_BATCH = 32, STAGE_DIRS = 8 };

struct pending {
	int fd;			/* the written file, to be fsync'ed; -1 for
				 * a move of the unchanged input */
	int filedir;		/* where it is written: pool or tmp/ */
	char file[256];		/* its name there */
	int is_pooled;		/* file is a pool file */
	int indir;		/* stage_move: our new/, else -1 */
	int dstdir;		/* where it ends as NAME */
	char name[256];
};

static struct {
	struct pending out[STAGE_BATCH];
	size_t nout;
	struct {
		char name[256];
		int keep;
	} done[STAGE_BATCH];
	size_t ndone;
	struct {
		int fd;		/* dup'ed */
		dev_t dev;
		ino_t ino;
	} dirs[STAGE_DIRS];	/* directories to fsync */
	size_t ndirs;
	int links;		/* content links made without a fsync */
	struct stage *st;	/* whose inputs wait in done[] */
} batch;

static int
batch_pending(void)
{
	return batch.nout > 0 || batch.ndirs > 0 || batch.links;
}

/* Remembers a directory to fsync at the commit (once per directory). */
static int
batch_dir(int dirfd)
{
	struct stat a;
	size_t i;
	int fd;

	if (fstat(dirfd, &a) < 0)
		return -1;
	for (i = 0; i < batch.ndirs; i++)
		if (a.st_dev == batch.dirs[i].dev && a.st_ino == batch.dirs[i].ino)
			return 0;
	if (batch.ndirs == STAGE_DIRS)
		return fsync(dirfd);	/* no room: now, as before */
	if ((fd = dup(dirfd)) < 0)
		return -1;
	batch.dirs[batch.ndirs].fd = fd;
	batch.dirs[batch.ndirs].dev = a.st_dev;
	batch.dirs[batch.ndirs++].ino = a.st_ino;
	return 0;
}

int
stage_sync_dir(int dirfd)
{
	return batch_dir(dirfd);
}

/* stage_move of one output at the commit: the written file takes the
 * input's place in new/ (exchanged: the old file goes to the pool), then
 * moves on. 0, or -1 when bh-queue took the input (nothing to do). */
static int
commit_move(struct pending *p)
{
	if (p->fd >= 0 && p->is_pooled) {
		if (renameat2(p->filedir, p->file, p->indir, p->name,
		    RENAME_EXCHANGE) < 0) {
			if (errno != ENOENT)
				die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
			recycle_return(-1, p->file);	/* taken by bh-queue */
			return -1;
		}
		recycle_return(p->indir, p->file);
	} else if (p->fd >= 0 &&
	    renameat(p->filedir, p->file, p->indir, p->name) < 0)
		die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
	if (batch_dir(p->indir) < 0)
		die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
	if (renameat(p->indir, p->name, p->dstdir, p->name) < 0) {
		if (errno != ENOENT)	/* taken by bh-queue */
			die(EXIT_TEMP, errno, "unable to move %s", p->name);
		return -1;
	}
	if (batch_dir(p->dstdir) < 0)
		die(EXIT_TEMP, errno, "unable to move %s", p->name);
	return 0;
}

/* stage_pass of one output at the commit. */
static void
commit_pass(struct pending *p)
{
	if (renameat(p->filedir, p->file, p->dstdir, p->name) < 0)
		die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
	if (p->is_pooled)
		recycle_drop(p->file, 0);
	if (batch_dir(p->dstdir) < 0)
		die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
}

static int
batch_has_dir(int dirfd)
{
	struct stat a;
	size_t i;

	if (fstat(dirfd, &a) < 0)
		return 0;
	for (i = 0; i < batch.ndirs; i++)
		if (a.st_dev == batch.dirs[i].dev && a.st_ino == batch.dirs[i].ino)
			return 1;
	return 0;
}

/* Files the pool got wait for the fsync of the directories they left:
 * where this commit fsyncs such a directory anyway they are settled with
 * it; the others (bh-local's input queue) wait until recycle_take needs
 * them, to fsync that directory once for many files. */
static unsigned
batch_pool_dirs(void)
{
	const int *dirs;
	size_t i, n;
	unsigned seal = recycle_seal(&dirs, &n);

	for (i = 0; i < n; i++)
		if (!batch_has_dir(dirs[i]))
			recycle_hold_dir(dirs[i]);
	return seal;
}

/* Makes the batch durable, then removes the inputs finished meanwhile.
 * A failure here leaves every input in place and dies 111: the stage
 * starts again and redoes them. */
void
commit_batch(void)
{
	struct pending *p;
	unsigned seal;
	size_t i;

	if (!batch_pending() && batch.ndone == 0)
		return;
	if (batch.links && content_sync() < 0)
		die(EXIT_TEMP, errno, "unable to fsync spool/msg");
	batch.links = 0;
	/* start every write first: the fsyncs then share the device's work */
	for (i = 0; i < batch.nout && batch.nout > 1; i++)
		if (batch.out[i].fd >= 0)
			sync_file_range(batch.out[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < batch.nout; i++) {
		p = &batch.out[i];
		if (p->fd >= 0 && (fsync(p->fd) < 0 || close(p->fd) < 0))
			die(EXIT_TEMP, errno, "unable to write %s", p->name);
		if (p->indir < 0)
			commit_pass(p);
		else {
			commit_move(p);
			if (batch.st != NULL)
				stage_unlock(batch.st, p->name);
		}
	}
	batch.nout = 0;
	seal = batch_pool_dirs();
	for (i = 0; i < batch.ndirs; i++) {
		if (fsync(batch.dirs[i].fd) < 0)
			die(EXIT_TEMP, errno, "unable to fsync a spool directory");
		close(batch.dirs[i].fd);
	}
	batch.ndirs = 0;
	recycle_settle(seal);
	for (i = 0; i < batch.ndone; i++)
		stage_done_now(batch.st, batch.done[i].name, batch.done[i].keep);
	batch.ndone = 0;
}

/* Opens the file an output is written into: a pool file (its old text to
 * be cut at *old), else a new tmpdir/NAME. */
static int
output_open(struct pending *p, int tmpdir, const char *name, off_t *old)
{
	char file[RECYCLE_NAME_MAX];
	int fd;

	*old = 0;
	if ((fd = recycle_take(file, old)) >= 0 || (fd = recycle_create(file)) >= 0) {
		p->is_pooled = 1;
		p->filedir = recycle_dir();
		snprintf(p->file, sizeof p->file, "%s", file);
		return fd;
	}
	/* O_TRUNC: a crashed earlier attempt may have left tmp/NAME behind */
	p->is_pooled = 0;
	p->filedir = tmpdir;
	snprintf(p->file, sizeof p->file, "%s", name);
	return openat(tmpdir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
}

/* Writes the text into the output's file and queues the rest for the
 * commit (text NULL: an unchanged input only moves). */
int
commit_put(int tmpdir, int indir, int dstdir, const char *name,
    const struct buf *text)
{
	struct pending *p;
	off_t old;
	int fd, err;

	if (strlen(name) >= sizeof p->name) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (batch.nout == STAGE_BATCH)
		commit_batch();
	p = &batch.out[batch.nout];
	p->fd = -1;
	p->is_pooled = 0;
	if (text != NULL) {
		if ((fd = output_open(p, tmpdir, name, &old)) < 0)
			return -1;
		if (pwrite(fd, text->data, text->len, 0) != (ssize_t)text->len ||
		    (old > (off_t)text->len && ftruncate(fd, text->len) < 0)) {
			err = errno ? errno : EIO;
			close(fd);
			if (p->is_pooled)
				recycle_drop(p->file, 1);
			else
				unlinkat(tmpdir, name, 0);
			errno = err;
			return -1;
		}
		p->fd = fd;
	}
	p->indir = indir;
	p->dstdir = dstdir;
	snprintf(p->name, sizeof p->name, "%s", name);
	batch.nout++;
	return 0;
}

void
commit_link(void)
{
	batch.links = 1;
}

void
commit_stage(struct stage *st)
{
	batch.st = st;
}

void
stage_done(struct stage *st, const char *name, int keep_content)
{
	if (!batch_pending() || strlen(name) >= sizeof batch.done[0].name) {
		stage_done_now(st, name, keep_content);
		return;
	}
	if (batch.ndone == sizeof batch.done / sizeof batch.done[0])
		commit_batch();
	batch.st = st;
	snprintf(batch.done[batch.ndone].name, sizeof batch.done[0].name, "%s",
	    name);
	batch.done[batch.ndone++].keep = keep_content;
}
