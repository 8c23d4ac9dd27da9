#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "commit.h"
#include "conf.h"
#include "content.h"
#include "log.h"
#include "recycle.h"
#include "spare.h"
#include "priv.h"
#include "stage.h"

enum { STAGE_NICE = -5 };

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
		commit_batch();
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

void
stage_unlock(struct stage *st, const char *name)
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
	stage_unlock(st, name);
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
		stage_unlock(st, name);
		errno = err;
		return -1;
	}
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
		commit_link();
	}
	if (envelope_format(e, &b) < 0)
		return -1;
	rc = commit_put(next->tmpfd, -1, next->newfd, newname, &b);
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
	commit_stage(st);
	rc = commit_put(st->in.tmpfd, st->in.newfd, next->newfd, name,
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

	commit_batch();	/* what it says was delivered is on disk first */
	if (envelope_format(e, &b) < 0)
		return -1;
	rc = spool_put(&st->in, "retry", name, b.data, b.len, when);
	err = errno;
	buf_free(&b);
	if (rc == 0) {
		if (recycle_give(st->in.newfd, name) < 0)
			spool_remove(&st->in, "new", name);
		stage_unlock(st, name);
	}
	errno = err;
	return rc;
}

void
stage_done_now(struct stage *st, const char *name, int keep_content)
{
	/* envelope first: a crash in between leaves an unreferenced link,
	 * which is garbage, never an envelope without its content */
	if (recycle_give(st->in.newfd, name) < 0 &&
	    spare_give_envelope(st->in.newfd, st->in.queue, name) < 0 &&
	    spool_remove(&st->in, "new", name) < 0)
		log_event("warning", "id=%s msg=\"unable to remove envelope\"",
		    name);
	stage_unlock(st, name);
	if (!keep_content)
		content_unlink(name);
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
	commit_batch();	/* a report never tells of what is not on disk */
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
