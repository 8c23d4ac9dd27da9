/*
 * maildir: one copy of a message into a Maildir, for bh-local. The
 * Maildirs stay open between messages; a copy is written into a recycled
 * spool file when the Maildir is on the spool's file system.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "content.h"
#include "maildir.h"
#include "recycle.h"
#include "root.h"
#include "spool.h"
#include "stage.h"

enum { COPY_CHUNK = 64 * 1024 };

static int
mkdir_p(const char *path)
{
	char tmp[PATH_MAX + 16];
	char *p;

	snprintf(tmp, sizeof tmp, "%s", path);
	for (p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* The path of a mailbox's Maildir: its maildir= (relative to the root, or
 * absolute), default mailroot/MAILBOX/Maildir. */
int
maildir_path(const char *box, const struct attrs *rec, char *path, size_t cap)
{
	const char *md = attrs_get(rec, "maildir");
	int n;

	if (md != NULL && md[0] == '/')
		n = snprintf(path, cap, "%s", md);
	else if (md != NULL)
		n = snprintf(path, cap, "%s/%s", root_dir(), md);
	else
		n = snprintf(path, cap, "%s/mailroot/%s/Maildir", root_dir(), box);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static void
maildir_close(struct maildir *m)
{
	if (m->path[0] != '\0') {
		close(m->tmpfd);
		close(m->newfd);
	}
	m->path[0] = '\0';
}

/* Opens MAILDIR's tmp/ and new/ into m, creating tmp/ new/ cur/ when
 * missing. 0 or -1. */
static int
maildir_open(struct maildirs *l, struct maildir *m, const char *path)
{
	static const char *subs[] = { "tmp", "new", "cur" };
	char sub[PATH_MAX + 8];
	struct stat st;
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", path, subs[i]);
		if (access(sub, F_OK) < 0 && mkdir_p(sub) < 0)
			return -1;
	}
	snprintf(sub, sizeof sub, "%s/tmp", path);
	if ((m->tmpfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	snprintf(sub, sizeof sub, "%s/new", path);
	if ((m->newfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fstat(m->newfd, &st) < 0) {
		int err = errno;
		close(m->tmpfd);
		if (m->newfd >= 0)
			close(m->newfd);
		errno = err;
		return -1;
	}
	/* a recycled spool file can be renamed in only on the same device */
	m->is_spool_dev = l->spool_dev != 0 && st.st_dev == l->spool_dev;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	snprintf(m->path, sizeof m->path, "%s", path);
	return 0;
}

/* Whether path/new is still the directory m holds open: an
 * administrator may have moved the Maildir aside and made a new one. */
static int
maildir_is_current(const struct maildir *m)
{
	char sub[PATH_MAX + 8];
	struct stat st;

	snprintf(sub, sizeof sub, "%s/new", m->path);
	if (stat(sub, &st) < 0)
		return 0;
	return st.st_ino == m->ino && st.st_dev == m->dev;
}

/* The Maildir at path, opened once and kept (its directories stay open
 * across messages). NULL with errno on failure. */
static struct maildir *
maildir_get(struct maildirs *l, const char *path)
{
	struct maildir *m;
	size_t i;

	for (i = 0; i < MAILDIR_KEEP; i++)
		if (strcmp(l->box[i].path, path) == 0) {
			m = &l->box[i];
			if (maildir_is_current(m))
				return m;
			maildir_close(m);	/* moved or replaced meanwhile */
			return maildir_open(l, m, path) < 0 ? NULL : m;
		}
	m = &l->box[l->next++ % MAILDIR_KEEP];
	maildir_close(m);
	return maildir_open(l, m, path) < 0 ? NULL : m;
}

/* Bytes used in MAILDIR/new and MAILDIR/cur. */
long long
maildir_usage(const char *maildir)
{
	static const char *subs[] = { "new", "cur" };
	char dir[PATH_MAX + 8];
	long long total = 0;
	struct dirent *d;
	struct stat st;
	size_t i;
	DIR *dp;

	for (i = 0; i < 2; i++) {
		snprintf(dir, sizeof dir, "%s/%s", maildir, subs[i]);
		if ((dp = opendir(dir)) == NULL)
			continue;
		while ((d = readdir(dp)) != NULL)
			if (d->d_name[0] != '.' &&
			    fstatat(dirfd(dp), d->d_name, &st, 0) == 0)
				total += st.st_size;
		closedir(dp);
	}
	return total;
}

/* Copies the content to fd after the head, CRLF -> LF unless binary;
 * *len gets the bytes written. The head goes out with the first piece. */
static int
copy_content(int in, int out, const struct buf *head, int binary, off_t *len)
{
	char buf[COPY_CHUNK], conv[COPY_CHUNK + 1024];
	size_t m = head->len <= 1024 ? head->len : 0;
	ssize_t n, i;
	int held_cr = 0;

	*len = m == 0 ? head->len : 0;	/* else counted with conv */
	if (m == 0 && write_all(out, head->data, head->len) < 0)
		return -1;
	memcpy(conv, head->data, m);
	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (held_cr && (binary || buf[0] != '\n'))
			conv[m++] = '\r';
		held_cr = 0;
		for (i = 0; i < n; i++) {
			if (!binary && buf[i] == '\r' && i + 1 == n) {
				held_cr = 1;	/* its LF may start the next chunk */
				break;
			}
			if (!binary && buf[i] == '\r' && buf[i + 1] == '\n')
				continue;
			conv[m++] = buf[i];
		}
		if (write_all(out, conv, m) < 0)
			return -1;
		*len += m;
		m = 0;
	}
	if (n < 0 || (m > 0 && write_all(out, conv, m) < 0))
		return -1;
	*len += m;
	if (held_cr && write_all(out, "\r", 1) < 0)
		return -1;
	*len += held_cr;
	return 0;
}

/* Maildir unique name: seconds.M<usec>P<pid>Q<count>.host */
static void
unique_name(struct maildirs *l, char *buf, size_t cap)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(buf, cap, "%lld.M%ldP%dQ%u.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (int)l->pid, ++l->deliveries, l->host);
}

/* The file a copy is written into: a recycled spool file (renamed into
 * new/ from the spool's tmp/: no file is created), else MAILDIR/tmp/UNIQ.
 * Its directory and name go to *dir and file; *old is its present size. */
static int
copy_open(const struct maildir *m, const char *uniq, int *dir,
    char *file, size_t cap, off_t *old)
{
	char spare[RECYCLE_NAME_MAX];
	int fd;

	*old = 0;
	if (m->is_spool_dev && ((fd = recycle_take(spare, old)) >= 0 ||
	    (fd = recycle_create(spare)) >= 0)) {
		*dir = recycle_dir();
		snprintf(file, cap, "%s", spare);
		return fd;
	}
	*dir = m->tmpfd;
	snprintf(file, cap, "%s", uniq);
	return openat(m->tmpfd, uniq, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
}

/* Writes one copy, fsyncs it and renames it into new/ (never over a
 * message: RENAME_NOREPLACE, the Maildir rule that link(2) kept). */
static int
maildir_write(struct maildirs *l, struct maildir *m, const char *name,
    const struct envelope *e, const struct rcpt *r)
{
	char uniq[512], file[512];
	struct buf head = BUF_INIT;
	const char *body = envelope_get(e, "body");
	int in, out, dir, err, rc = -1;
	off_t old, len;

	unique_name(l, uniq, sizeof uniq);
	if ((in = content_open(name)) < 0)
		return -1;
	if ((out = copy_open(m, uniq, &dir, file, sizeof file, &old)) < 0)
		goto out_in;
	buf_printf(&head, "Return-Path: <%s>\nDelivered-To: %s\n",
	    e->sender ? e->sender : "", r->addr);
	if (head.data == NULL || copy_content(in, out, &head,
	    body && strcmp(body, "BINARYMIME") == 0, &len) < 0 ||
	    (old > len && ftruncate(out, len) < 0) || fsync(out) < 0)
		goto out_unlink;
	if (close(out) < 0) {
		out = -1;
		goto out_unlink;
	}
	out = -1;
	if (renameat2(dir, file, m->newfd, uniq, RENAME_NOREPLACE) < 0)
		goto out_unlink;
	if (dir != m->tmpfd)
		recycle_drop(file, 0);	/* it is the message now */
	/* group commit: new/ is fsync'ed once for the messages delivered
	 * together, before their envelopes leave spool/local (stage_done) */
	rc = stage_sync_dir(m->newfd);
	goto out_in;
out_unlink:
	err = errno;
	if (out >= 0)
		close(out);
	if (dir != m->tmpfd)
		recycle_drop(file, 1);
	else
		unlinkat(dir, file, 0);
	errno = err;
out_in:
	err = errno;
	close(in);
	buf_free(&head);
	errno = err;
	return rc;
}

/* Writes the copy into the Maildir at path; a kept Maildir that is gone
 * meanwhile (ENOENT) is opened again once. */
int
maildir_deliver(struct maildirs *l, const char *path, const char *name,
    const struct envelope *e, const struct rcpt *r)
{
	struct maildir *m;

	if ((m = maildir_get(l, path)) == NULL)
		return -1;
	if (maildir_write(l, m, name, e, r) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	if (!content_exists(name)) {
		errno = ENOENT;
		return -1;
	}
	maildir_close(m);
	if ((m = maildir_get(l, path)) == NULL)
		return -1;
	return maildir_write(l, m, name, e, r);
}

/* The device of the recycled files: Maildirs on it get those. */
static void
spool_dev(struct maildirs *l)
{
	struct stat st;

	if (recycle_dir() >= 0 && fstat(recycle_dir(), &st) == 0)
		l->spool_dev = st.st_dev;
}

void
maildirs_init(struct maildirs *l)
{
	memset(l, 0, sizeof *l);
	l->pid = getpid();
	spool_dev(l);
	if (gethostname(l->host, sizeof l->host) < 0)
		snprintf(l->host, sizeof l->host, "localhost");
	l->host[sizeof l->host - 1] = '\0';
	l->host[strcspn(l->host, "/:")] = '\0';	/* safe in a Maildir name */
}
