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

#include "content.h"
#include "log.h"
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

int
stage_read(struct stage *st, const char *name, struct envelope *e)
{
	int *slot, fd;

	unlock(st, name);
	if ((fd = spool_lock(&st->in, name)) < 0)
		return -1;
	if ((slot = lock_slot(st, name, 1)) != NULL)
		*slot = fd;
	else
		close(fd);	/* more inputs open than slots: go on unlocked */
	if (envelope_read(e, st->in.newfd, name) < 0) {
		int err = errno;
		unlock(st, name);
		errno = err;
		return -1;
	}
	return 0;
}

/*
 * Group commit. stage_pass and stage_move write their envelope into tmp/ at
 * once, but its fsync, the rename into new/ and the directory fsyncs wait
 * until the stage has no more input at hand (stage_next), a stop, or
 * STAGE_BATCH outputs: then all of them are done together, so one fsync of
 * each directory covers every message of the batch. Inputs finished
 * meanwhile (stage_done) are removed only after that commit, so an input
 * still leaves its queue only once its outputs are on disk: a crash in
 * between leaves it where it was, to be processed again (at worst twice).
 * Outputs become visible in the next queue only once their file is
 * fsync'ed, as with spool_put. stage_report stays immediate: bh-remote's
 * workers report and exit without ever calling stage_next.
 */
enum { STAGE_BATCH = 32, STAGE_DIRS = 8 };

struct pending {
	int fd;			/* the written tmp/NAME, to be fsync'ed */
	int tmpdir, dstdir;	/* renamed tmpdir/NAME -> dstdir/NAME */
	int movedir;		/* stage_move: then dstdir/NAME -> movedir/NAME */
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
	int dirs[STAGE_DIRS];	/* directories to fsync (dup'ed fds) */
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
	struct stat a, b;
	size_t i;
	int fd;

	if (fstat(dirfd, &a) < 0)
		return -1;
	for (i = 0; i < batch.ndirs; i++)
		if (fstat(batch.dirs[i], &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return 0;
	if (batch.ndirs == STAGE_DIRS)
		return fsync(dirfd);	/* no room: now, as before */
	if ((fd = dup(dirfd)) < 0)
		return -1;
	batch.dirs[batch.ndirs++] = fd;
	return 0;
}

int
stage_sync_dir(int dirfd)
{
	return batch_dir(dirfd);
}

/* Makes the batch durable, then removes the inputs finished meanwhile.
 * A failure here leaves every input in place and dies 111: the stage
 * starts again and redoes them. */
static void
batch_commit(void)
{
	struct pending *p;
	size_t i;

	if (!batch_pending() && batch.ndone == 0)
		return;
	if (batch.links && content_sync() < 0)
		die(EXIT_TEMP, errno, "unable to fsync spool/msg");
	batch.links = 0;
	/* start every write first: the fsyncs then share journal commits */
	for (i = 0; i < batch.nout; i++)
		sync_file_range(batch.out[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < batch.nout; i++) {
		p = &batch.out[i];
		if (fsync(p->fd) < 0 || close(p->fd) < 0)
			die(EXIT_TEMP, errno, "unable to write %s", p->name);
		if (renameat(p->tmpdir, p->name, p->dstdir, p->name) < 0)
			die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
		if (batch_dir(p->dstdir) < 0)
			die(EXIT_TEMP, errno, "unable to hand over %s", p->name);
		if (p->movedir >= 0) {
			if (renameat(p->dstdir, p->name, p->movedir, p->name) < 0) {
				if (errno != ENOENT)	/* taken by bh-queue */
					die(EXIT_TEMP, errno, "unable to move %s",
					    p->name);
			} else if (batch_dir(p->movedir) < 0)
				die(EXIT_TEMP, errno, "unable to move %s", p->name);
			if (batch.st != NULL)
				unlock(batch.st, p->name);
		}
	}
	batch.nout = 0;
	for (i = 0; i < batch.ndirs; i++) {
		if (fsync(batch.dirs[i]) < 0)
			die(EXIT_TEMP, errno, "unable to fsync a spool directory");
		close(batch.dirs[i]);
	}
	batch.ndirs = 0;
	for (i = 0; i < batch.ndone; i++)
		stage_done_now(batch.st, batch.done[i].name, batch.done[i].keep);
	batch.ndone = 0;
}

/* Writes e into QUEUE/tmp/NAME of `to` and queues the rest for the commit. */
static int
batch_put(int tmpdir, int dstdir, int movedir, const char *name,
    const struct envelope *e)
{
	struct buf b = BUF_INIT;
	struct pending *p;
	int fd, err;

	if (strlen(name) >= sizeof p->name) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (batch.nout == STAGE_BATCH)
		batch_commit();
	if (envelope_format(e, &b) < 0)
		return -1;
	/* O_TRUNC: a crashed earlier attempt may have left tmp/NAME behind */
	fd = openat(tmpdir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, b.data, b.len) < 0) {
		err = errno;
		if (fd >= 0) {
			close(fd);
			unlinkat(tmpdir, name, 0);
		}
		buf_free(&b);
		errno = err;
		return -1;
	}
	buf_free(&b);
	p = &batch.out[batch.nout++];
	p->fd = fd;
	p->tmpdir = tmpdir;
	p->dstdir = dstdir;
	p->movedir = movedir;
	snprintf(p->name, sizeof p->name, "%s", name);
	return 0;
}

int
stage_pass(const struct spool *next, const char *name, const char *newname,
    const struct envelope *e)
{
	if (strcmp(name, newname) != 0) {
		if (content_link_lazy(name, newname) < 0)
			return -1;
		batch.links = 1;
	}
	return batch_put(next->tmpfd, next->newfd, -1, newname, e);
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

int
stage_move(struct stage *st, const struct spool *next, const char *name,
    const struct envelope *e)
{
	/* the input is rewritten in place, then renamed into the next queue:
	 * the envelope is in one queue or the other, never both */
	if (faccessat(st->in.newfd, name, F_OK, 0) < 0)
		return -1;	/* ENOENT: taken by bh-queue meanwhile */
	batch.st = st;
	return batch_put(st->in.tmpfd, st->in.newfd, next->newfd, name, e);
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
	if (spool_remove(&st->in, "new", name) < 0)
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
