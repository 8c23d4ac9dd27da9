/*
 * bh-local: deliver to local mailboxes in Maildir format.
 *
 * reads   spool/local/new/NAME (recipients with state=local box=MAILBOX);
 *         content spool/msg/NAME; cdb/directory.cdb (mailbox maildir, quota)
 * writes  MAILDIR/tmp/UNIQUE -> fsync -> link into MAILDIR/new -> fsync dir
 *         (once per batch of envelopes, before their inputs are removed),
 *         with Return-Path and Delivered-To first and LF line ends (a
 *         BINARYMIME body is copied byte for byte). MAILDIR is the mailbox's
 *         maildir= attribute (relative to the root, or absolute), default
 *         mailroot/MAILBOX/Maildir; created when missing.
 *         Permanent failures (unknown mailbox 5.1.1, over quota 5.2.2) and,
 *         with NOTIFY=SUCCESS, delivery notices go to spool/ndr. Temporary
 *         failures (disk full, I/O error) keep the envelope in
 *         spool/local/retry/ for the next attempt (settings retry); after
 *         settings expire they fail with 4.4.7.
 * exit    0 drained (-1) or SIGTERM; 100 bad usage; 111 spool trouble
 */
#include <dirent.h>
#include <stdarg.h>
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

#include "conf.h"
#include "content.h"
#include "log.h"
#include "loglevel.h"
#include "recycle.h"
#include "root.h"
#include "stage.h"
#include "track.h"

enum { COPY_CHUNK = 64 * 1024, LOCAL_MAILDIRS = 16 };

/* A Maildir kept open between messages. */
struct maildir {
	char path[PATH_MAX];	/* "" for a free slot */
	int tmpfd, newfd;
	dev_t dev;		/* of new/ */
	ino_t ino;
	int is_spool_dev;	/* on the spool's device */
};

struct local {
	struct stage st;
	struct conf directory;
	char host[256];
	pid_t pid;
	dev_t spool_dev;	/* of the recycled files, 0 when none */
	unsigned deliveries;
	struct maildir boxes[LOCAL_MAILDIRS];
	unsigned nextbox;
};

/* 1 when the content spool/msg/NAME exists, 0 when not. */
static int
content_exists(const char *name)
{
	int fd = content_open(name);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Outcome of one delivery attempt. */
enum { DELIVERED, FAIL_TEMP, FAIL_PERM };

struct outcome {
	int kind;
	char code[16];
	char reason[512];
};

static int
outcome_set(struct outcome *o, int kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
outcome_set(struct outcome *o, int kind, const char *code, const char *fmt, ...)
{
	va_list ap;

	o->kind = kind;
	snprintf(o->code, sizeof o->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(o->reason, sizeof o->reason, fmt, ap);
	va_end(ap);
	return kind;
}

static int
temp_errno(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EIO || err == EAGAIN ||
	    err == ENOMEM || err == EMFILE || err == ENFILE || err == EINTR;
}

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
static int
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
maildir_open(struct local *l, struct maildir *m, const char *path)
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
maildir_get(struct local *l, const char *path)
{
	struct maildir *m;
	size_t i;

	for (i = 0; i < LOCAL_MAILDIRS; i++)
		if (strcmp(l->boxes[i].path, path) == 0) {
			m = &l->boxes[i];
			if (maildir_is_current(m))
				return m;
			maildir_close(m);	/* moved or replaced meanwhile */
			return maildir_open(l, m, path) < 0 ? NULL : m;
		}
	m = &l->boxes[l->nextbox++ % LOCAL_MAILDIRS];
	maildir_close(m);
	return maildir_open(l, m, path) < 0 ? NULL : m;
}

/* Bytes used in MAILDIR/new and MAILDIR/cur. */
static long long
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
unique_name(struct local *l, char *buf, size_t cap)
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
maildir_write(struct local *l, struct maildir *m, const char *name,
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
static int
maildir_deliver(struct local *l, const char *path, const char *name,
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

static int
deliver_one(struct local *l, const char *name, const struct envelope *e,
    const struct rcpt *r, struct outcome *o)
{
	struct attrs rec = ATTRS_INIT;
	char key[600], maildir[PATH_MAX];
	const char *box = rcpt_get(r, "box"), *quota;
	long long limit, size;
	int rc, err;

	if (box == NULL || snprintf(key, sizeof key, "mailbox:%s", box) >= (int)sizeof key)
		return outcome_set(o, FAIL_PERM, "5.1.1",
		    "550 5.1.1 <%s>: no local mailbox", r->addr);
	if ((rc = conf_record(&l->directory, key, &rec)) < 0)
		return outcome_set(o, FAIL_TEMP, "4.3.0",
		    "451 4.3.0 directory unreadable");
	if (rc == 0)
		return outcome_set(o, FAIL_PERM, "5.1.1",
		    "550 5.1.1 <%s>: mailbox %s does not exist", r->addr, box);
	rc = maildir_path(box, &rec, maildir, sizeof maildir);
	quota = attrs_get(&rec, "quota");
	limit = quota != NULL ? conf_parse_size(quota) : 0;
	attrs_free(&rec);
	if (rc < 0)
		goto write_error;
	size = strtoll(envelope_get(e, "size") ? envelope_get(e, "size") : "0", NULL, 10);
	if (limit > 0 && maildir_usage(maildir) + size > limit)
		return outcome_set(o, FAIL_PERM, "5.2.2",
		    "552 5.2.2 <%s>: mailbox full", r->addr);
	if (maildir_deliver(l, maildir, name, e, r) == 0)
		return outcome_set(o, DELIVERED, "2.0.0",
		    "250 2.0.0 delivered to %s", box);
write_error:
	err = errno;
	if (err == ENOENT && !content_exists(name))
		return outcome_set(o, FAIL_TEMP, "4.3.0",
		    "451 4.3.0 message content missing");
	errno = err;
	if (temp_errno(errno) || errno == EACCES || errno == ENOENT)
		return outcome_set(o, FAIL_TEMP, errno == ENOSPC ? "4.3.1" : "4.2.0",
		    "451 %s %s", errno == ENOSPC ? "4.3.1" : "4.2.0", strerror(errno));
	return outcome_set(o, FAIL_TEMP, "4.2.0", "451 4.2.0 %s", strerror(errno));
}

static int
pick_failed(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return s != NULL && strcmp(s, "failed") == 0 && rcpt_get(r, "reported") == NULL;
}

static int
pick_success(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state"), *n = rcpt_get(r, "notify");

	return s != NULL && strcmp(s, "delivered") == 0 && n != NULL &&
	    strstr(n, "SUCCESS") != NULL && rcpt_get(r, "reported") == NULL;
}

/* After settings expire, a temporary failure becomes 4.4.7. */
static void
expire_check(const struct envelope *e, struct outcome *o)
{
	const char *arrived = envelope_get(e, "arrived");

	if (o->kind == FAIL_TEMP && arrived != NULL &&
	    time(NULL) - strtoll(arrived, NULL, 10) >
	    conf_setting_time("expire", 2 * 86400)) {
		char reason[sizeof o->reason];
		snprintf(reason, sizeof reason, "%s", o->reason);
		outcome_set(o, FAIL_PERM, "4.4.7",
		    "message expired in the local queue: %.400s", reason);
	}
}

/* The retry schedule: settings retry "first,second,third,subsequent". */
static time_t
next_attempt(struct envelope *e)
{
	char list[256], *p, *save = NULL;
	const char *t = envelope_get(e, "tries");
	long long tries = t ? strtoll(t, NULL, 10) : 0, i = 0, wait = 600;
	char num[32];

	conf_setting("retry", "10m,10m,10m,15m", list, sizeof list);
	for (p = strtok_r(list, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save), i++) {
		wait = conf_parse_time(p) > 0 ? conf_parse_time(p) : wait;
		if (i >= tries)
			break;
	}
	snprintf(num, sizeof num, "%lld", tries + 1);
	envelope_set(e, "tries", num);
	return time(NULL) + wait;
}

static void
record(struct rcpt *r, const struct outcome *o)
{
	static const char *states[] = { "delivered", "deferred", "failed" };

	rcpt_outcome(r, states[o->kind], o->code, o->reason);
}

static void
mark_reported(struct envelope *e, int (*pick)(const struct rcpt *))
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (pick(&e->rcpt[i]))
			rcpt_set(&e->rcpt[i], "reported", "yes");
}

/* Hands on reports, then keeps the envelope for a retry or removes it.
 * Reports are marked so a later retry does not send them twice. */
static void
local_finish(struct local *l, const char *name, struct envelope *e,
    size_t pending)
{
	int ok = stage_report(name, e, "failure", pick_failed) == 0;

	if (ok)
		mark_reported(e, pick_failed);
	if (ok && (ok = stage_report(name, e, "success", pick_success) == 0))
		mark_reported(e, pick_success);
	if (!ok)
		log_event("error", "id=%s msg=\"unable to queue a report\" error=%s",
		    name, log_quote(strerror(errno)));
	if (pending == 0 && ok) {
		stage_done(&l->st, name, 0);
		return;
	}
	if (stage_defer(&l->st, name, e, ok ? next_attempt(e) : time(NULL) + 60) < 0) {
		/* the input stays in new/: pause rather than spin on it */
		log_event("error", "id=%s msg=\"unable to defer\" error=%s",
		    name, log_quote(strerror(errno)));
		sleep(1);
	}
}

/* Delivers every pending local recipient of one envelope. */
static void
local_one(struct local *l, const char *name)
{
	struct envelope e = ENVELOPE_INIT;
	struct outcome o;
	size_t i, pending = 0;

	if (stage_read(&l->st, name, &e) < 0) {
		if (errno == ENOENT) {	/* taken by bh-queue first */
			envelope_free(&e);
			return;
		}
		log_event("error", "id=%s msg=\"unreadable envelope\" error=%s",
		    name, log_quote(strerror(errno)));
		envelope_free(&e);
		return;
	}
	conf_refresh(&l->directory);
	for (i = 0; i < e.nrcpt; i++) {
		struct rcpt *r = &e.rcpt[i];
		const char *s = rcpt_get(r, "state");
		if (s != NULL && (strcmp(s, "delivered") == 0 ||
		    strcmp(s, "failed") == 0))
			continue;
		deliver_one(l, name, &e, r, &o);
		expire_check(&e, &o);
		record(r, &o);
		log_detail(LOGLEVEL_MEDIUM, rcpt_get(r, "state"),
		    "id=%s rcpt=%s code=%s reason=%s", name, log_quote(r->addr),
		    o.code, log_quote(o.reason));
		track(o.kind == DELIVERED ? "delivered" : o.kind == FAIL_PERM ?
		    "failed" : "deferred", name, &e, r, o.reason);
		if (o.kind == FAIL_TEMP)
			pending++;
	}
	log_event(pending ? "deferred" : "done", "id=%s rcpts=%zu pending=%zu",
	    name, e.nrcpt, pending);
	local_finish(l, name, &e, pending);
	envelope_free(&e);
}

/* The device of the recycled files: Maildirs on it get those. */
static void
local_spool_dev(struct local *l)
{
	struct stat st;

	if (recycle_dir() >= 0 && fstat(recycle_dir(), &st) == 0)
		l->spool_dev = st.st_dev;
}

int
main(int argc, char **argv)
{
	static struct local l;
	char name[256];

	stage_start(&l.st, "local", "local", argc, argv);
	l.pid = getpid();
	local_spool_dev(&l);
	if (conf_open(&l.directory, "directory") < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/directory.cdb");
	if (gethostname(l.host, sizeof l.host) < 0)
		snprintf(l.host, sizeof l.host, "localhost");
	l.host[strcspn(l.host, "/:")] = '\0';	/* safe in a Maildir name */
	while (stage_next(&l.st, name, sizeof name))
		local_one(&l, name);
	return EXIT_DONE;
}
