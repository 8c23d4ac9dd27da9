#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "conf.h"
#include "content.h"
#include "log.h"
#include "recycle.h"
#include "spare.h"
#include "priv.h"
#include "stage.h"

enum { STAGE_NICE = -5 };

static void batch_commit(void);
static void stage_done_now(struct stage *st, const char *name,
    int keep_content);

static void
on_stop(int sig)
{
	(void)sig;
	spool_stop_requested = 1;
}

void
stage_start(struct stage *st, const char *name, const char *queue,
    int argc, char **argv)
{
	struct sigaction sa;
	sigset_t block;
	int i;

	memset(st, 0, sizeof *st);
	st->name = name;
	log_init(name);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-1") == 0)
			st->once = 1;
		else
			die(EXIT_PERM, 0, "usage: bh-%s [-1]", name);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	/* one queue stage serves what dozens of SMTP sessions bring in: under
	 * a CPU shortage it must not get only its 1/N share, or the queue
	 * grows while sessions keep accepting (best effort: needs root) */
	setpriority(PRIO_PROCESS, 0, STAGE_NICE);
	priv_drop();	/* before the spool: never handle mail as root */
	if (spool_open(&st->in, queue) < 0)
		die(EXIT_TEMP, errno, "unable to open spool/%s", queue);
	/* without a pool, files are created and unlinked; a second copy of
	 * the stage (bh-local -1 beside the daemon) runs so, quietly */
	if (recycle_open_queue(queue) < 0 && errno != EWOULDBLOCK)
		log_event("warning", "msg=\"no file pool\" error=%s",
		    log_quote(strerror(errno)));
}

int
stage_next(struct stage *st, char *name, size_t cap)
{
	int rc;

	/* commit before new/ is listed again or we wait: the inputs of this
	 * batch are still in new/ until then */
	if (st->in.pos >= st->in.nnames || spool_stop_requested)
		batch_commit();
	rc = spool_next(&st->in, name, cap, st->once);

	if (rc < 0)
		die(EXIT_TEMP, errno, "unable to read spool/%s", st->in.queue);
	return rc;
}

/* The lock slot of NAME, or a free one (create), or NULL. */
static int *
lock_slot(struct stage *st, const char *name, int create)
{
	size_t i;

	for (i = 0; i < STAGE_LOCKS; i++)
		if (st->locks[i].fd > 0 && strcmp(st->locks[i].name, name) == 0)
			return &st->locks[i].fd;
	for (i = 0; create && i < STAGE_LOCKS; i++)
		if (st->locks[i].fd <= 0) {
			snprintf(st->locks[i].name, sizeof st->locks[i].name, "%s", name);
			return &st->locks[i].fd;
		}
	return NULL;
}

static void
unlock(struct stage *st, const char *name)
{
	int *fd = lock_slot(st, name, 0);

	if (fd != NULL) {
		close(*fd);
		*fd = 0;
	}
}

/* Reads the locked file fd (size bytes) into st->last and parses it. */
static int
read_locked(struct stage *st, int fd, off_t size, const char *name,
    struct envelope *e)
{
	size_t got = 0;
	ssize_t n;
	char *text;

	if (size > ENVELOPE_MAX) {
		errno = EFBIG;
		return -1;
	}
	if ((text = realloc(st->last.text, size + 1)) == NULL)
		return -1;
	st->last.text = text;
	st->last.name[0] = '\0';
	while (got < (size_t)size &&
	    (n = pread(fd, text + got, size - got, got)) > 0)
		got += n;
	if (envelope_parse(e, text, got) < 0)
		return -1;
	st->last.len = got;
	snprintf(st->last.name, sizeof st->last.name, "%s", name);
	return 0;
}

int
stage_read(struct stage *st, const char *name, struct envelope *e)
{
	struct stat held;
	int *slot, fd, rc, err;

	conf_mark();	/* a new configuration applies from this message on */
	unlock(st, name);
	if ((fd = spool_lock_stat(&st->in, name, &held)) < 0)
		return -1;
	/* the locked descriptor is the envelope: read it, not the name again */
	rc = read_locked(st, fd, held.st_size, name, e);
	err = errno;
	if ((slot = lock_slot(st, name, 1)) != NULL)
		*slot = fd;
	else
		close(fd);	/* more inputs open than slots: go on unlocked */
	if (rc < 0) {
		unlock(st, name);
		errno = err;
		return -1;
	}
	return 0;
}

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
static void
batch_commit(void)
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
				unlock(batch.st, p->name);
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
static int
batch_put(int tmpdir, int indir, int dstdir, const char *name,
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
		batch_commit();
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

int
stage_pass(const struct spool *next, const char *name, const char *newname,
    const struct envelope *e)
{
	struct buf b = BUF_INIT;
	int rc, err;

	if (strcmp(name, newname) != 0) {
		if (content_link_lazy(name, newname) < 0)
			return -1;
		batch.links = 1;
	}
	if (envelope_format(e, &b) < 0)
		return -1;
	rc = batch_put(next->tmpfd, -1, next->newfd, newname, &b);
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

/* stage_pass as it was: durable when it returns (for stage_report). */
static int
pass_now(const struct spool *next, const char *name, const char *newname,
    const struct envelope *e)
{
	struct buf b = BUF_INIT;
	int rc, err;

	if (strcmp(name, newname) != 0 && content_link(name, newname) < 0)
		return -1;
	if (envelope_format(e, &b) < 0)
		return -1;
	rc = spool_handover(next, newname, b.data, b.len);
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

static int
is_unchanged(const struct stage *st, const char *name, const struct buf *b)
{
	return strcmp(st->last.name, name) == 0 && b->len == st->last.len &&
	    memcmp(b->data, st->last.text, b->len) == 0;
}

int
stage_move(struct stage *st, const struct spool *next, const char *name,
    const struct envelope *e)
{
	struct buf b = BUF_INIT;
	int rc, err;

	/* the input is rewritten in place, then renamed into the next queue:
	 * the envelope is in one queue or the other, never both. Under our
	 * lock bh-queue cannot take it; without one, look first. */
	if (lock_slot(st, name, 0) == NULL &&
	    faccessat(st->in.newfd, name, F_OK, 0) < 0)
		return -1;	/* ENOENT: taken by bh-queue meanwhile */
	if (envelope_format(e, &b) < 0)
		return -1;
	batch.st = st;
	rc = batch_put(st->in.tmpfd, st->in.newfd, next->newfd, name,
	    is_unchanged(st, name, &b) ? NULL : &b);
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

int
stage_defer(struct stage *st, const char *name, const struct envelope *e,
    time_t when)
{
	struct buf b = BUF_INIT;
	int rc, err;

	batch_commit();	/* what it says was delivered is on disk first */
	if (envelope_format(e, &b) < 0)
		return -1;
	rc = spool_put(&st->in, "retry", name, b.data, b.len, when);
	err = errno;
	buf_free(&b);
	if (rc == 0) {
		if (recycle_give(st->in.newfd, name) < 0)
			spool_remove(&st->in, "new", name);
		unlock(st, name);
	}
	errno = err;
	return rc;
}

static void
stage_done_now(struct stage *st, const char *name, int keep_content)
{
	/* envelope first: a crash in between leaves an unreferenced link,
	 * which is garbage, never an envelope without its content */
	if (recycle_give(st->in.newfd, name) < 0 &&
	    spare_give_envelope(st->in.newfd, st->in.queue, name) < 0 &&
	    spool_remove(&st->in, "new", name) < 0)
		log_event("warning", "id=%s msg=\"unable to remove envelope\"",
		    name);
	unlock(st, name);
	if (!keep_content)
		content_unlink(name);
}

void
stage_done(struct stage *st, const char *name, int keep_content)
{
	if (!batch_pending() || strlen(name) >= sizeof batch.done[0].name) {
		stage_done_now(st, name, keep_content);
		return;
	}
	if (batch.ndone == sizeof batch.done / sizeof batch.done[0])
		batch_commit();
	batch.st = st;
	snprintf(batch.done[batch.ndone].name, sizeof batch.done[0].name, "%s",
	    name);
	batch.done[batch.ndone++].keep = keep_content;
}

int
stage_child_name(char *out, size_t cap, const char *name, const char *suffix)
{
	int n = snprintf(out, cap, "%s.%s", name, suffix);

	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
stage_report(const char *name, const struct envelope *e, const char *kind,
    int (*pick)(const struct rcpt *))
{
	static struct spool ndr;
	static int is_open;
	struct envelope rec = ENVELOPE_INIT;
	struct timeval tv;
	char suffix[48], child[256];
	size_t i;
	int rc = -1, err;

	if (!is_open) {
		if (spool_open(&ndr, "ndr") < 0)
			return -1;
		is_open = 1;
	}
	if (envelope_copy_head(&rec, e) < 0 || envelope_set(&rec, "kind", kind) < 0)
		goto out;
	for (i = 0; i < e->nrcpt; i++)
		if (pick(&e->rcpt[i]) && envelope_copy_rcpt(&rec, &e->rcpt[i]) < 0)
			goto out;
	if (rec.nrcpt == 0) {
		rc = 0;
		goto out;
	}
	batch_commit();	/* a report never tells of what is not on disk */
	gettimeofday(&tv, NULL);
	snprintf(suffix, sizeof suffix, "%c%lld%06ld", kind[0] & ~0x20,
	    (long long)tv.tv_sec, (long)tv.tv_usec);
	if (stage_child_name(child, sizeof child, name, suffix) < 0)
		goto out;
	rc = pass_now(&ndr, name, child, &rec);
out:
	err = errno;
	envelope_free(&rec);
	errno = err;
	return rc;
}
