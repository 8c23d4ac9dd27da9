/*
 * bh-queue: the queue viewer, and the administrator's actions on queued mail.
 *
 *	bh-queue [--json]                    one line per queue and destination
 *	bh-queue list QUEUE [-n N] [--json]  the messages of one queue
 *	bh-queue show ID [--json]            envelope, recipients, headers
 *	bh-queue freeze DEST|ID   thaw DEST|ID   retry [DEST]
 *	bh-queue delete ID [--ndr]   requeue ID
 *
 * reads   spool/QUEUE/{new,retry,frozen,hold,scheduled}/NAME, spool/msg/NAME
 *         (headers and sizes), spool/state/DEST, settings unreachable-after
 * writes  spool/QUEUE/frozen/ (frozen messages), spool/state/DEST (Frozen),
 *         spool/QUEUE/new/ (thaw, retry), spool/route/new/ (requeue),
 *         spool/ndr/new/ (delete --ndr), log/track/ (what was done)
 * exit    0 done; 100 bad usage or no such message or destination;
 *         111 a stage is working on the message (try again) or spool trouble
 *
 * An argument made of 16 digits and a '-' (the shape of a message id) names
 * a message; anything else names a destination. Every action takes an
 * envelope with one rename (lib/queue.h, queue_take), so it races safely
 * with the stages: the loser of a rename sees ENOENT and does nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "content.h"
#include "dest.h"
#include "log.h"
#include "queue.h"
#include "queueview.h"
#include "root.h"
#include "spool.h"
#include "stage.h"
#include "track.h"

enum { UNREACHABLE_AFTER = 3600 };

static int opt_json, opt_ndr;
static time_t now;

static int
is_message_id(const char *s)
{
	return strspn(s, "0123456789") == 16 && s[16] == '-';
}

/* ---- the views (lib/queueview.h) ---- */

static int
cmd_summary(void)
{
	struct queueview v = { now, opt_json };
	struct queue_summary s;

	if (queue_summary_build(&s, now, conf_setting_time("unreachable-after",
	    UNREACHABLE_AFTER)) < 0)
		die(EXIT_TEMP, errno, "unable to read the spool");
	queueview_summary(&v, &s);
	queue_summary_free(&s);
	return EXIT_DONE;
}

static int
cmd_list(const char *which, long limit)
{
	struct queueview v = { now, opt_json };

	queueview_list(&v, which, limit);
	return EXIT_DONE;
}

static int
cmd_show(const char *id)
{
	struct queueview v = { now, opt_json };

	if (queueview_show(&v, id) == 0) {
		fprintf(stderr, "bh-queue: no message %s\n", id);
		return EXIT_PERM;
	}
	return EXIT_DONE;
}

/* ---- actions: find envelopes, take each with one rename ---- */

/* Reads the envelope we now own at QUEUE/SUB/NAME. */
static int
read_owned(const char *queue, const char *sub, const char *name,
    struct envelope *e)
{
	char path[PATH_MAX];
	int fd, rc;

	if (root_path(path, sizeof path, "spool/%s/%s", queue, sub) < 0 ||
	    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = envelope_read(e, fd, name);
	close(fd);
	return rc;
}

static void
track_owned(const char *event, const struct queue_match *m, const char *sub,
    const char *file, const char *status)
{
	struct envelope e = ENVELOPE_INIT;

	if (read_owned(m->queue, sub, file, &e) == 0)
		track(event, m->name, &e, NULL, status);
	envelope_free(&e);
}

static int
act_freeze(const struct queue_match *m)
{
	if (queue_take(m->queue, m->sub, m->name, "frozen", NULL) < 0)
		return -1;
	track_owned("frozen", m, "frozen", m->name, "frozen by administrator");
	printf("frozen %s/%s\n", m->queue, m->name);
	return 0;
}

/* A thawed envelope whose retry time is still to come waits in retry/
 * (rename keeps the mtime); any other goes straight to new/. */
static int
act_thaw(const struct queue_match *m)
{
	const char *to = m->mtime > now ? "retry" : "new";

	if (queue_take(m->queue, "frozen", m->name, to, NULL) < 0)
		return -1;
	track_owned("thawed", m, to, m->name, "thawed by administrator");
	printf("thawed %s/%s\n", m->queue, m->name);
	return 0;
}

static int
act_release(const struct queue_match *m)
{
	if (queue_take(m->queue, "retry", m->name, "new", NULL) < 0)
		return -1;
	printf("retry %s/%s\n", m->queue, m->name);
	return 0;
}

static int
is_deleted(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state"), *c = rcpt_get(r, "code"),
	    *why = rcpt_get(r, "reason");

	return s && c && why && strcmp(s, "failed") == 0 &&
	    strcmp(c, "5.7.1") == 0 && strcmp(why, "deleted by administrator") == 0;
}

static int
is_finished(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return s != NULL && (strcmp(s, "delivered") == 0 ||
	    strcmp(s, "failed") == 0 || strcmp(s, "relayed") == 0 ||
	    strcmp(s, "expanded") == 0);
}

/* Fails every unfinished recipient with 5.7.1 and hands a failure record
 * to bh-ndr. The number reported, or -1. */
static int
report_deleted(const char *name, struct envelope *e)
{
	size_t i;
	int n = 0;

	for (i = 0; i < e->nrcpt; i++)
		if (!is_finished(&e->rcpt[i])) {
			if (rcpt_outcome(&e->rcpt[i], "failed", "5.7.1",
			    "deleted by administrator") < 0)
				return -1;
			n++;
		}
	if (n > 0 && stage_report(name, e, "failure", is_deleted) < 0)
		return -1;
	return n;
}

/* Puts an envelope we took into tmp/ back where it was. */
static void
give_back(const struct queue_match *m, const char *taken)
{
	if (queue_take(m->queue, "tmp", taken, m->sub, m->name) < 0)
		die(EXIT_TEMP, errno, "unable to put back %s/tmp/%s", m->queue,
		    taken);
}

static void
remove_owned(const struct queue_match *m, const char *taken)
{
	char path[PATH_MAX];

	if (root_path(path, sizeof path, "spool/%s/tmp/%s", m->queue, taken) < 0 ||
	    (unlink(path) < 0 && errno != ENOENT))
		die(EXIT_TEMP, errno, "unable to remove %s/tmp/%s", m->queue,
		    taken);
}

/* The envelope is renamed into tmp/ under a name no stage writes, so it
 * is ours alone; only then are its report and removal done. */
static int
act_delete(const struct queue_match *m)
{
	struct envelope e = ENVELOPE_INIT;
	char taken[320];
	int n = 0;

	snprintf(taken, sizeof taken, "%s.deleted-%d", m->name, (int)getpid());
	if (queue_take(m->queue, m->sub, m->name, "tmp", taken) < 0)
		return -1;
	if (read_owned(m->queue, "tmp", taken, &e) < 0)
		die(EXIT_TEMP, errno, "unable to read %s", m->name);
	if (opt_ndr && strcmp(m->queue, "ndr") != 0 &&
	    strcmp(m->queue, "badmail") != 0 &&
	    (n = report_deleted(m->name, &e)) < 0) {
		give_back(m, taken);
		die(EXIT_TEMP, errno, "unable to queue a report for %s", m->name);
	}
	track("deleted", m->name, &e, NULL, "deleted by administrator");
	envelope_free(&e);
	remove_owned(m, taken);
	content_unlink(m->name);
	if (n > 0)
		printf("deleted %s/%s, failure report for %d recipient%s\n",
		    m->queue, m->name, n, n == 1 ? "" : "s");
	else
		printf("deleted %s/%s\n", m->queue, m->name);
	return 0;
}

/* What routing decided is forgotten: bh-route decides again. */
static void
requeue_reset(struct envelope *e)
{
	static const char *fields[] = { "dest", "connector", "hops", "tries",
	    "first-failure", "next-attempt" };
	size_t i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		envelope_set(e, fields[i], NULL);
	for (i = 0; i < e->nrcpt; i++) {
		struct rcpt *r = &e->rcpt[i];
		if (is_finished(r))
			continue;
		rcpt_set(r, "state", rcpt_get(r, "box") ? "local" : "remote");
		rcpt_set(r, "code", NULL);
		rcpt_set(r, "reason", NULL);
		rcpt_set(r, "dest", NULL);
	}
}

static int
act_requeue(const struct queue_match *m)
{
	static struct spool route;
	static int is_open;
	struct envelope e = ENVELOPE_INIT;
	struct buf b = BUF_INIT;
	char taken[320];

	if (strcmp(m->queue, "route") == 0 && strcmp(m->sub, "new") == 0) {
		printf("%s/%s is already waiting to be routed\n", m->queue, m->name);
		return 0;
	}
	if (!is_open && spool_open(&route, "route") < 0)
		die(EXIT_TEMP, errno, "unable to open spool/route");
	is_open = 1;
	snprintf(taken, sizeof taken, "%s.requeue-%d", m->name, (int)getpid());
	if (queue_take(m->queue, m->sub, m->name, "tmp", taken) < 0)
		return -1;
	if (read_owned(m->queue, "tmp", taken, &e) < 0)
		die(EXIT_TEMP, errno, "unable to read %s", m->name);
	requeue_reset(&e);
	if (envelope_format(&e, &b) < 0 ||
	    spool_handover(&route, m->name, b.data, b.len) < 0) {
		give_back(m, taken);
		die(EXIT_TEMP, errno, "unable to requeue %s", m->name);
	}
	track("requeued", m->name, &e, NULL, "requeued by administrator");
	buf_free(&b);
	envelope_free(&e);
	remove_owned(m, taken);
	printf("requeued %s/%s\n", m->queue, m->name);
	return 0;
}

/* queue_act, dying on trouble other than a stage's race. */
static int
act_all(struct queue_selection *s, int (*act)(const struct queue_match *),
    int *nbusy)
{
	struct queue_match failed;
	int done = queue_act(s, act, nbusy, &failed);

	if (done < 0)
		die(EXIT_TEMP, errno, "unable to move %s/%s/%s", failed.queue,
		    failed.sub, failed.name);
	queue_selection_free(s);
	return done;
}

/* ---- commands ---- */

/* The end of an action on a message: not found, busy, or done. */
static int
message_result(const char *id, int done, int nbusy, const char *already)
{
	struct queue_selection s = { id, NULL, already, NULL, NULL, 0, 0 };

	if (nbusy > 0) {
		fprintf(stderr, "bh-queue: %s: a stage is working on it, "
		    "try again\n", id);
		return EXIT_TEMP;
	}
	if (done > 0)
		return EXIT_DONE;
	if (already != NULL) {
		if (queue_select(&s) < 0)
			die(EXIT_TEMP, errno, "unable to read the spool");
		if (s.n > 0) {
			printf("%s/%s is already %s\n", s.v[0].queue, s.v[0].name,
			    queue_sub_state(s.v[0].sub));
			free(s.v);
			return EXIT_DONE;
		}
	}
	fprintf(stderr, "bh-queue: no message %s\n", id);
	return EXIT_PERM;
}

static int
dest_check(const char *dest, struct dest_state *st)
{
	if (dest_read(dest, st) < 0) {
		fprintf(stderr, "bh-queue: bad destination name %s\n", dest);
		return -1;
	}
	return 0;
}

static int
cmd_freeze(const char *arg)
{
	struct queue_selection s = { arg, NULL, " new retry ", NULL, NULL, 0, 0 };
	struct dest_state st;
	int done, nbusy;

	if (is_message_id(arg)) {
		done = act_all(&s, act_freeze, &nbusy);
		return message_result(arg, done, nbusy,
		    " frozen hold scheduled ");
	}
	if (dest_check(arg, &st) < 0)
		return EXIT_PERM;
	snprintf(st.state, sizeof st.state, "Frozen");
	snprintf(st.error, sizeof st.error, "frozen by administrator");
	st.next_attempt = 0;
	st.since = now;
	if (dest_write(arg, &st) < 0)
		die(EXIT_TEMP, errno, "unable to write spool/state/%s", arg);
	printf("frozen destination %s\n", arg);
	return EXIT_DONE;
}

/* Moves retry/ envelopes (of one destination, or all) into new/ now. */
static int
release_retries(const char *dest)
{
	struct queue_selection s = { NULL, dest, " retry ", NULL, NULL, 0, 0 };
	int nbusy;

	return act_all(&s, act_release, &nbusy);
}

static int
cmd_thaw(const char *arg)
{
	struct queue_selection s = { arg, NULL, " frozen ", NULL, NULL, 0, 0 };
	struct dest_state st;
	int done, nbusy;

	if (is_message_id(arg)) {
		done = act_all(&s, act_thaw, &nbusy);
		return message_result(arg, done, nbusy, NULL);
	}
	if (dest_check(arg, &st) < 0)
		return EXIT_PERM;
	if (strcmp(st.state, "Frozen") != 0) {
		printf("destination %s is not frozen\n", arg);
		return EXIT_DONE;
	}
	if (dest_clear(arg) < 0)
		die(EXIT_TEMP, errno, "unable to remove spool/state/%s", arg);
	printf("thawed destination %s\n", arg);
	release_retries(arg);	/* what waited for the thaw goes now */
	return EXIT_DONE;
}

static void
clear_retry_state(const char *dest)
{
	struct dest_state st;

	if (dest_read(dest, &st) > 0 && strcmp(st.state, "Retry") == 0) {
		if (dest_clear(dest) < 0)
			die(EXIT_TEMP, errno, "unable to remove spool/state/%s",
			    dest);
		printf("destination %s is Ready\n", dest);
	}
}

static int
cmd_retry(const char *dest)
{
	char path[PATH_MAX];
	struct dest_state st;
	struct dirent *d;
	DIR *dir;

	if (dest != NULL && dest_check(dest, &st) < 0)
		return EXIT_PERM;
	release_retries(dest);
	if (dest != NULL) {
		clear_retry_state(dest);
		return EXIT_DONE;
	}
	if (root_path(path, sizeof path, "spool/state") < 0 ||
	    (dir = opendir(path)) == NULL)
		return EXIT_DONE;
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.' && strstr(d->d_name, ".tmp") == NULL)
			clear_retry_state(d->d_name);
	closedir(dir);
	return EXIT_DONE;
}

static int
cmd_delete(const char *arg)
{
	struct queue_selection s = { NULL, NULL, " new retry frozen hold scheduled ",
	    NULL, NULL, 0, 0 };
	struct dest_state st;
	int done, nbusy;

	if (is_message_id(arg)) {
		s.id = arg;
		done = act_all(&s, act_delete, &nbusy);
		return message_result(arg, done, nbusy, NULL);
	}
	if (dest_check(arg, &st) < 0)
		return EXIT_PERM;
	s.dest = arg;
	done = act_all(&s, act_delete, &nbusy);
	printf("%d message%s deleted for %s\n", done, done == 1 ? "" : "s", arg);
	return nbusy > 0 ? EXIT_TEMP : EXIT_DONE;
}

static int
cmd_requeue(const char *id)
{
	struct queue_selection s = { id, NULL, " new retry frozen hold scheduled ",
	    " route local remote ", NULL, 0, 0 };
	int done, nbusy;

	if (!is_message_id(id)) {
		fprintf(stderr, "bh-queue: requeue takes a message id\n");
		return EXIT_PERM;
	}
	done = act_all(&s, act_requeue, &nbusy);
	return message_result(id, done, nbusy, NULL);
}

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: bh-queue [--json]\n"
	    "       bh-queue list QUEUE|DEST [-n N] [--json]\n"
	    "       bh-queue show ID [--json]\n"
	    "       bh-queue freeze DEST|ID | thaw DEST|ID | retry [DEST]\n"
	    "       bh-queue delete ID|DEST [--ndr] | requeue ID\n");
	exit(EXIT_PERM);
}

/* Takes the options out of argv wherever they are; the words remain. */
static int
parse_options(int argc, char **argv, char **words, long *limit)
{
	int i, n = 0;
	char *end;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			opt_json = 1;
		else if (strcmp(argv[i], "--ndr") == 0)
			opt_ndr = 1;
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			*limit = strtol(argv[++i], &end, 10);
			if (*end != '\0' || *limit < 0)
				usage();
		} else if (argv[i][0] == '-')
			usage();
		else if (n < 3)
			words[n++] = argv[i];
		else
			usage();
	}
	return n;
}

int
main(int argc, char **argv)
{
	char *w[3] = { NULL, NULL, NULL };
	long limit = 100;
	int n;

	log_init("queue");
	now = time(NULL);
	n = parse_options(argc, argv, w, &limit);
	if (n == 0)
		return cmd_summary();
	if (strcmp(w[0], "retry") == 0 && n <= 2)
		return cmd_retry(w[1]);
	if (n != 2)
		usage();
	if (strcmp(w[0], "list") == 0)
		return cmd_list(w[1], limit);
	if (strcmp(w[0], "show") == 0)
		return cmd_show(w[1]);
	if (strcmp(w[0], "freeze") == 0)
		return cmd_freeze(w[1]);
	if (strcmp(w[0], "thaw") == 0)
		return cmd_thaw(w[1]);
	if (strcmp(w[0], "delete") == 0)
		return cmd_delete(w[1]);
	if (strcmp(w[0], "requeue") == 0)
		return cmd_requeue(w[1]);
	usage();
}
