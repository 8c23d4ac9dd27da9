#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "content.h"
#include "log.h"
#include "stage.h"

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
	if (spool_open(&st->in, queue) < 0)
		die(EXIT_TEMP, errno, "unable to open spool/%s", queue);
}

int
stage_next(struct stage *st, char *name, size_t cap)
{
	int rc = spool_next(&st->in, name, cap, st->once);

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

int
stage_pass(const struct spool *next, const char *name, const char *newname,
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
	struct buf b = BUF_INIT;
	int rc, err;

	if (envelope_format(e, &b) < 0)
		return -1;
	rc = spool_put(&st->in, "new", name, b.data, b.len, 0);
	err = errno;
	buf_free(&b);
	if (rc == 0 && renameat(st->in.newfd, name, next->newfd, name) < 0)
		rc = -1, err = errno;
	if (rc == 0 && (spool_fsync_dir(next->newfd) < 0 ||
	    spool_fsync_dir(st->in.newfd) < 0))
		rc = -1, err = errno;
	if (rc == 0)
		unlock(st, name);
	errno = err;
	return rc;
}

int
stage_defer(struct stage *st, const char *name, const struct envelope *e,
    time_t when)
{
	struct buf b = BUF_INIT;
	int rc, err;

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

void
stage_done(struct stage *st, const char *name, int keep_content)
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
	gettimeofday(&tv, NULL);
	snprintf(suffix, sizeof suffix, "%c%lld%06ld", kind[0] & ~0x20,
	    (long long)tv.tv_sec, (long)tv.tv_usec);
	if (stage_child_name(child, sizeof child, name, suffix) < 0)
		goto out;
	rc = stage_pass(&ndr, name, child, &rec);
out:
	err = errno;
	envelope_free(&rec);
	errno = err;
	return rc;
}
