/*
 * bh-local: deliver to local mailboxes in Maildir format.
 *
 * reads   spool/local/new/NAME (recipients with state=local box=MAILBOX);
 *         content spool/msg/NAME; cdb/directory.cdb (mailbox maildir, quota)
 * writes  MAILDIR/new/UNIQUE, written and fsync'ed aside (lib/maildir.h),
 *         new/ fsync'ed once per batch of envelopes, before their inputs
 *         are removed, with Return-Path and Delivered-To first and LF line
 *         ends (a BINARYMIME body is copied byte for byte). MAILDIR is the mailbox's
 *         maildir= attribute (relative to the root, or absolute), default
 *         mailroot/MAILBOX/Maildir; created when missing.
 *         Permanent failures (unknown mailbox 5.1.1, over quota 5.2.2) and,
 *         with NOTIFY=SUCCESS, delivery notices go to spool/ndr. Temporary
 *         failures (disk full, I/O error) keep the envelope in
 *         spool/local/retry/ for the next attempt (settings retry); after
 *         settings expire they fail with 4.4.7.
 * exit    0 drained (-1) or SIGTERM; 100 bad usage; 111 spool trouble
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "content.h"
#include "log.h"
#include "loglevel.h"
#include "maildir.h"
#include "stage.h"
#include "track.h"

struct local {
	struct stage st;
	struct conf directory;
	struct maildirs boxes;
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
	if (maildir_deliver(&l->boxes, maildir, name, e, r) == 0)
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

int
main(int argc, char **argv)
{
	static struct local l;
	char name[256];

	stage_start(&l.st, "local", "local", argc, argv);
	maildirs_init(&l.boxes);
	if (conf_open(&l.directory, "directory") < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/directory.cdb");
	while (stage_next(&l.st, name, sizeof name))
		local_one(&l, name);
	return EXIT_DONE;
}
