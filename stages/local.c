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
#include "root.h"
#include "stage.h"
#include "track.h"

enum { COPY_CHUNK = 64 * 1024 };

struct local {
	struct stage st;
	struct conf directory;
	char host[256];
	unsigned deliveries;
};

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

/* MAILDIR for a mailbox, creating it with tmp/ new/ cur/ when missing. */
static int
maildir_for(struct local *l, const char *box, const struct attrs *rec,
    char *path, size_t cap)
{
	const char *md = attrs_get(rec, "maildir");
	static const char *subs[] = { "tmp", "new", "cur" };
	char sub[PATH_MAX + 8];
	size_t i;
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
	for (i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", path, subs[i]);
		if (access(sub, F_OK) < 0 && mkdir_p(sub) < 0)
			return -1;
	}
	return 0;
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

/* Copies the content to fd, CRLF -> LF unless binary. */
static int
copy_content(int in, int out, int binary)
{
	char buf[COPY_CHUNK], conv[COPY_CHUNK];
	ssize_t n, i;
	size_t m;
	int held_cr = 0;

	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (binary) {
			if (write_all(out, buf, n) < 0)
				return -1;
			continue;
		}
		m = 0;
		if (held_cr && buf[0] != '\n')
			conv[m++] = '\r';
		held_cr = 0;
		for (i = 0; i < n; i++) {
			if (buf[i] == '\r' && i + 1 == n) {
				held_cr = 1;	/* its LF may start the next chunk */
				break;
			}
			if (buf[i] == '\r' && buf[i + 1] == '\n')
				continue;
			conv[m++] = buf[i];
		}
		if (write_all(out, conv, m) < 0)
			return -1;
	}
	if (n < 0 || (held_cr && write_all(out, "\r", 1) < 0))
		return -1;
	return 0;
}

/* Maildir unique name: seconds.M<usec>P<pid>Q<count>.host */
static void
unique_name(struct local *l, char *buf, size_t cap)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(buf, cap, "%lld.M%ldP%dQ%u.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (int)getpid(), ++l->deliveries, l->host);
}

/* Writes one copy into MAILDIR/tmp, then links it into new/. */
static int
maildir_write(struct local *l, const char *maildir, const char *name,
    const struct envelope *e, const struct rcpt *r)
{
	char uniq[512], tmp[PATH_MAX + 600], dst[PATH_MAX + 600], dir[PATH_MAX + 8];
	struct buf head = BUF_INIT;
	const char *body = envelope_get(e, "body");
	int in, out, dfd, err, rc = -1;

	unique_name(l, uniq, sizeof uniq);
	snprintf(tmp, sizeof tmp, "%s/tmp/%s", maildir, uniq);
	snprintf(dst, sizeof dst, "%s/new/%s", maildir, uniq);
	if ((in = content_open(name)) < 0)
		return -1;
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		goto out_in;
	buf_printf(&head, "Return-Path: <%s>\nDelivered-To: %s\n",
	    e->sender ? e->sender : "", r->addr);
	if (head.data == NULL || write_all(out, head.data, head.len) < 0 ||
	    copy_content(in, out, body && strcmp(body, "BINARYMIME") == 0) < 0 ||
	    fsync(out) < 0)
		goto out_unlink;
	if (close(out) < 0) {
		out = -1;
		goto out_unlink;
	}
	out = -1;
	/* link, not rename: the Maildir way to never overwrite a message */
	if (link(tmp, dst) < 0)
		goto out_unlink;
	unlink(tmp);
	snprintf(dir, sizeof dir, "%s/new", maildir);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto out_in;
	/* group commit: new/ is fsync'ed once for the messages delivered
	 * together, before their envelopes leave spool/local (stage_done) */
	rc = stage_sync_dir(dfd);
	close(dfd);
	goto out_in;
out_unlink:
	err = errno;
	if (out >= 0)
		close(out);
	unlink(tmp);
	errno = err;
out_in:
	err = errno;
	close(in);
	buf_free(&head);
	errno = err;
	return rc;
}

static int
deliver_one(struct local *l, const char *name, const struct envelope *e,
    const struct rcpt *r, struct outcome *o)
{
	struct attrs rec = ATTRS_INIT;
	char key[600], maildir[PATH_MAX];
	const char *box = rcpt_get(r, "box"), *quota;
	long long limit, size;
	int rc;

	if (box == NULL || snprintf(key, sizeof key, "mailbox:%s", box) >= (int)sizeof key)
		return outcome_set(o, FAIL_PERM, "5.1.1",
		    "550 5.1.1 <%s>: no local mailbox", r->addr);
	if ((rc = conf_record(&l->directory, key, &rec)) < 0)
		return outcome_set(o, FAIL_TEMP, "4.3.0",
		    "451 4.3.0 directory unreadable");
	if (rc == 0)
		return outcome_set(o, FAIL_PERM, "5.1.1",
		    "550 5.1.1 <%s>: mailbox %s does not exist", r->addr, box);
	rc = maildir_for(l, box, &rec, maildir, sizeof maildir);
	quota = attrs_get(&rec, "quota");
	limit = quota != NULL ? conf_parse_size(quota) : 0;
	attrs_free(&rec);
	if (rc < 0)
		goto write_error;
	size = strtoll(envelope_get(e, "size") ? envelope_get(e, "size") : "0", NULL, 10);
	if (limit > 0 && maildir_usage(maildir) + size > limit)
		return outcome_set(o, FAIL_PERM, "5.2.2",
		    "552 5.2.2 <%s>: mailbox full", r->addr);
	if (maildir_write(l, maildir, name, e, r) == 0)
		return outcome_set(o, DELIVERED, "2.0.0",
		    "250 2.0.0 delivered to %s", box);
write_error:
	if (errno == ENOENT && content_open(name) < 0)
		return outcome_set(o, FAIL_TEMP, "4.3.0",
		    "451 4.3.0 message content missing");
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
	long long expire = conf_setting_time("expire", 2 * 86400);

	if (o->kind == FAIL_TEMP && arrived != NULL &&
	    time(NULL) - strtoll(arrived, NULL, 10) > expire) {
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

int
main(int argc, char **argv)
{
	static struct local l;
	char name[256];

	stage_start(&l.st, "local", "local", argc, argv);
	if (conf_open(&l.directory, "directory") < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/directory.cdb");
	if (gethostname(l.host, sizeof l.host) < 0)
		snprintf(l.host, sizeof l.host, "localhost");
	l.host[strcspn(l.host, "/:")] = '\0';	/* safe in a Maildir name */
	while (stage_next(&l.st, name, sizeof name))
		local_one(&l, name);
	return EXIT_DONE;
}
