/*
 * bh-ndr: turn failure, delay and success records into delivery status
 * notifications (RFC 3464 in an RFC 6522 multipart/report) and submit them
 * as new messages from the null sender, which travel the normal pipeline.
 *
 * reads   spool/ndr/new/NAME      records written by stage_report: the
 *                                 original's envelope head, field kind, and
 *                                 the recipients concerned; NAME is
 *                                 ORIGINAL-ID.SUFFIX
 *         spool/msg/NAME          the original message, returned in the report
 * writes  spool/msg/ID, spool/incoming/new/ID
 *                                 the report (sender <>, field report KIND:
 *                                 one per message and kind, records of one
 *                                 message waiting together merged), or a
 *                                 notice to the postmaster of a double bounce
 *         spool/badmail/new/NAME  failures of mail from <>, with field note;
 *                                 records that do not parse
 *         spool/ndr/retry/NAME    records deferred after a spool error
 * config  settings hostname, ndr-copy, postmaster, ndr-return-max (1M),
 *         expire (2d)
 * exit    0 queue drained (-1) or SIGTERM; 100 bad usage; 111 spool or
 *         system trouble: the supervisor restarts us
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "content.h"
#include "dsn.h"
#include "dsnrcpt.h"
#include "id.h"
#include "log.h"
#include "spool.h"
#include "stage.h"
#include "track.h"

enum {
	GROUP_MAX = 64,			/* records merged into one report */
	RETRY_SEC = 300,		/* after a spool error */
	SUBJECT_MAX = 200,		/* bytes of the original subject kept */
	RETURN_MAX_DEFAULT = 1 << 20,	/* settings ndr-return-max */
	EXPIRE_DEFAULT = 2 * 86400	/* settings expire */
};

struct ndr {
	struct stage st;
	struct spool incoming, badmail;
};

/* The records of one original message and one kind of report. */
struct group {
	const char *class;		/* failure, delay or success */
	size_t n;
	char names[GROUP_MAX][NAME_MAX + 1];
	struct envelope rec[GROUP_MAX];
	time_t written[GROUP_MAX];	/* record mtime: when it was reported */
};

/* What one report says about one recipient, and where that came from. */
struct picked {
	struct dsn_rcpt d;
	size_t rec;			/* index in the group */
	const struct rcpt *r;
};

struct picks {
	struct picked *v;
	size_t n, cap;
};

/* Records of one message share the name up to the first '.'. */
static int
same_message(const char *a, const char *b)
{
	size_t la = strcspn(a, "."), lb = strcspn(b, ".");

	return la == lb && strncmp(a, b, la) == 0;
}

static void
group_free(struct group *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		envelope_free(&g->rec[i]);
	g->n = 0;
}

/* Reads the record NAME into slot g->n. 1 added, 0 not wanted (gone, other
 * kind, other sender), -1 read error. */
static int
group_add(struct ndr *nd, struct group *g, const char *name)
{
	struct envelope *e = &g->rec[g->n];
	struct stat st;

	*e = (struct envelope)ENVELOPE_INIT;
	if (stage_read(&nd->st, name, e) < 0) {
		envelope_free(e);
		return errno == ENOENT ? 0 : -1;
	}
	/* kind_class returns literals: equal classes are equal pointers */
	if (g->n > 0 && (dsnrcpt_class(envelope_get(e, "kind")) != g->class ||
	    strcmp(e->sender, g->rec[0].sender) != 0)) {
		envelope_free(e);
		return 0;
	}
	snprintf(g->names[g->n], sizeof g->names[g->n], "%s", name);
	g->written[g->n] = fstatat(nd->st.in.newfd, name, &st, 0) == 0 ?
	    st.st_mtime : time(NULL);
	g->n++;
	return 1;
}

/* Adds the other records of the same message and kind waiting in new/,
 * so that the sender gets one report, not one per destination. */
static void
group_more(struct ndr *nd, struct group *g)
{
	struct dirent *d;
	DIR *dir;
	int fd;

	if ((fd = dup(nd->st.in.newfd)) < 0)
		return;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	rewinddir(dir);
	while (g->n < GROUP_MAX && (d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.' && strcmp(d->d_name, g->names[0]) != 0 &&
		    same_message(d->d_name, g->names[0]))
			group_add(nd, g, d->d_name);
	closedir(dir);
}

static int
picks_add(struct picks *p, const struct picked *one)
{
	struct picked *v;
	size_t i;

	for (i = 0; i < p->n; i++)	/* one line per address */
		if (strcasecmp(p->v[i].d.addr, one->d.addr) == 0)
			return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		if ((v = realloc(p->v, cap * sizeof *v)) == NULL)
			return -1;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = *one;
	return 0;
}

/* The recipients of the group that asked (or by default get) this kind
 * of report; with all set, every one. 0, or -1 ENOMEM. */
static int
pick_rcpts(const struct group *g, struct picks *p, int all)
{
	struct picked one;
	const struct rcpt *r;
	const char *kind;
	size_t i, k;

	for (i = 0; i < g->n; i++) {
		kind = envelope_get(&g->rec[i], "kind");
		for (k = 0; k < g->rec[i].nrcpt; k++) {
			r = &g->rec[i].rcpt[k];
			if (!all && !dsnrcpt_wanted(r, g->class))
				continue;
			memset(&one, 0, sizeof one);
			one.rec = i;
			one.r = r;
			dsnrcpt_fill(&one.d, r, kind, g->written[i]);
			if (picks_add(p, &one) < 0)
				return -1;
		}
	}
	return 0;
}

/* "Undeliverable: SUBJECT" and the like. */
static int
report_subject(struct buf *b, const char *class, const struct picks *p,
    const char *orig)
{
	const char *word = "Undeliverable";
	size_t i, n[3] = { 0, 0, 0 };

	if (strcmp(class, "delay") == 0)
		word = "Delayed";
	else if (strcmp(class, "success") == 0) {
		for (i = 0; i < p->n; i++)
			n[strcmp(p->v[i].d.action, "relayed") == 0 ? 1 :
			    strcmp(p->v[i].d.action, "expanded") == 0 ? 2 : 0]++;
		word = n[0] == p->n ? "Delivered" : n[1] == p->n ? "Relayed" :
		    n[2] == p->n ? "Expanded" : "Delivery report";
	}
	if (orig == NULL || *orig == '\0')
		return buf_printf(b, "%s: (no subject)", word);
	return buf_printf(b, "%s: %.*s", word, SUBJECT_MAX, orig);
}

/* RFC 3461 4.3: failures return what RET asks (the whole message by
 * default); delays and positive notices return the headers, as does a
 * message too large to return or in BINARYMIME, which no 8-bit part
 * can carry. */
static enum dsn_return
return_mode(const char *class, const struct envelope *head, int fd)
{
	const char *ret = envelope_get(head, "ret"), *body;
	struct stat st;

	if (fd < 0)
		return DSN_RETURN_NONE;	/* content lost: the report still goes */
	if (strcmp(class, "failure") != 0 || (ret && strcasecmp(ret, "HDRS") == 0))
		return DSN_RETURN_HEADERS;
	body = envelope_get(head, "body");
	if (body && strcasecmp(body, "BINARYMIME") == 0)
		return DSN_RETURN_HEADERS;
	if (fstat(fd, &st) < 0 || st.st_size >
	    conf_setting_size("ndr-return-max", RETURN_MAX_DEFAULT))
		return DSN_RETURN_HEADERS;
	return DSN_RETURN_FULL;
}

/* Who gets a report, and how it is marked. */
struct sendto {
	const char *to;		/* envelope and To: recipient */
	const char *copy;	/* second recipient (ndr-copy), or NULL */
	const char *note;	/* first paragraph of the text instead of the
				 * kind's own, or NULL */
	const char *marker;	/* envelope field "report": failure, delay,
				 * success, postmaster */
	const char *word;	/* Subject prefix, NULL: from the kind */
};

static int
add_field_num(struct envelope *e, const char *key, long long n)
{
	char num[32];

	snprintf(num, sizeof num, "%lld", n);
	return envelope_set(e, key, num);
}

/* The envelope of a report: from <>, like any received message. */
static int
report_envelope(struct envelope *env, const struct dsn_report *r,
    const struct sendto *to, long long size)
{
	struct rcpt *rc;

	if (envelope_set_sender(env, "") < 0 ||
	    add_field_num(env, "arrived", r->now) < 0 ||
	    add_field_num(env, "size", size) < 0 ||
	    envelope_set(env, "msgid", r->msgid) < 0 ||
	    envelope_set(env, "subject", r->subject) < 0 ||
	    envelope_set(env, "report", to->marker) < 0 ||
	    (r->is_8bit && envelope_set(env, "body", "8BITMIME") < 0))
		return -1;
	if ((rc = envelope_add_rcpt(env, to->to)) == NULL ||
	    rcpt_set(rc, "state", "new") < 0)
		return -1;
	if (to->copy && ((rc = envelope_add_rcpt(env, to->copy)) == NULL ||
	    rcpt_set(rc, "state", "new") < 0))
		return -1;
	return 0;
}

/* Writes the report as the new message ID and hands its envelope to
 * spool/incoming, the way bh-inject would. 0, or -1 with nothing left. */
static int
submit(struct ndr *nd, const char *id, const struct dsn_report *r,
    const struct sendto *to)
{
	struct envelope env = ENVELOPE_INIT;
	struct buf b = BUF_INIT;
	struct stat st;
	int fd, rc = -1, err;

	if ((fd = content_create(id)) < 0)
		return -1;
	if (dsn_write(fd, r) < 0 || fstat(fd, &st) < 0) {
		err = errno;
		content_abort(fd, id);
		errno = err;
		return -1;
	}
	if (content_commit(fd) < 0)
		goto out;
	if (report_envelope(&env, r, to, st.st_size) < 0 ||
	    envelope_format(&env, &b) < 0 ||
	    spool_handover(&nd->incoming, id, b.data, b.len) < 0)
		goto out;
	track("received", id, &env, NULL, to->marker);
	rc = 0;
out:
	err = errno;	/* the log names the cause, not the cleanup */
	if (rc < 0)
		content_unlink(id);
	envelope_free(&env);
	buf_free(&b);
	errno = err;
	return rc;
}

/* What a report says about the original message, from the group's head:
 * everything but the recipients, the content and the report's own names. */
static void
report_about(struct dsn_report *r, const struct group *g,
    const struct sendto *to)
{
	const struct envelope *head = &g->rec[0];

	memset(r, 0, sizeof *r);
	r->kind = g->class;
	r->hostname = conf_hostname();
	r->to = to->to;
	r->note = to->note;
	r->now = time(NULL);
	r->orig_msgid = envelope_get(head, "msgid");
	r->orig_subject = envelope_get(head, "subject");
	r->envid = envelope_get(head, "envid");
	r->arrived = dsnrcpt_time(envelope_get(head, "arrived"), r->now);
	if (strcmp(g->class, "delay") == 0)
		r->retry_until = r->arrived +
		    conf_setting_time("expire", EXPIRE_DEFAULT);
}

/* Builds the report on the group's picked recipients and submits it as
 * the new message id[cap]. 0 or -1. */
static int
report_group(struct ndr *nd, const struct group *g, const struct picks *p,
    const struct sendto *to, char *id, size_t cap)
{
	struct buf subject = BUF_INIT, msgid = BUF_INIT, boundary = BUF_INIT;
	struct dsn_report r;
	struct dsn_rcpt *d;
	size_t i;
	int rc = -1, fd = -1;

	if ((d = calloc(p->n + 1, sizeof *d)) == NULL)	/* never 0 bytes */
		return -1;
	for (i = 0; i < p->n; i++)
		d[i] = p->v[i].d;
	for (i = 0; i < g->n && fd < 0; i++)
		fd = content_open(g->names[i]);
	id_new(id, cap);
	report_about(&r, g, to);
	r.rcpt = d;
	r.nrcpt = p->n;
	r.content_fd = fd;
	/* the postmaster needs the headers to trace a double bounce */
	r.ret = strcmp(to->marker, "postmaster") == 0 ? DSN_RETURN_HEADERS :
	    return_mode(g->class, &g->rec[0], fd);
	r.is_8bit = fd >= 0 && dsn_scan_8bit(fd, r.ret) > 0;
	if ((to->word ? buf_printf(&subject, "%s: %.*s", to->word, SUBJECT_MAX,
	    r.orig_subject ? r.orig_subject : "(no subject)") :
	    report_subject(&subject, g->class, p, r.orig_subject)) < 0 ||
	    buf_printf(&msgid, "<%s@%s>", id, r.hostname) < 0 ||
	    buf_printf(&boundary, "=_bh_%s", id) < 0)
		goto out;
	r.subject = subject.data;
	r.msgid = msgid.data;
	r.boundary = boundary.data;
	rc = submit(nd, id, &r, to);
out:
	if (fd >= 0)
		close(fd);
	free(d);
	buf_free(&subject);
	buf_free(&msgid);
	buf_free(&boundary);
	return rc;
}

/* A spool error: every record of the group waits in retry/. */
static void
defer_group(struct ndr *nd, const struct group *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		if (stage_defer(&nd->st, g->names[i], &g->rec[i],
		    time(NULL) + RETRY_SEC) < 0)
			die(EXIT_TEMP, errno, "unable to defer %s", g->names[i]);
}

/* A record that does not parse (or is larger than ENVELOPE_MAX) cannot
 * be reported: it is kept aside as it is. */
static void
badmail_raw(struct ndr *nd, const char *name)
{
	if (renameat(nd->st.in.newfd, name, nd->badmail.newfd, name) < 0 ||
	    spool_fsync_dir(nd->badmail.newfd) < 0)
		die(EXIT_TEMP, errno, "unable to move %s to badmail", name);
	log_event("badmail", "id=%s msg=\"record does not parse\"", name);
}

/* Moves the record NAME to spool/badmail with a note of why; its content
 * link stays for the badmail entry. 0, or -1 (record untouched). */
static int
to_badmail(struct ndr *nd, const char *name, struct envelope *e,
    const char *why)
{
	struct buf b = BUF_INIT;
	size_t i;
	int rc;

	rc = envelope_set(e, "note", why) == 0 && envelope_format(e, &b) == 0 &&
	    spool_handover(&nd->badmail, name, b.data, b.len) == 0 ? 0 : -1;
	buf_free(&b);
	if (rc < 0)
		return -1;
	for (i = 0; i < e->nrcpt; i++)
		track("badmail", name, e, &e->rcpt[i], why);
	if (e->nrcpt == 0)
		track("badmail", name, e, NULL, why);
	log_event("badmail", "id=%s msg=%s", name, log_quote(why));
	stage_done(&nd->st, name, 1);
	return 0;
}

/* Tells the postmaster of a double bounce, with the failed message's
 * headers. A notice that itself fails goes to badmail without a notice
 * (its envelope says report=postmaster), so notices cannot loop. */
static void
notify_postmaster(struct ndr *nd, const struct group *g)
{
	const char *marker = envelope_get(&g->rec[0], "report");
	struct picks p = { NULL, 0, 0 };
	struct sendto to = { NULL, NULL, NULL, "postmaster",
	    "Postmaster notice: undeliverable mail from <>" };
	char pm[512], note[1024], id[ID_MAX];

	if ((marker && strcmp(marker, "postmaster") == 0) ||
	    conf_setting("postmaster", NULL, pm, sizeof pm) != 1 || pm[0] == '\0')
		return;
	snprintf(note, sizeof note, "A message from the null sender <> (a "
	    "delivery report or another automatic message) could not be "
	    "delivered. It is never returned to anyone (RFC 5321 section 6.1), "
	    "so it was kept as spool/badmail/new/%s on %s. These are the "
	    "recipients it failed for:", g->names[0],
	    conf_hostname());
	to.to = pm;
	to.note = note;
	if (pick_rcpts(g, &p, 1) < 0 || report_group(nd, g, &p, &to, id,
	    sizeof id) < 0)
		log_event("warning", "id=%s msg=\"unable to notify the "
		    "postmaster\" error=%s", g->names[0], log_quote(strerror(errno)));
	else
		log_event("postmaster", "id=%s report=%s to=%s", g->names[0], id,
		    log_quote(pm));
	free(p.v);
}

/* RFC 5321 6.1: mail from <> is never reported. A failure is kept in
 * badmail; delay and success records are simply finished. */
static void
null_sender(struct ndr *nd, struct group *g)
{
	if (strcmp(g->class, "failure") != 0) {
		log_event("dropped", "id=%s kind=%s msg=\"no report for mail "
		    "from <>\"", g->names[0], g->class);
		stage_done(&nd->st, g->names[0], 0);
		return;
	}
	if (to_badmail(nd, g->names[0], &g->rec[0], "failed message from the "
	    "null sender <> is never reported (RFC 5321 section 6.1)") < 0) {
		log_event("deferred", "id=%s error=%s", g->names[0],
		    log_quote(strerror(errno)));
		defer_group(nd, g);
		return;
	}
	notify_postmaster(nd, g);
}

static void
finish_group(struct ndr *nd, const struct group *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		stage_done(&nd->st, g->names[i], 0);
}

/* One report to the original sender for every picked recipient of the
 * group (with a copy to ndr-copy for failures), then the records go. */
static void
report(struct ndr *nd, struct group *g)
{
	struct picks p = { NULL, 0, 0 };
	struct sendto to = { NULL, NULL, NULL, NULL, NULL };
	char copy[512], id[ID_MAX], status[ID_MAX + 16];
	size_t i;

	if (pick_rcpts(g, &p, 0) < 0)
		die(EXIT_TEMP, errno, "unable to build a report");
	if (p.n == 0) {
		log_event("suppressed", "id=%s kind=%s msg=\"NOTIFY asks for "
		    "no report\"", g->names[0], g->class);
		finish_group(nd, g);
		return;
	}
	to.to = g->rec[0].sender;
	to.marker = g->class;
	if (strcmp(g->class, "failure") == 0 &&
	    conf_setting("ndr-copy", NULL, copy, sizeof copy) == 1 && copy[0] &&
	    strcasecmp(copy, to.to) != 0)
		to.copy = copy;
	if (report_group(nd, g, &p, &to, id, sizeof id) < 0) {
		log_event("deferred", "id=%s error=%s", g->names[0],
		    log_quote(strerror(errno)));
		defer_group(nd, g);
	} else {
		snprintf(status, sizeof status, "%s report %s", g->class, id);
		for (i = 0; i < p.n; i++)
			track("reported", g->names[p.v[i].rec], &g->rec[p.v[i].rec],
			    p.v[i].r, status);
		log_event("report", "id=%s report=%s kind=%s rcpts=%zu "
		    "records=%zu to=%s", g->names[0], id, g->class, p.n, g->n,
		    log_quote(to.to));
		finish_group(nd, g);
	}
	free(p.v);
}

static void
ndr_one(struct ndr *nd, const char *name)
{
	static struct group g;	/* 64 records: kept off the stack */
	int rc;

	g.n = 0;
	g.class = NULL;
	if ((rc = group_add(nd, &g, name)) <= 0) {
		if (rc < 0 && (errno == EINVAL || errno == EFBIG))
			badmail_raw(nd, name);
		else if (rc < 0)
			die(EXIT_TEMP, errno, "unable to read %s", name);
		return;
	}
	g.class = dsnrcpt_class(envelope_get(&g.rec[0], "kind"));
	if (g.class == NULL) {
		if (to_badmail(nd, name, &g.rec[0], "record of unknown kind") < 0)
			die(EXIT_TEMP, errno, "unable to move %s to badmail", name);
	} else if (g.rec[0].sender[0] == '\0')
		null_sender(nd, &g);
	else {
		group_more(nd, &g);
		report(nd, &g);
	}
	group_free(&g);
}

int
main(int argc, char **argv)
{
	struct ndr nd;
	char name[NAME_MAX + 1];

	stage_start(&nd.st, "ndr", "ndr", argc, argv);
	if (spool_open(&nd.incoming, "incoming") < 0 ||
	    spool_open(&nd.badmail, "badmail") < 0)
		die(EXIT_TEMP, errno, "unable to open the spool");
	while (stage_next(&nd.st, name, sizeof name))
		ndr_one(&nd, name);
	return EXIT_DONE;
}
