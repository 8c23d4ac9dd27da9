#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "content.h"
#include "hops.h"
#include "log.h"
#include "routeplan.h"
#include "schedule.h"

enum {
	HEADER_MAX = 64 << 10	/* header bytes read for the priority */
};

/* Link state for connectors_select: a destination in Retry is down until
 * its next attempt is due. Then new mail may go to it again and so probe
 * the link: with no mail of its own left queued, nothing else would ever
 * bring it back to Ready. */
static int
dest_is_down(const char *dest)
{
	struct dest_state ds;

	return dest_read(dest, &ds) == 1 && strcmp(ds.state, "Retry") == 0 &&
	    (ds.next_attempt == 0 || ds.next_attempt > time(NULL));
}

/* Reads the header of spool/msg/NAME (up to HEADER_MAX) for its priority. */
static int
read_priority(const char *name)
{
	char *head;
	ssize_t n;
	size_t len = 0;
	int fd, pr = PRIORITY_NORMAL;

	if ((fd = content_open(name)) < 0)
		return pr;
	if ((head = malloc(HEADER_MAX)) != NULL) {
		while (len < HEADER_MAX &&
		    (n = read(fd, head + len, HEADER_MAX - len)) > 0)
			len += n;
		pr = connector_priority(head, len);
		free(head);
	}
	close(fd);
	return pr;
}

static int
needs_priority(const struct connectors *cs)
{
	size_t i;

	for (i = 0; i < cs->n; i++)
		if (attrs_get(&cs->v[i].attrs, "priorities") != NULL)
			return 1;
	return 0;
}

static void
message_facts(struct routeplan *p, const char *name, const struct envelope *e,
    struct route_facts *m)
{
	const char *v = envelope_get(e, "size");
	struct stat st;
	int fd;

	m->sender = e->sender != NULL ? e->sender : "";
	m->size = v != NULL ? strtoll(v, NULL, 10) : 0;
	if (v == NULL && (fd = content_open(name)) >= 0) {
		if (fstat(fd, &st) == 0)
			m->size = st.st_size;
		close(fd);
	}
	m->priority = needs_priority(p->cs) ? read_priority(name) :
	    PRIORITY_NORMAL;
}

/* Hops without a connector: DNS, or settings smarthost (after DNS with
 * direct-first). */
static int
default_hops(const char *domain, struct buf *b)
{
	char hosts[2048], first[16];

	if (conf_setting("smarthost", NULL, hosts, sizeof hosts) <= 0 ||
	    hosts[0] == '\0')
		return buf_printf(b, "mx:%s", domain);
	conf_setting("direct-first", "no", first, sizeof first);
	if (conf_parse_bool(first) == 1 && buf_printf(b, "mx:%s ", domain) < 0)
		return -1;
	return hops_smarthost(hosts, b);
}

/* Where a new group's envelope waits: hold/, scheduled/ (g->when) or new/. */
static void
group_where(struct route_group *g, long long size)
{
	const char *v, *sched;
	time_t now = time(NULL);
	int open;

	g->where = "new";
	if (g->conn == NULL)
		return;
	if ((v = attrs_get(&g->conn->attrs, "hold")) != NULL &&
	    conf_parse_bool(v) == 1) {
		g->where = "hold";
		return;
	}
	sched = connector_schedule(g->conn, size);
	open = schedule_open(sched, now, &g->when);
	if (open < 0)
		log_event("warning", "connector=%s schedule=%s msg=\"bad schedule, "
		    "taken as always\"", log_quote(g->conn->name),
		    log_quote(sched));
	if (open != 0)
		return;
	g->where = "scheduled";
	if (g->when == 0)
		g->when = now + SCHEDULE_NEVER_SEC;	/* "never": until the config changes */
}

/* The source= server for the next envelope of a connector, in turn. */
static int
pick_source(struct routeplan *plan, const struct connector *c, char *out,
    size_t cap)
{
	const char *list = attrs_get(&c->attrs, "source");
	char word[256];
	size_t n = 0, i;
	const char *p;

	for (p = list; p != NULL && (p = strchr(p, ',')) != NULL; p++)
		n++;
	if (list == NULL || *list == '\0')
		return 0;
	n = plan->turn[(size_t)(c - plan->cs->v) % 64]++ % (n + 1);
	for (p = list, i = 0; i < n; i++)
		p = strchr(p, ',') + 1;
	snprintf(word, sizeof word, "%.*s", (int)strcspn(p, ","), p);
	snprintf(out, cap, "%s", word);
	return 1;
}

/* Fills a new group's envelope head: the input's fields with this hop's
 * dest, connector, hops and source (stale ones from an earlier routing
 * removed). A hop leading back to us fails its recipients with 5.3.5. */
static int
group_head(struct routeplan *p, struct route_group *g,
    const struct envelope *e, long long size)
{
	struct buf hops = BUF_INIT;
	char source[256];
	int rc = -1;

	if (envelope_copy_head(&g->env, e) < 0 ||
	    envelope_set(&g->env, "connector", NULL) < 0 ||
	    envelope_set(&g->env, "source", NULL) < 0 ||
	    envelope_set(&g->env, "dest", g->dest) < 0)
		return -1;
	if ((g->relay[0] != '\0' ? hops_smarthost(g->relay, &hops) :
	    g->conn != NULL ? connector_hops(g->conn, g->domain, &hops) :
	    default_hops(g->domain, &hops)) < 0 ||
	    envelope_set(&g->env, "hops", hops.data) < 0)
		goto out;
	if (g->conn != NULL &&
	    (envelope_set(&g->env, "connector", g->conn->name) < 0 ||
	    (pick_source(p, g->conn, source, sizeof source) &&
	    envelope_set(&g->env, "source", source) < 0)))
		goto out;
	if (hops_is_self(hops.data)) {
		g->fail_code = "5.3.5";
		snprintf(g->fail_reason, sizeof g->fail_reason,
		    "554 5.3.5 next hop %s is this server itself (mail loop)",
		    hops.data);
	}
	group_where(g, size);
	rc = 0;
out:
	buf_free(&hops);
	return rc;
}

/* The group for (conn, dest, domain, relay), made when new; NULL on
 * ENOMEM. */
static struct route_group *
group_for(struct routeplan *p, const struct envelope *e,
    const struct connector *conn, const char *dest, const char *domain,
    const char *relay, long long size)
{
	struct route_group *g;
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->v[i].conn == conn && strcmp(p->v[i].dest, dest) == 0 &&
		    strcmp(p->v[i].domain, domain) == 0 &&
		    strcmp(p->v[i].relay, relay) == 0)
			return &p->v[i];
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		if ((g = realloc(p->v, cap * sizeof *g)) == NULL)
			return NULL;
		p->v = g;
		p->cap = cap;
	}
	g = &p->v[p->n++];
	memset(g, 0, sizeof *g);
	g->conn = conn;
	snprintf(g->dest, sizeof g->dest, "%s", dest);
	snprintf(g->domain, sizeof g->domain, "%s", domain);
	snprintf(g->relay, sizeof g->relay, "%s", relay);
	if (group_head(p, g, e, size) < 0)
		return NULL;
	return g;
}

static void
fail_rcpt(struct route_failure *f, const char *code, const char *fmt,
    const char *arg)
{
	f->code = code;
	snprintf(f->reason, sizeof f->reason, fmt, arg);
}

/* Chooses the connector of one remote recipient: 0 chosen (*conn NULL:
 * no connectors, DNS or settings smarthost), 1 failed (f set), -1 error. */
static int
choose(struct routeplan *p, const char *domain, const struct route_facts *m,
    const struct connector **conn, struct route_failure *f)
{
	*conn = NULL;
	if (*domain == '\0') {
		fail_rcpt(f, "5.4.4", "550 5.4.4 no route: address has no domain%s", "");
		return 1;
	}
	if (p->cs->n == 0)
		return 0;
	switch (connectors_select(p->cs, domain, m, dest_is_down, conn)) {
	case CONNECTOR_OK:
		return 0;
	case -1:
		fail_rcpt(f, "5.4.4", "550 5.4.4 no route to %s: no connector's "
		    "address space matches", domain);
		return 1;
	case CONNECTOR_RESTRICTED:
		fail_rcpt(f, "5.7.1", "550 5.7.1 no route to %s: the message is "
		    "refused by every matching connector's restrictions", domain);
		return 1;
	case CONNECTOR_TOO_BIG:
		fail_rcpt(f, "5.2.3", "552 5.2.3 message too large for every "
		    "connector to %s", domain);
		return 1;
	default:
		return -1;
	}
}

/* choose() once per domain of a message (p->choices has room for one per
 * recipient). The same returns, with p->fail[i] set on failure. */
static int
choose_once(struct routeplan *p, const char *domain,
    const struct route_facts *m, size_t i, const struct connector **conn)
{
	struct route_choice *c;
	size_t k;
	int rc;

	for (k = 0; k < p->nchoices; k++) {
		c = &p->choices[k];
		if (strcmp(c->domain, domain) != 0)
			continue;
		*conn = c->conn;
		if (p->fail[c->decided_by].code == NULL)
			return 0;
		p->fail[i] = p->fail[c->decided_by];
		return 1;
	}
	if ((rc = choose(p, domain, m, conn, &p->fail[i])) < 0)
		return -1;
	c = &p->choices[p->nchoices++];
	snprintf(c->domain, sizeof c->domain, "%s", domain);
	c->conn = *conn;
	c->decided_by = i;
	return rc;
}

/* Places one remote recipient in its group (or fails it). 0 or -1. */
static int
route_remote(struct routeplan *p, const struct envelope *e,
    size_t i, const struct route_facts *m)
{
	const struct rcpt *r = &e->rcpt[i];
	const struct connector *conn;
	const char *relay;
	char domain[256];
	struct route_group *g;
	struct rcpt *copy;
	int rc;

	if (addr_key(addr_domain(r->addr), domain, sizeof domain) < 0)
		domain[0] = '\0';
	/* the categorizer's unresolved-host: straight there, no connector */
	if ((relay = rcpt_get(r, "relay-host")) != NULL && *relay != '\0')
		conn = NULL;
	else if ((rc = choose_once(p, domain, m, i, &conn)) != 0)
		return rc < 0 ? -1 : 0;
	else
		relay = "";
	g = group_for(p, e, conn, conn != NULL ? conn->name : domain,
	    conn == NULL || connector_is_dns(conn) ? domain : "", relay, m->size);
	if (g == NULL)
		return -1;
	if (g->fail_code != NULL) {
		fail_rcpt(&p->fail[i], g->fail_code, "%s", g->fail_reason);
		return 0;
	}
	if (envelope_copy_rcpt(&g->env, r) < 0)
		return -1;
	copy = &g->env.rcpt[g->env.nrcpt - 1];
	return rcpt_set(copy, "state", "remote") < 0 ||
	    rcpt_set(copy, "dest", g->dest) < 0 ? -1 : 0;
}

/* Recipients that are done with (failed ones were reported already). */
static int
is_finished(const char *state)
{
	static const char *done[] = { "failed", "delivered", "relayed",
	    "expanded" };
	size_t i;

	for (i = 0; i < sizeof done / sizeof done[0]; i++)
		if (strcmp(state, done[i]) == 0)
			return 1;
	return 0;
}

int
routeplan_make(struct routeplan *p, const char *name,
    const struct envelope *e)
{
	struct route_facts m;
	const char *state;
	size_t i;

	if ((p->fail = calloc(e->nrcpt + 1, sizeof *p->fail)) == NULL ||
	    (p->choices = calloc(e->nrcpt + 1, sizeof *p->choices)) == NULL ||
	    envelope_copy_head(&p->local, e) < 0)
		return -1;
	message_facts(p, name, e, &m);
	for (i = 0; i < e->nrcpt; i++) {
		state = rcpt_get(&e->rcpt[i], "state");
		if (state == NULL)
			state = "remote";
		if (is_finished(state))
			continue;
		if (strcmp(state, "local") == 0) {
			if (envelope_copy_rcpt(&p->local, &e->rcpt[i]) < 0)
				return -1;
			continue;
		}
		/* anything else still needs a next hop: never drop a recipient */
		if (strcmp(state, "remote") != 0)
			log_event("warning", "id=%s rcpt=%s state=%s msg=\"routed "
			    "as remote\"", name, log_quote(e->rcpt[i].addr),
			    log_quote(state));
		if (route_remote(p, e, i, &m) < 0)
			return -1;
	}
	return 0;
}

void
routeplan_free(struct routeplan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		envelope_free(&p->v[i].env);
	free(p->v);
	free(p->choices);
	free(p->fail);
	envelope_free(&p->local);
}
