#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "content.h"
#include "log.h"
#include "queueview.h"

enum { HEADERS_MAX = 64 * 1024 };

/* A table printed with aligned columns. */
struct table {
	size_t ncols, nrows, cap;
	const int *right;	/* per column: 1 right-aligned */
	char **cells;		/* nrows * ncols, malloc'ed strings */
};

/* "45s", "12m", "3h05m", "2d03h" into buf. */
static void
format_age(long long s, char *buf, size_t cap)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, cap, "%llds", s);
	else if (s < 3600)
		snprintf(buf, cap, "%lldm", s / 60);
	else if (s < 86400)
		snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, cap, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

/* "812", "4.1K", "12.0M" into buf. */
static void
format_size(long long n, char *buf, size_t cap)
{
	if (n < 1024)
		snprintf(buf, cap, "%lld", n);
	else if (n < 1024 * 1024)
		snprintf(buf, cap, "%.1fK", n / 1024.0);
	else if (n < 1024LL * 1024 * 1024)
		snprintf(buf, cap, "%.1fM", n / (1024.0 * 1024));
	else
		snprintf(buf, cap, "%.1fG", n / (1024.0 * 1024 * 1024));
}

/* Adds a row of ncols cells (copied). 0 or -1 ENOMEM. */
static int
table_row(struct table *t, const char *const *cells)
{
	size_t i;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **v = realloc(t->cells, cap * t->ncols * sizeof *v);
		if (v == NULL)
			return -1;
		t->cells = v;
		t->cap = cap;
	}
	for (i = 0; i < t->ncols; i++)
		if ((t->cells[t->nrows * t->ncols + i] =
		    strdup(cells[i] ? cells[i] : "")) == NULL)
			return -1;
	t->nrows++;
	return 0;
}

/* Prints the rows (two spaces between columns) and frees the table. */
static void
table_print(struct table *t)
{
	size_t widths[16] = { 0 }, r, c, len;
	const char *cell;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols && c < 16; c++)
			if ((len = strlen(t->cells[r * t->ncols + c])) > widths[c])
				widths[c] = len;
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols && c < 16; c++) {
			cell = t->cells[r * t->ncols + c];
			if (c + 1 == t->ncols && !(t->right && t->right[c]))
				printf("%s", cell);	/* no trailing blanks */
			else if (t->right && t->right[c])
				printf("%*s", (int)widths[c], cell);
			else
				printf("%-*s", (int)widths[c], cell);
			printf(c + 1 < t->ncols ? "  " : "\n");
		}
	}
	for (r = 0; r < t->nrows * t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = *s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < ' ')
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* "2026-11-28T11:40:00Z", or "-" for 0. */
static const char *
stamp(time_t t)
{
	static char buf[4][32];
	static unsigned next;
	char *out = buf[next++ % 4];
	struct tm tm;

	if (t == 0)
		return "-";
	gmtime_r(&t, &tm);
	strftime(out, sizeof buf[0], "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static void
json_time(const char *key, time_t t, int comma)
{
	printf("\"%s\":", key);
	if (t == 0)
		printf("null");
	else
		json_str(stamp(t));
	if (comma)
		putchar(',');
}

/* ---- the summary: one line per queue and destination ---- */

static void
summary_json(const struct queueview *v, const struct queue_summary *s)
{
	size_t i;

	putchar('[');
	for (i = 0; i < s->n; i++) {
		const struct queue_line *l = &s->v[i];
		printf("%s{\"queue\":", i ? "," : "");
		json_str(l->name);
		printf(",\"type\":\"%s\",\"messages\":%lld,\"bytes\":%lld,"
		    "\"frozen\":%lld,\"oldest_age\":", l->is_dest ?
		    "destination" : "queue", l->count, l->bytes, l->nfrozen);
		if (l->count > 0)
			printf("%lld", (long long)(v->now - l->oldest));
		else
			printf("null");
		printf(",\"state\":");
		json_str(l->state);
		putchar(',');
		json_time("next_attempt", l->next, 1);
		printf("\"error\":");
		json_str(l->error);
		printf(",\"info\":");
		json_str(l->info);
		putchar('}');
	}
	printf("]\n");
}

static void
summary_plain(const struct queueview *v, const struct queue_summary *s)
{
	static const int right[] = { 0, 1, 1, 1, 0, 0, 0 };
	struct table t = { 7, 0, 0, right, NULL };
	const char *head[] = { "QUEUE", "MESSAGES", "SIZE", "OLDEST", "STATE",
	    "NEXT-ATTEMPT", "INFO" };
	char count[32], size[32], age[32];
	size_t i;

	table_row(&t, head);
	for (i = 0; i < s->n; i++) {
		const struct queue_line *l = &s->v[i];
		const char *row[] = { l->name, count, size, age, l->state,
		    stamp(l->next), l->info };
		snprintf(count, sizeof count, "%lld", l->count);
		format_size(l->bytes, size, sizeof size);
		if (l->count > 0)
			format_age(v->now - l->oldest, age, sizeof age);
		else
			snprintf(age, sizeof age, "-");
		table_row(&t, row);
	}
	table_print(&t);
}

void
queueview_summary(const struct queueview *v, const struct queue_summary *s)
{
	if (v->is_json)
		summary_json(v, s);
	else
		summary_plain(v, s);
}

/* ---- list QUEUE: the messages of a queue or of a destination ---- */

struct listing {
	const struct queueview *view;
	const char *dest;	/* NULL: the whole queue */
	long limit, shown, more;
	struct table *table;
};

/* Recipients as "a@x, b@y", cut after about 200 bytes. */
static void
rcpt_list(const struct envelope *e, char *buf, size_t cap)
{
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < e->nrcpt; i++) {
		if (len > 200) {
			snprintf(buf + len, cap - len, " (+%zu more)", e->nrcpt - i);
			return;
		}
		len += snprintf(buf + len, cap - len, "%s%s", i ? "," : "",
		    e->rcpt[i].addr);
		if (len >= cap)
			return;
	}
}

static void
list_json_entry(const struct queueview *v, const struct queue_entry *q,
    const char *where, int first)
{
	size_t i;

	printf("%s{\"id\":", first ? "" : ",");
	json_str(q->name);
	printf(",\"queue\":");
	json_str(q->queue);
	printf(",\"destination\":");
	if (strcmp(q->queue, "remote") == 0)
		json_str(where);
	else
		printf("null");
	printf(",\"state\":\"%s\",", queue_sub_state(q->sub));
	json_time("next_attempt", strcmp(q->sub, "retry") == 0 ||
	    strcmp(q->sub, "scheduled") == 0 ? q->mtime : 0, 0);
	printf(",\"age\":%lld,\"size\":%lld,\"sender\":",
	    (long long)(v->now - queue_arrived(q)), queue_size(q));
	json_str(*q->env->sender ? q->env->sender : "<>");
	printf(",\"recipients\":[");
	for (i = 0; i < q->env->nrcpt; i++) {
		printf(i ? "," : "");
		json_str(q->env->rcpt[i].addr);
	}
	printf("]}");
}

static int
list_add(const struct queue_entry *q, void *arg)
{
	struct listing *l = arg;
	const char *where = strcmp(q->queue, "remote") == 0 ? queue_dest(q) :
	    q->queue;
	char age[32], size[32], rcpts[512];

	if (l->dest != NULL && strcmp(where, l->dest) != 0)
		return 0;
	if (l->shown == l->limit) {
		l->more++;
		return 0;
	}
	if (l->view->is_json) {
		list_json_entry(l->view, q, where, l->shown++ == 0);
		return 0;
	}
	format_age(l->view->now - queue_arrived(q), age, sizeof age);
	format_size(queue_size(q), size, sizeof size);
	rcpt_list(q->env, rcpts, sizeof rcpts);
	const char *row[] = { q->name, where, queue_sub_state(q->sub),
	    strcmp(q->sub, "new") && strcmp(q->sub, "frozen") &&
	    strcmp(q->sub, "hold") ? stamp(q->mtime) : "-", age, size,
	    *q->env->sender ? q->env->sender : "<>", rcpts };
	table_row(l->table, row);
	l->shown++;
	return 0;
}

void
queueview_list(const struct queueview *v, const char *which, long limit)
{
	static const int right[] = { 0, 0, 0, 0, 1, 1, 0, 0 };
	struct table t = { 8, 0, 0, right, NULL };
	const char *head[] = { "ID", "QUEUE", "STATE", "NEXT-ATTEMPT", "AGE",
	    "SIZE", "SENDER", "RECIPIENTS" };
	struct listing l = { v, NULL, limit, 0, 0, &t };
	const char *queue = which;

	if (strncmp(which, "remote:", 7) == 0)
		l.dest = which + 7;
	else if (!queue_is_fixed(which) && strcmp(which, "remote") != 0)
		l.dest = which;
	if (l.dest != NULL)
		queue = "remote";
	if (v->is_json)
		putchar('[');
	else
		table_row(&t, head);
	if (queue_scan(queue, list_add, &l) < 0)
		die(EXIT_TEMP, errno, "unable to read spool/%s", queue);
	if (v->is_json) {
		printf("]\n");
		return;
	}
	table_print(&t);
	if (l.more > 0)
		printf("(%ld more not shown)\n", l.more);
}

/* ---- show ID ---- */

/* The header section of spool/msg/NAME (up to HEADERS_MAX bytes, CRs
 * dropped) into b. */
static void
read_headers(const char *name, struct buf *b)
{
	char chunk[4096];
	ssize_t n, i;
	int fd, at_line_start = 1;

	if ((fd = content_open(name)) < 0)
		return;
	while (b->len < HEADERS_MAX && (n = read(fd, chunk, sizeof chunk)) > 0)
		for (i = 0; i < n && b->len < HEADERS_MAX; i++) {
			if (chunk[i] == '\r')
				continue;
			if (chunk[i] == '\n' && at_line_start)
				goto done;
			at_line_start = chunk[i] == '\n';
			buf_addc(b, chunk[i]);
		}
done:
	close(fd);
}

static void
show_json(const struct queue_entry *q, const char *headers, int first)
{
	size_t i, j;

	printf("%s{\"id\":", first ? "" : ",");
	json_str(q->name);
	printf(",\"queue\":\"%s\",\"state\":\"%s\",", q->queue,
	    queue_sub_state(q->sub));
	json_time("next_attempt", strcmp(q->sub, "retry") == 0 ||
	    strcmp(q->sub, "scheduled") == 0 ? q->mtime : 0, 1);
	printf("\"sender\":");
	json_str(*q->env->sender ? q->env->sender : "<>");
	printf(",\"fields\":{");
	for (i = 0; i < q->env->fields.n; i++) {
		printf(i ? "," : "");
		json_str(q->env->fields.v[i].name);
		putchar(':');
		json_str(q->env->fields.v[i].value);
	}
	printf("},\"recipients\":[");
	for (i = 0; i < q->env->nrcpt; i++) {
		const struct rcpt *r = &q->env->rcpt[i];
		printf("%s{\"address\":", i ? "," : "");
		json_str(r->addr);
		for (j = 0; j < r->attrs.n; j++) {
			putchar(',');
			json_str(r->attrs.v[j].name);
			putchar(':');
			json_str(r->attrs.v[j].value);
		}
		putchar('}');
	}
	printf("],\"headers\":");
	json_str(headers);
	putchar('}');
}

static void
show_plain(const struct queue_entry *q, const char *headers)
{
	struct table t = { 4, 0, 0, NULL, NULL };
	const char *head[] = { "RECIPIENT", "STATE", "CODE", "REASON" };
	struct buf b = BUF_INIT;
	size_t i;

	printf("== %s/%s/%s\n", q->queue, q->sub, q->name);
	if (strcmp(q->sub, "retry") == 0 || strcmp(q->sub, "scheduled") == 0)
		printf("next attempt %s\n", stamp(q->mtime));
	envelope_format(q->env, &b);
	/* the envelope head as stored; recipients follow as a table */
	for (char *p = b.data; p != NULL && *p != '\0'; ) {
		char *end = strchr(p, '\n');
		if (strncmp(p, "rcpt ", 5) != 0)
			printf("%.*s\n", (int)(end ? end - p : (long)strlen(p)), p);
		p = end ? end + 1 : NULL;
	}
	buf_free(&b);
	printf("-- recipients\n");
	table_row(&t, head);
	for (i = 0; i < q->env->nrcpt; i++) {
		const struct rcpt *r = &q->env->rcpt[i];
		const char *row[] = { r->addr, rcpt_get(r, "state"),
		    rcpt_get(r, "code"), rcpt_get(r, "reason") };
		table_row(&t, row);
	}
	table_print(&t);
	printf("-- headers\n%s", headers);
}

struct showing {
	const struct queueview *view;
	const char *id;
	int nfound;
};

static int
show_one(const struct queue_entry *q, void *arg)
{
	struct showing *s = arg;
	struct buf h = BUF_INIT;

	if (!queue_name_matches(q->name, s->id))
		return 0;
	read_headers(q->name, &h);
	if (s->view->is_json)
		show_json(q, h.data ? h.data : "", s->nfound == 0);
	else
		show_plain(q, h.data ? h.data : "");
	buf_free(&h);
	s->nfound++;
	return 0;
}

int
queueview_show(const struct queueview *v, const char *id)
{
	static const char *queues[] = { QUEUE_NAMES };
	struct showing s = { v, id, 0 };
	size_t i;

	if (v->is_json)
		putchar('[');
	for (i = 0; i < sizeof queues / sizeof queues[0]; i++)
		if (queue_scan(queues[i], show_one, &s) < 0)
			die(EXIT_TEMP, errno, "unable to read spool/%s", queues[i]);
	if (v->is_json)
		printf("]\n");
	return s.nfound;
}
