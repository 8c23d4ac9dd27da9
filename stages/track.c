/*
 * bh-track: message tracking search, and removal of old tracking files.
 *
 *	bh-track [--sender A] [--recipient A] [--message-id M] [--id ID]
 *	         [--since T] [--until T] [FILE|DIR...]
 *	bh-track --expire
 *
 * reads   ROOT/log/track/YYYY-MM-DD (lib/track.h), or the files and
 *         directories given (to follow a message across several roots);
 *         settings tracking-days (--expire)
 * writes  stdout: each matching message's history, grouped by message, in
 *         time order; --expire removes files older than tracking-days
 * exit    0 done (also when nothing matched); 100 bad usage; 111 a log
 *         could not be read or removed
 *
 * A message is the envelope name's part before the first '.': the pieces a
 * message is split into (NAME.R1, NAME.F...) belong to it. A message is
 * shown when every criterion given is met by some line of it within the
 * time range; then all its lines within the range are shown.
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

#include "buf.h"
#include "conf.h"
#include "log.h"
#include "root.h"
#include "track.h"

enum { LINE_MAX_BYTES = 8192, PAIRS_MAX = 32, DEFAULT_DAYS = 7 };

struct pair {
	char *key, *value;
};

struct event {
	time_t when;
	size_t seq;		/* order read: keeps equal times in order */
	char *group;		/* message id: the name up to the first '.' */
	struct pair pairs[PAIRS_MAX];
	size_t npairs;
	char *text;		/* the line, cut into pairs in place */
};

struct search {
	const char *sender, *rcpt, *msgid, *id;
	time_t since, until;
	struct event *v;
	size_t n, cap;
};

/* ---- reading lines ---- */

/* Cuts the value at *p (bare, or quoted with \" and \\) in place. */
static char *
cut_value(char **p)
{
	char *s = *p, *out, *start;

	if (*s != '"') {
		start = s;
		s += strcspn(s, " ");
		if (*s != '\0')
			*s++ = '\0';
		*p = s;
		return start;
	}
	start = out = ++s;
	while (*s != '\0' && *s != '"') {
		if (*s == '\\' && s[1] != '\0')
			s++;
		*out++ = *s++;
	}
	if (*s == '"')
		s++;
	*out = '\0';
	*p = s + strspn(s, " ");
	return start;
}

static void
parse_pairs(struct event *e)
{
	char *p = e->text, *eq;

	while (*p != '\0' && e->npairs < PAIRS_MAX) {
		p += strspn(p, " ");
		if ((eq = strchr(p, '=')) == NULL)
			break;
		*eq = '\0';
		e->pairs[e->npairs].key = p;
		p = eq + 1;
		e->pairs[e->npairs++].value = cut_value(&p);
	}
}

static const char *
event_get(const struct event *e, const char *key)
{
	size_t i;

	for (i = 0; i < e->npairs; i++)
		if (strcmp(e->pairs[i].key, key) == 0)
			return e->pairs[i].value;
	return NULL;
}

/* "2026-11-28T11:22:33" (Z optional) as UTC; -1 when bad. */
static time_t
parse_stamp(const char *s, int date_only_end)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof tm);
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL) {
		if (*end == 'Z')
			end++;
		return *end == '\0' ? timegm(&tm) : -1;
	}
	memset(&tm, 0, sizeof tm);
	if ((end = strptime(s, "%Y-%m-%d", &tm)) != NULL && *end == '\0')
		return timegm(&tm) + (date_only_end ? 86399 : 0);
	return -1;
}

/* An address criterion: the whole address, or "@domain" for a domain,
 * without regard to case or angle brackets. */
static int
addr_matches(const char *value, const char *want)
{
	size_t vn, wn;

	if (value == NULL)
		return 0;
	if (*value == '<')
		value++;
	if (*want == '<')
		want++;
	vn = strcspn(value, ">");
	wn = strcspn(want, ">");
	if (*want == '@')
		return vn >= wn && strncasecmp(value + vn - wn, want, wn) == 0;
	return vn == wn && strncasecmp(value, want, wn) == 0;
}

static int
msgid_matches(const char *value, const char *want)
{
	return addr_matches(value, want) && *want != '@';
}

static void
add_event(struct search *s, char *line, size_t seq)
{
	struct event *e;
	const char *t, *id;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		if ((e = realloc(s->v, cap * sizeof *e)) == NULL)
			die(EXIT_TEMP, errno, "out of memory");
		s->v = e;
		s->cap = cap;
	}
	e = &s->v[s->n];
	memset(e, 0, sizeof *e);
	if ((e->text = strdup(line)) == NULL)
		die(EXIT_TEMP, errno, "out of memory");
	parse_pairs(e);
	if ((t = event_get(e, "time")) == NULL ||
	    (e->when = parse_stamp(t, 0)) < 0 ||
	    (s->since && e->when < s->since) || (s->until && e->when > s->until)) {
		free(e->text);
		return;
	}
	id = event_get(e, "id");
	if ((e->group = strndup(id ? id : "", id ? strcspn(id, ".") : 0)) == NULL)
		die(EXIT_TEMP, errno, "out of memory");
	e->seq = seq;
	s->n++;
}

static void
read_file(struct search *s, const char *path)
{
	static size_t seq;
	char line[LINE_MAX_BYTES];
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die(EXIT_TEMP, errno, "unable to read %s", path);
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0')
			add_event(s, line, seq++);
	}
	fclose(f);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every file of a directory, oldest day first. */
static void
read_dir(struct search *s, const char *dir)
{
	char path[PATH_MAX + 256], **names = NULL;
	size_t n = 0, i;
	struct dirent *d;
	DIR *dp;

	if ((dp = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return;	/* nothing tracked yet */
		die(EXIT_TEMP, errno, "unable to read %s", dir);
	}
	while ((d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		if ((names = realloc(names, (n + 1) * sizeof *names)) == NULL ||
		    (names[n++] = strdup(d->d_name)) == NULL)
			die(EXIT_TEMP, errno, "out of memory");
	}
	closedir(dp);
	if (n > 1)
		qsort(names, n, sizeof *names, name_cmp);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		read_file(s, path);
		free(names[i]);
	}
	free(names);
}

static void
read_source(struct search *s, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		read_dir(s, path);
	else
		read_file(s, path);
}

/* ---- grouping and printing ---- */

/* Events of one message together, the message first seen first; within a
 * message, in time order. */
static int
event_cmp(const void *a, const void *b)
{
	const struct event *x = *(struct event *const *)a;
	const struct event *y = *(struct event *const *)b;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
criteria_met(const struct search *s, struct event **g, size_t n)
{
	int sender = !s->sender, rcpt = !s->rcpt, msgid = !s->msgid,
	    id = !s->id;
	size_t i, idlen = s->id ? strcspn(s->id, ".") : 0;

	for (i = 0; i < n; i++) {
		sender |= s->sender && addr_matches(event_get(g[i], "sender"),
		    s->sender);
		rcpt |= s->rcpt && addr_matches(event_get(g[i], "rcpt"), s->rcpt);
		msgid |= s->msgid && msgid_matches(event_get(g[i], "msgid"),
		    s->msgid);
		id |= s->id && strlen(g[i]->group) == idlen &&
		    strncmp(g[i]->group, s->id, idlen) == 0;
	}
	return sender && rcpt && msgid && id;
}

static int
is_head_key(const char *key)
{
	static const char *keys[] = { "time", "event", "msgid", "sender",
	    "subject" };
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

/* The message's facts that repeat on every line (size, server, peer) are
 * shown when they first appear or change. */
struct shown {
	const char *size, *server, *peer;
};

static int
is_repeat(struct shown *sh, const struct pair *p)
{
	const char **slot = strcmp(p->key, "size") == 0 ? &sh->size :
	    strcmp(p->key, "server") == 0 ? &sh->server :
	    strcmp(p->key, "peer") == 0 ? &sh->peer : NULL;

	if (slot == NULL)
		return 0;
	if (*slot != NULL && strcmp(*slot, p->value) == 0)
		return 1;
	*slot = p->value;
	return 0;
}

/* "  TIME EVENT     key=value ...", without the keys of the heading. */
static void
print_event(const struct event *e, struct shown *sh)
{
	struct buf b = BUF_INIT;
	const char *name = event_get(e, "event");
	size_t j;

	buf_printf(&b, "  %s %-9s", event_get(e, "time"), name ? name : "-");
	for (j = 0; j < e->npairs; j++) {
		const struct pair *p = &e->pairs[j];
		if (is_head_key(p->key) || (strcmp(p->key, "id") == 0 &&
		    strcmp(p->value, e->group) == 0) || is_repeat(sh, p))
			continue;
		buf_printf(&b, " %s=%s", p->key, log_quote(p->value));
	}
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	if (b.data != NULL)
		puts(b.data);
	buf_free(&b);
}

static void
print_group(struct event **g, size_t n)
{
	const char *msgid = NULL, *sender = NULL, *subject = NULL, *v;
	struct shown sh = { NULL, NULL, NULL };
	size_t i;

	for (i = 0; i < n; i++) {
		if (!msgid && (v = event_get(g[i], "msgid")) != NULL)
			msgid = v;
		if (!sender && (v = event_get(g[i], "sender")) != NULL)
			sender = v;
		if (!subject && (v = event_get(g[i], "subject")) != NULL)
			subject = v;
	}
	printf("message %s", *g[0]->group ? g[0]->group : "-");
	if (msgid != NULL)
		printf(" %s", msgid);
	printf(" from %s\n", sender ? sender : "-");
	if (subject != NULL)
		printf("  subject %s\n", log_quote(subject));
	for (i = 0; i < n; i++)
		print_event(g[i], &sh);
}

/* Events of one message next to each other, each message in time order. */
static int
group_cmp(const void *a, const void *b)
{
	const struct event *x = *(struct event *const *)a;
	const struct event *y = *(struct event *const *)b;
	int c = strcmp(x->group, y->group);

	return c != 0 ? c : event_cmp(a, b);
}

struct group {
	struct event **first;
	size_t n;
};

/* Messages by the time of their first event. */
static int
first_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	return event_cmp(x->first, y->first);
}

/* Sorts events into messages and prints those that meet the criteria. */
static void
report(struct search *s)
{
	struct event **by = malloc((s->n + 1) * sizeof *by);
	struct group *g = malloc((s->n + 1) * sizeof *g);
	size_t i, ng = 0, shown = 0;

	if (by == NULL || g == NULL)
		die(EXIT_TEMP, errno, "out of memory");
	for (i = 0; i < s->n; i++)
		by[i] = &s->v[i];
	if (s->n > 1)
		qsort(by, s->n, sizeof *by, group_cmp);
	for (i = 0; i < s->n; i++) {
		if (i == 0 || strcmp(by[i]->group, by[i - 1]->group) != 0) {
			g[ng].first = &by[i];
			g[ng++].n = 0;
		}
		g[ng - 1].n++;
	}
	if (ng > 1)
		qsort(g, ng, sizeof *g, first_cmp);
	for (i = 0; i < ng; i++)
		if (criteria_met(s, g[i].first, g[i].n)) {
			printf(shown++ ? "\n" : "");
			print_group(g[i].first, g[i].n);
		}
	free(g);
	free(by);
}

/* ---- expiry ---- */

static long
tracking_days(void)
{
	char buf[32], *end;
	long days;

	if (conf_setting("tracking-days", NULL, buf, sizeof buf) <= 0)
		return DEFAULT_DAYS;
	days = strtol(buf, &end, 10);
	if (end == buf || (*end != '\0' && strcmp(end, "d") != 0) || days < 0)
		die(EXIT_PERM, 0, "bad settings tracking-days: %s", buf);
	return days;
}

static void
print_removed(const char *name)
{
	printf("removed log/track/%s\n", name);
}

/* Removes each day's file once the day ended more than tracking-days days
 * ago, so every line is kept at least that long. 0 days keeps all. */
static int
expire(void)
{
	tracking_days();	/* dies on a bad setting */
	if (track_expire(print_removed) < 0)
		die(EXIT_TEMP, errno, "unable to expire log/track");
	return EXIT_DONE;
}

/* ---- options ---- */

/* An absolute time ('YYYY-MM-DD', 'YYYY-MM-DDTHH:MM:SS', UTC) or one
 * relative to now ('2h', '30m', '7d'). */
static time_t
parse_when(const char *s, int is_until)
{
	time_t t = parse_stamp(s, is_until);
	long long ago;

	if (t >= 0)
		return t;
	if ((ago = conf_parse_time(s)) >= 0)
		return time(NULL) - ago;
	die(EXIT_PERM, 0, "bad time %s: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS "
	    "or a duration like 2h", s);
}

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: bh-track [--sender A] [--recipient A] "
	    "[--message-id M] [--id ID]\n"
	    "                [--since T] [--until T] [FILE|DIR...]\n"
	    "       bh-track --expire\n");
	exit(EXIT_PERM);
}

/* --name VALUE or --name=VALUE at argv[*i]: the value, or NULL. */
static const char *
option(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		usage();
	return argv[++*i];
}

int
main(int argc, char **argv)
{
	static struct search s;
	char dir[PATH_MAX];
	const char *v;
	char **sources = calloc(argc, sizeof *sources);
	int i, nsources = 0;

	log_init("track");
	if (sources == NULL)
		die(EXIT_TEMP, errno, "out of memory");
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--expire") == 0)
			return expire();
		if ((v = option(argc, argv, &i, "--sender")) != NULL)
			s.sender = v;
		else if ((v = option(argc, argv, &i, "--recipient")) != NULL)
			s.rcpt = v;
		else if ((v = option(argc, argv, &i, "--message-id")) != NULL)
			s.msgid = v;
		else if ((v = option(argc, argv, &i, "--id")) != NULL)
			s.id = v;
		else if ((v = option(argc, argv, &i, "--since")) != NULL)
			s.since = parse_when(v, 0);
		else if ((v = option(argc, argv, &i, "--until")) != NULL)
			s.until = parse_when(v, 1);
		else if (argv[i][0] == '-')
			usage();
		else if (sources != NULL)
			sources[nsources++] = argv[i];
	}
	for (i = 0; i < nsources; i++)
		read_source(&s, sources[i]);
	free(sources);
	if (nsources == 0) {
		if (root_path(dir, sizeof dir, "log/track") < 0)
			die(EXIT_PERM, errno, "root path too long");
		read_dir(&s, dir);
	}
	report(&s);
	return EXIT_DONE;
}
