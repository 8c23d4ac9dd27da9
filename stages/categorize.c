/*
 * bh-categorize: the message categorizer. Resolves every new recipient of
 * an arriving message against the directory: mailboxes become local
 * deliveries, aliases, contacts and groups are expanded, addresses outside
 * pass on as remote, unknown and refused recipients fail.
 *
 * reads   spool/incoming/new/NAME   (content spool/msg/NAME)
 * writes  spool/route/new/NAME      the recipients that go on: state=local
 *                                   box=MAILBOX, or state=remote (with
 *                                   relay-host=HOST for unresolved-host)
 *         spool/ndr/new/NAME.F...   failed recipients (state=failed code=
 *                                   reason=) for bh-ndr
 *         spool/incoming/retry/NAME when the directory cannot be read
 * config  cdb/directory.cdb, cdb/domains.cdb, cdb/settings.cdb
 *         (reopened when bh-config replaces them)
 * exit    0 queue drained (-1) or SIGTERM; 100 bad usage;
 *         111 spool or system trouble: the supervisor restarts us
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "content.h"
#include "directory.h"
#include "log.h"
#include "stage.h"
#include "track.h"

enum { RETRY_SEC = 60 };

struct categorize {
	struct stage st;
	struct spool route;
	struct directory dir;
};

static int
is_failed(const struct rcpt *r)
{
	const char *state = rcpt_get(r, "state");

	return state != NULL && strcmp(state, "failed") == 0;
}

static int
is_new(const struct rcpt *r)
{
	const char *state = rcpt_get(r, "state");

	return state == NULL || strcmp(state, "new") == 0;
}

/* "rfc822;" and the address as RFC 3461 xtext. */
static void
orcpt_of(const char *addr, char *out, size_t cap)
{
	size_t n = snprintf(out, cap, "rfc822;");
	const unsigned char *p;

	for (p = (const unsigned char *)addr; *p && n + 4 < cap; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			n += snprintf(out + n, cap - n, "+%02X", *p);
		else
			out[n++] = *p;
	}
	out[n] = '\0';
}

/* The envelope line of a target: the original recipient's attributes when
 * the target has its address; for another address, its DSN notify and the original
 * recipient as orcpt, so reports name the address the sender used. */
static struct rcpt *
target_rcpt(struct envelope *out, const struct rcpt *orig,
    const struct directory_target *t)
{
	const char *notify = rcpt_get(orig, "notify");
	const char *orcpt = rcpt_get(orig, "orcpt");
	char buf[2048];
	struct rcpt *r;

	if (strcasecmp(t->addr, orig->addr) == 0) {
		if (envelope_copy_rcpt(out, orig) < 0)
			return NULL;
		r = &out->rcpt[out->nrcpt - 1];
		if (rcpt_set(r, "code", NULL) < 0 || rcpt_set(r, "reason", NULL) < 0)
			return NULL;
		return r;
	}
	if ((r = envelope_add_rcpt(out, t->addr)) == NULL)
		return NULL;
	if (orcpt == NULL) {
		orcpt_of(orig->addr, buf, sizeof buf);
		orcpt = buf;
	}
	if ((notify && rcpt_set(r, "notify", notify) < 0) ||
	    rcpt_set(r, "orcpt", orcpt) < 0)
		return NULL;
	return r;
}

/* Writes one target into out and tracks it. 0 or -1. */
static int
target_apply(const char *name, const struct envelope *e,
    struct envelope *out, const struct rcpt *orig,
    const struct directory_target *t)
{
	struct rcpt *r;
	char status[2048];

	if (t->how == DIRECTORY_SKIPPED) {
		log_event("skipped", "id=%s rcpt=%s reason=%s", name,
		    log_quote(orig->addr), log_quote(t->reason));
		track("expanded", name, e, orig, t->reason);
		return 0;
	}
	if ((r = target_rcpt(out, orig, t)) == NULL)
		return -1;
	if (t->how == DIRECTORY_FAILED) {
		if (rcpt_outcome(r, "failed", t->code, t->reason) < 0)
			return -1;
		log_event("failed", "id=%s rcpt=%s code=%s reason=%s", name,
		    log_quote(r->addr), t->code, log_quote(t->reason));
		track("failed", name, e, r, t->reason);
		return 0;
	}
	if (t->how == DIRECTORY_LOCAL) {
		if (rcpt_set(r, "state", "local") < 0 ||
		    rcpt_set(r, "box", t->box) < 0)
			return -1;
		snprintf(status, sizeof status, "local box=%s", t->box);
	} else {
		if (rcpt_set(r, "state", "remote") < 0 || (t->relay_host &&
		    rcpt_set(r, "relay-host", t->relay_host) < 0))
			return -1;
		snprintf(status, sizeof status, "remote%s%s", t->relay_host ?
		    " relay-host=" : "", t->relay_host ? t->relay_host : "");
	}
	if (t->is_expanded) {
		size_t len = strlen(status);
		snprintf(status + len, sizeof status - len, " from %s",
		    orig->addr);
	}
	track("expanded", name, e, r, status);
	return 0;
}

/* The message size restrictions compare against: the size field, else the
 * content file's size. */
static long long
message_size(const char *name, const struct envelope *e)
{
	const char *size = envelope_get(e, "size");
	struct stat sb;
	int fd;

	if (size != NULL && *size >= '0' && *size <= '9')
		return strtoll(size, NULL, 10);
	if ((fd = content_open(name)) < 0)
		return -1;
	if (fstat(fd, &sb) < 0)
		sb.st_size = -1;
	close(fd);
	return sb.st_size;
}

/* Resolves every new recipient of e into out (head already copied).
 * 0, or -1 when the directory or memory failed. */
static int
resolve(struct categorize *c, const char *name, const struct envelope *e,
    struct envelope *out)
{
	struct directory_expansion x;
	size_t i, j, from;
	int rc = 0;

	memset(&x, 0, sizeof x);
	x.sender = e->sender ? e->sender : "";
	x.size = message_size(name, e);
	for (i = 0; i < e->nrcpt && rc == 0; i++) {
		if (!is_new(&e->rcpt[i])) {
			rc = envelope_copy_rcpt(out, &e->rcpt[i]);
			continue;
		}
		from = x.n;
		if ((rc = directory_expand(&c->dir, &x, e->rcpt[i].addr)) < 0)
			break;
		for (j = from; j < x.n && rc == 0; j++)
			rc = target_apply(name, e, out, &e->rcpt[i], &x.v[j]);
	}
	directory_expansion_free(&x);
	return rc;
}

/* Leaves the message for a later attempt (the directory could not be
 * read, or the next queue could not take it). */
static void
retry_later(struct categorize *c, const char *name, const struct envelope *e,
    const char *why)
{
	log_event("deferred", "id=%s reason=%s error=%s", name, log_quote(why),
	    log_quote(strerror(errno)));
	track("deferred", name, e, NULL, why);
	if (stage_defer(&c->st, name, e, time(NULL) + RETRY_SEC) < 0)
		die(EXIT_TEMP, errno, "unable to defer %s", name);
}

/* Hands on the recipients that go on, reports those that failed. */
static void
finish(struct categorize *c, const char *name, const struct envelope *e,
    const struct envelope *all)
{
	struct envelope next = ENVELOPE_INIT;
	size_t i;

	if (envelope_copy_head(&next, all) < 0)
		goto trouble;
	for (i = 0; i < all->nrcpt; i++)
		if (!is_failed(&all->rcpt[i]) &&
		    envelope_copy_rcpt(&next, &all->rcpt[i]) < 0)
			goto trouble;
	if (stage_report(name, all, "failure", is_failed) < 0)
		goto trouble;
	if (next.nrcpt > 0 && stage_pass(&c->route, name, name, &next) < 0)
		goto trouble;
	log_event("categorized", "id=%s rcpts=%zu failed=%zu", name,
	    next.nrcpt, all->nrcpt - next.nrcpt);
	stage_done(&c->st, name, next.nrcpt > 0);
	envelope_free(&next);
	return;
trouble:
	retry_later(c, name, e, "unable to hand the message on");
	envelope_free(&next);
}

/* An envelope we cannot parse is kept aside in retry/ for an hour (an
 * administrator can read it there), never dropped. */
static void
set_aside(struct categorize *c, const char *name)
{
	struct timespec when[2] = { { time(NULL) + 3600, 0 },
	    { time(NULL) + 3600, 0 } };

	log_event("error", "id=%s msg=\"unreadable envelope set aside\" "
	    "error=%s", name, log_quote(strerror(errno)));
	if (renameat(c->st.in.newfd, name, c->st.in.retryfd, name) < 0)
		die(EXIT_TEMP, errno, "unable to set %s aside", name);
	utimensat(c->st.in.retryfd, name, when, 0);
}

static void
categorize_one(struct categorize *c, const char *name)
{
	struct envelope e = ENVELOPE_INIT, all = ENVELOPE_INIT;

	if (stage_read(&c->st, name, &e) < 0) {
		if (errno != ENOENT)
			set_aside(c, name);
		envelope_free(&e);
		return;
	}
	if (directory_refresh(&c->dir) < 0 || envelope_copy_head(&all, &e) < 0 ||
	    resolve(c, name, &e, &all) < 0)
		retry_later(c, name, &e, "directory lookup failed");
	else
		finish(c, name, &e, &all);
	envelope_free(&all);
	envelope_free(&e);
}

int
main(int argc, char **argv)
{
	struct categorize c;
	char name[256];

	memset(&c, 0, sizeof c);
	stage_start(&c.st, "categorize", "incoming", argc, argv);
	if (spool_open(&c.route, "route") < 0)
		die(EXIT_TEMP, errno, "unable to open spool/route");
	if (directory_open(&c.dir) < 0)
		die(EXIT_TEMP, errno, "unable to open the directory");
	while (stage_next(&c.st, name, sizeof name))
		categorize_one(&c, name);
	return EXIT_DONE;
}
