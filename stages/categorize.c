/*
 * bh-categorize: the message categorizer. Runs the arrival hooks on every
 * arriving message, rewrites the sender of mail a local mailbox submitted
 * to its primary address, then resolves every new recipient against the
 * directory: mailboxes become local deliveries, aliases, contacts and
 * groups are expanded, addresses outside pass on as remote, unknown and
 * refused recipients fail.
 *
 * reads   spool/incoming/new/NAME   (content spool/msg/NAME)
 * writes  spool/route/new/NAME      the recipients that go on: state=local
 *                                   box=MAILBOX, or state=remote (with
 *                                   relay-host=HOST for unresolved-host);
 *                                   NAME.hK or NAME.f when a hook or a
 *                                   rewritten From: replaced the content
 *         spool/ndr/new/NAME.F...   failed recipients (state=failed code=
 *                                   reason=), and NAME.E... expanded groups
 *         spool/incoming/retry/NAME when a hook or the directory asks for
 *                                   another try
 * config  cdb/directory.cdb, cdb/domains.cdb, cdb/settings.cdb (hooks,
 *         hook-timeout, unresolved-host, postmaster, expire), cdb/servers.cdb
 *         (hooks=); reopened when bh-config replaces them
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

#include "arrival.h"
#include "addr.h"
#include "conf.h"
#include "content.h"
#include "directory.h"
#include "expansion.h"
#include "log.h"
#include "rewrite.h"
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

static int
is_expanded_state(const struct rcpt *r)
{
	const char *state = rcpt_get(r, "state");

	return state != NULL && strcmp(state, "expanded") == 0;
}

static int
notify_has(const char *notify, const char *word)
{
	size_t len = strlen(word);
	const char *p;

	for (p = notify; p && (p = strcasestr(p, word)) != NULL; p += len)
		if ((p == notify || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
			return 1;
	return 0;
}

/* RFC 3461 6.2.7.3: a recipient that is a list, with NOTIFY=SUCCESS, gets
 * an "expanded" notice (its line, state=expanded, reported by bh-ndr) and
 * the members it expanded to lose SUCCESS (NEVER when nothing is left). */
static int
list_expanded(struct categorize *c, struct envelope *out, size_t first,
    const struct rcpt *orig)
{
	const char *notify = rcpt_get(orig, "notify");
	char kind[16], name[256], reason[1200];
	struct rcpt *r;
	size_t i, n = out->nrcpt - first;

	if (!notify_has(notify, "SUCCESS") || directory_lookup(&c->dir,
	    orig->addr, kind, sizeof kind, name, sizeof name) != 1 ||
	    strcmp(kind, "group") != 0)
		return 0;
	for (i = first; i < out->nrcpt; i++)
		if (rcpt_set(&out->rcpt[i], "notify", notify_has(notify, "FAILURE") ?
		    (notify_has(notify, "DELAY") ? "FAILURE,DELAY" : "FAILURE") :
		    (notify_has(notify, "DELAY") ? "DELAY" : "NEVER")) < 0)
			return -1;
	snprintf(reason, sizeof reason, "250 2.1.5 <%.1000s>: expanded to %zu "
	    "recipients", orig->addr, n);
	if (envelope_copy_rcpt(out, orig) < 0)
		return -1;
	r = &out->rcpt[out->nrcpt - 1];
	return rcpt_outcome(r, "expanded", "2.1.5", reason);
}

/* Resolves every new recipient of e into out (head already copied).
 * 0, or -1 when the directory or memory failed. */
static int
resolve(struct categorize *c, const char *name, const struct envelope *e,
    struct envelope *out)
{
	struct directory_expansion x;
	size_t i, j, from, first;
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
		first = out->nrcpt;
		if ((rc = directory_expand(&c->dir, &x, e->rcpt[i].addr)) < 0)
			break;
		for (j = from; j < x.n && rc == 0; j++)
			rc = target_apply(name, e, out, &e->rcpt[i], &x.v[j]);
		if (rc == 0)
			rc = list_expanded(c, out, first, &e->rcpt[i]);
	}
	directory_expansion_free(&x);
	return rc;
}

/* Leaves the input, as it arrived, for another attempt in delay_sec (the
 * directory could not be read, the next queue could not take it, or a hook
 * asked for it), counting the tries. */
static void
retry_later(struct categorize *c, const char *name, const char *why,
    long long delay_sec)
{
	struct envelope e = ENVELOPE_INIT;
	char tries[32];

	if (stage_read(&c->st, name, &e) < 0)
		die(EXIT_TEMP, errno, "unable to reread %s", name);
	snprintf(tries, sizeof tries, "%lld",
	    atoll(envelope_get(&e, "tries") ? envelope_get(&e, "tries") : "0") + 1);
	log_event("deferred", "id=%s tries=%s reason=%s", name, tries,
	    log_quote(why));
	track("deferred", name, &e, NULL, why);
	if (envelope_set(&e, "tries", tries) < 0 ||
	    stage_defer(&c->st, name, &e, time(NULL) + delay_sec) < 0)
		die(EXIT_TEMP, errno, "unable to defer %s", name);
	envelope_free(&e);
}

/* Hands on the recipients that go on, reports those that failed. The
 * message travels under the name of its current content (a hook or a
 * rewritten header may have replaced it). */
static void
finish(struct categorize *c, struct arrival *arr, const struct envelope *all)
{
	struct envelope next = ENVELOPE_INIT;
	const char *name = arr->current;
	size_t i;

	if (envelope_copy_head(&next, all) < 0)
		goto trouble;
	for (i = 0; i < all->nrcpt; i++)
		if (!is_failed(&all->rcpt[i]) && !is_expanded_state(&all->rcpt[i]) &&
		    envelope_copy_rcpt(&next, &all->rcpt[i]) < 0)
			goto trouble;
	if (stage_report(name, all, "failure", is_failed) < 0 ||
	    stage_report(name, all, "expanded", is_expanded_state) < 0)
		goto trouble;
	if (next.nrcpt > 0 && !arrival_is_replaced(arr)) {
		/* same name, same content: move it, never copy it */
		if (stage_move(&c->st, &c->route, name, &next) < 0) {
			if (errno == ENOENT)	/* taken by bh-queue meanwhile */
				goto gone;
			goto trouble;
		}
	} else if (next.nrcpt > 0 && stage_pass(&c->route, name, name, &next) < 0)
		goto trouble;
	log_event("categorized", "id=%s next=%s rcpts=%zu", arr->name, name,
	    next.nrcpt);
	if (next.nrcpt == 0)
		arrival_discard(arr);
	if (next.nrcpt == 0 || arrival_is_replaced(arr))
		stage_done(&c->st, arr->name, 0);
	envelope_free(&next);
	return;
gone:
	arrival_discard(arr);
	envelope_free(&next);
	return;
trouble:
	arrival_discard(arr);
	retry_later(c, arr->name, "unable to hand the message on", RETRY_SEC);
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

/* A hook rejected the message: every new recipient fails 5.7.1 with the
 * hook's first output line. */
static void
reject_all(struct categorize *c, const char *name, struct envelope *e,
    const struct arrival *arr)
{
	char reason[1200];
	size_t i;

	snprintf(reason, sizeof reason, "550 5.7.1 %s", *arr->line ?
	    arr->line : "message rejected by an arrival hook");
	log_event("rejected", "id=%s hook=%s reason=%s", name,
	    log_quote(arr->hook), log_quote(reason));
	for (i = 0; i < e->nrcpt; i++) {
		if (!is_new(&e->rcpt[i]))
			continue;
		if (rcpt_outcome(&e->rcpt[i], "failed", "5.7.1", reason) < 0)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		track("failed", name, e, &e->rcpt[i], reason);
	}
	if (stage_report(name, e, "failure", is_failed) < 0) {
		retry_later(c, name, "unable to report a rejection", RETRY_SEC);
		return;
	}
	stage_done(&c->st, name, 0);
}

/* A hook asked to try again: later, each time later (1m, 2m, 4m ... 1h),
 * until settings expire (default 2d) after arrival; then the message
 * fails 4.4.7. */
static void
hook_retry(struct categorize *c, const char *name, struct envelope *e,
    const struct arrival *arr)
{
	const char *tries = envelope_get(e, "tries");
	const char *arrived = envelope_get(e, "arrived");
	long long n = tries ? atoll(tries) : 0, delay = RETRY_SEC;
	char reason[2100];
	size_t i;

	snprintf(reason, sizeof reason, "%s: %s", arr->hook, arr->line);
	if (arrived && time(NULL) - atoll(arrived) >
	    conf_setting_time("expire", 2 * 86400)) {
		snprintf(reason, sizeof reason, "message expired while an "
		    "arrival hook deferred it (%s)", arr->line);
		for (i = 0; i < e->nrcpt; i++)
			if (is_new(&e->rcpt[i]) &&
			    rcpt_outcome(&e->rcpt[i], "failed", "4.4.7", reason) < 0)
				die(EXIT_TEMP, ENOMEM, "out of memory");
		if (stage_report(name, e, "failure", is_failed) == 0) {
			track("failed", name, e, NULL, reason);
			stage_done(&c->st, name, 0);
			return;
		}
	}
	while (n-- > 0 && delay < 3600)
		delay *= 2;
	retry_later(c, name, reason, delay < 3600 ? delay : 3600);
}

/* Runs the arrival hooks. 1 when the message goes on to categorizing, 0
 * when the hooks finished with it (rejected, dropped, deferred). */
static int
run_hooks(struct categorize *c, const char *name, struct envelope *e,
    struct arrival *arr)
{
	int rc = arrival_hooks(arr, e);

	if (rc == ARRIVAL_PASS)
		return 1;
	arrival_discard(arr);
	if (rc == ARRIVAL_REJECT)
		reject_all(c, name, e, arr);
	else if (rc == ARRIVAL_DROP) {
		log_event("dropped", "id=%s hook=%s", name, log_quote(arr->hook));
		track("dropped", name, e, NULL, arr->hook);
		stage_done(&c->st, name, 0);
	} else if (rc == ARRIVAL_RETRY)
		hook_retry(c, name, e, arr);
	else {
		snprintf(arr->line, sizeof arr->line, "unable to run: %s",
		    strerror(errno));
		hook_retry(c, name, e, arr);
	}
	return 0;
}

static void
categorize_one(struct categorize *c, const char *name)
{
	struct envelope e = ENVELOPE_INIT, all = ENVELOPE_INIT;
	struct arrival arr;

	arrival_init(&arr, name);
	if (stage_read(&c->st, name, &e) < 0) {
		if (errno != ENOENT)
			set_aside(c, name);
		envelope_free(&e);
		return;
	}
	if (directory_refresh(&c->dir) < 0)
		retry_later(c, name, "unable to read the directory", RETRY_SEC);
	else if (!run_hooks(c, name, &e, &arr))
		;	/* rejected, dropped or deferred by a hook */
	else if (rewrite_sender(&c->dir, &arr, &e) < 0 ||
	    envelope_copy_head(&all, &e) < 0 || resolve(c, name, &e, &all) < 0) {
		arrival_discard(&arr);
		retry_later(c, name, "directory lookup failed", RETRY_SEC);
	} else
		finish(c, &arr, &all);
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
