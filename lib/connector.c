#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "connector.h"

enum { ITEM_MAX = 512, SMARTHOST_MAX = 64, WINDOW_DAYS = 8 };

/* The next item of a comma-separated list at *p, blanks trimmed, into out.
 * 1 read, 0 end of the list. Items longer than cap - 1 are cut. */
static int
list_next(const char **p, char *out, size_t cap)
{
	const char *s = *p, *end;
	size_t n;

	while (*s == ',' || *s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return 0;
	end = s + strcspn(s, ",");
	*p = end;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - s) < cap - 1 ? (size_t)(end - s) : cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 1;
}

static void
connector_clear(struct connector *c)
{
	free(c->name);
	attrs_free(&c->attrs);
}

static int
connector_load(struct connectors *cs, const char *name)
{
	struct connector *c = &cs->v[cs->n];
	char key[300];
	const char *v;

	memset(c, 0, sizeof *c);
	snprintf(key, sizeof key, "connector:%s", name);
	if ((c->name = strdup(name)) == NULL ||
	    conf_record(&cs->cdb, key, &c->attrs) < 0) {
		connector_clear(c);
		return -1;
	}
	c->cost = 1;
	if ((v = attrs_get(&c->attrs, "cost")) != NULL)
		c->cost = strtoll(v, NULL, 10);
	v = attrs_get(&c->attrs, "tls");
	c->is_tls_required = v != NULL && strcasecmp(v, "required") == 0;
	cs->n++;
	return 0;
}

static void
connectors_unload(struct connectors *cs)
{
	size_t i;

	for (i = 0; i < cs->n; i++)
		connector_clear(&cs->v[i]);
	free(cs->v);
	cs->v = NULL;
	cs->n = 0;
}

static int
connectors_load(struct connectors *cs)
{
	char **names;
	size_t n, i;
	int rc;

	connectors_unload(cs);
	if ((rc = conf_list(&cs->cdb, "connectors", &names, &n)) <= 0)
		return rc;
	if ((cs->v = calloc(n + 1, sizeof *cs->v)) == NULL) {
		free(names);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (connector_load(cs, names[i]) < 0) {
			free(names);
			return -1;
		}
	free(names);
	return 0;
}

int
connectors_open(struct connectors *cs)
{
	memset(cs, 0, sizeof *cs);
	if (conf_open(&cs->cdb, "connectors") < 0)
		return -1;
	return connectors_load(cs);
}

int
connectors_refresh(struct connectors *cs)
{
	struct timespec mtime = cs->cdb.mtime;
	ino_t ino = cs->cdb.ino;
	int fd = cs->cdb.fd;

	if (conf_refresh(&cs->cdb) < 0)
		return -1;
	if (cs->cdb.fd == fd && cs->cdb.ino == ino &&
	    cs->cdb.mtime.tv_sec == mtime.tv_sec &&
	    cs->cdb.mtime.tv_nsec == mtime.tv_nsec)
		return 0;
	if (cs->cdb.fd < 0) {
		connectors_unload(cs);
		return 0;
	}
	return connectors_load(cs);
}

void
connectors_free(struct connectors *cs)
{
	connectors_unload(cs);
	conf_close(&cs->cdb);
}

const struct connector *
connectors_find(const struct connectors *cs, const char *name)
{
	size_t i;

	for (i = 0; i < cs->n; i++)
		if (strcmp(cs->v[i].name, name) == 0)
			return &cs->v[i];
	return NULL;
}

int
connector_space_match(const char *space, const char *domain)
{
	size_t slen = strlen(space), dlen = strlen(domain);

	if (strcmp(space, "*") == 0)
		return 0;
	if (strncmp(space, "*.", 2) == 0) {
		/* "*.mil": the suffix ".mil" with at least one label before */
		if (dlen <= slen - 1 ||
		    strcasecmp(domain + dlen - (slen - 1), space + 1) != 0)
			return -1;
		return 2 * (int)(slen - 1);
	}
	if (strcasecmp(space, domain) == 0)
		return 2 * (int)dlen + 1;
	return -1;
}

int
connector_match(const struct connector *c, const char *domain)
{
	const char *p = attrs_get(&c->attrs, "address-space");
	char item[ITEM_MAX];
	int best = -1, m;

	if (p == NULL)
		return -1;
	while (list_next(&p, item, sizeof item))
		if ((m = connector_space_match(item, domain)) > best)
			best = m;
	return best;
}

/* The priority one header value states, or -1 when it says nothing. */
static int
priority_of(const char *name, const char *v)
{
	if (strcasecmp(name, "x-priority") == 0) {
		if (*v == '1' || *v == '2')
			return PRIORITY_HIGH;
		if (*v == '4' || *v == '5')
			return PRIORITY_LOW;
		return *v == '3' ? PRIORITY_NORMAL : -1;
	}
	if (strncasecmp(v, "urgent", 6) == 0 || strncasecmp(v, "high", 4) == 0)
		return PRIORITY_HIGH;
	if (strncasecmp(v, "non-urgent", 10) == 0 ||
	    strncasecmp(v, "low", 3) == 0)
		return PRIORITY_LOW;
	if (strncasecmp(v, "normal", 6) == 0)
		return PRIORITY_NORMAL;
	return -1;
}

/* One header line (without its end) checked for a priority; -1 none. */
static int
priority_line(const char *line, size_t len)
{
	static const char *names[] = { "priority", "x-priority", "importance" };
	char buf[128];
	size_t i, n;

	n = len < sizeof buf - 1 ? len : sizeof buf - 1;
	memcpy(buf, line, n);
	buf[n] = '\0';
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		n = strlen(names[i]);
		if (strncasecmp(buf, names[i], n) == 0 && buf[n] == ':') {
			const char *v = buf + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return priority_of(names[i], v);
		}
	}
	return -1;
}

int
connector_priority(const char *headers, size_t len)
{
	const char *p = headers, *end = headers + len, *nl;
	size_t n;
	int pr;

	while (p < end) {
		nl = memchr(p, '\n', end - p);
		n = (nl != NULL ? nl : end) - p;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;	/* the blank line: the body starts */
		if ((pr = priority_line(p, n)) >= 0)
			return pr;
		p = nl != NULL ? nl + 1 : end;
	}
	return PRIORITY_NORMAL;
}

/* Does a sender match a list entry: "<>" the null sender, "@dom" or "dom"
 * a whole domain, else the whole address (all case-insensitive)? */
static int
sender_matches(const char *entry, const char *sender)
{
	const char *at = strrchr(sender, '@');

	if (strcmp(entry, "<>") == 0)
		return *sender == '\0';
	if (*sender == '\0')
		return 0;
	if (*entry == '@')
		return at != NULL && strcasecmp(at, entry) == 0;
	if (strchr(entry, '@') == NULL)
		return at != NULL && strcasecmp(at + 1, entry) == 0;
	return strcasecmp(entry, sender) == 0;
}

static int
sender_listed(const char *list, const char *sender)
{
	char item[ITEM_MAX];

	while (list_next(&list, item, sizeof item))
		if (sender_matches(item, sender))
			return 1;
	return 0;
}

static int
priority_allowed(const char *list, int priority)
{
	static const char *words[] = { "low", "normal", "high" };
	char item[ITEM_MAX];

	while (list_next(&list, item, sizeof item))
		if (strcasecmp(item, words[priority]) == 0)
			return 1;
	return 0;
}

int
connector_allows(const struct connector *c, const struct route_facts *m)
{
	const char *v;
	long long max;

	if ((v = attrs_get(&c->attrs, "accept-senders")) != NULL && *v &&
	    !sender_listed(v, m->sender))
		return CONNECTOR_RESTRICTED;
	if ((v = attrs_get(&c->attrs, "reject-senders")) != NULL &&
	    sender_listed(v, m->sender))
		return CONNECTOR_RESTRICTED;
	if ((v = attrs_get(&c->attrs, "priorities")) != NULL && *v &&
	    !priority_allowed(v, m->priority))
		return CONNECTOR_RESTRICTED;
	if ((v = attrs_get(&c->attrs, "system")) != NULL &&
	    conf_parse_bool(v) == 0 && *m->sender == '\0')
		return CONNECTOR_RESTRICTED;
	if ((v = attrs_get(&c->attrs, "max-size")) != NULL &&
	    (max = conf_parse_size(v)) > 0 && m->size > max)
		return CONNECTOR_TOO_BIG;
	return CONNECTOR_OK;
}

struct window {
	int days;		/* bit 0 Sunday ... bit 6 Saturday */
	int start, end;		/* minutes after midnight */
};

static int
day_number(const char *s, size_t n)
{
	static const char *names[] = { "sun", "mon", "tue", "wed", "thu",
	    "fri", "sat" };
	int i;

	for (i = 0; i < 7; i++)
		if (n == 3 && strncasecmp(s, names[i], 3) == 0)
			return i;
	return -1;
}

/* "mon", "mon-fri", "fri-mon", "daily" into a bit mask; 0 when bad. */
static int
parse_days(const char *s, size_t n)
{
	int from, to, mask = 0;

	if (n == 5 && strncasecmp(s, "daily", 5) == 0)
		return 0x7f;
	if (n == 3)
		return (from = day_number(s, 3)) < 0 ? 0 : 1 << from;
	if (n != 7 || s[3] != '-' || (from = day_number(s, 3)) < 0 ||
	    (to = day_number(s + 4, 3)) < 0)
		return 0;
	for (;; from = (from + 1) % 7) {
		mask |= 1 << from;
		if (from == to)
			return mask;
	}
}

/* "HH:MM" into minutes; -1 when bad. */
static int
parse_clock(const char *s)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    s[2] != ':' || !isdigit((unsigned char)s[3]) ||
	    !isdigit((unsigned char)s[4]))
		return -1;
	int h = (s[0] - '0') * 10 + s[1] - '0', m = (s[3] - '0') * 10 + s[4] - '0';
	return h > 24 || m > 59 || (h == 24 && m != 0) ? -1 : h * 60 + m;
}

/* "[DAYS ]HH:MM-HH:MM" into w; 0 or -1. */
static int
parse_window(const char *s, struct window *w)
{
	const char *sp = strchr(s, ' ');

	w->days = 0x7f;
	if (sp != NULL) {
		if ((w->days = parse_days(s, sp - s)) == 0)
			return -1;
		s = sp + 1;
		while (*s == ' ')
			s++;
	}
	if (strlen(s) != 11 || s[5] != '-' || (w->start = parse_clock(s)) < 0 ||
	    (w->end = parse_clock(s + 6)) < 0)
		return -1;
	return 0;
}

/* Local time `minutes` after the midnight `offset` days from now's day. */
static time_t
local_time_at(time_t now, int offset, int minutes, int *wday)
{
	struct tm tm;

	localtime_r(&now, &tm);
	tm.tm_mday += offset;
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	*wday = tm.tm_wday;
	return t;
}

/* 1 when w is open at now; else the next opening after now into *next
 * when it is earlier than what *next holds (0 = none yet). */
static int
window_check(const struct window *w, time_t now, time_t *next)
{
	int offset, wday, len;
	time_t t0;

	len = w->end > w->start ? w->end - w->start : w->end + 1440 - w->start;
	/* from yesterday: a window opened last evening may still run */
	for (offset = -1; offset < WINDOW_DAYS; offset++) {
		t0 = local_time_at(now, offset, w->start, &wday);
		if (!(w->days & 1 << wday))
			continue;
		if (t0 <= now && now < t0 + (time_t)len * 60)
			return 1;
		if (t0 > now && (*next == 0 || t0 < *next))
			*next = t0;
	}
	return 0;
}

int
connector_schedule_open(const char *schedule, time_t now, time_t *opens)
{
	char item[ITEM_MAX];
	struct window w;

	*opens = 0;
	if (schedule == NULL || strcasecmp(schedule, "always") == 0)
		return 1;
	if (strcasecmp(schedule, "never") == 0)
		return 0;
	while (list_next(&schedule, item, sizeof item)) {
		if (parse_window(item, &w) < 0)
			return -1;
		if (window_check(&w, now, opens))
			return 1;
	}
	return 0;
}

const char *
connector_schedule(const struct connector *c, long long size)
{
	const char *v = attrs_get(&c->attrs, "oversize");
	const char *sched;
	long long limit;

	if (v != NULL && (limit = conf_parse_size(v)) > 0 && size > limit &&
	    (sched = attrs_get(&c->attrs, "oversize-schedule")) != NULL)
		return sched;
	sched = attrs_get(&c->attrs, "schedule");
	return sched != NULL && *sched ? sched : "always";
}

/* Among usable connectors with specificity `spec`, the cheapest that is
 * not down (equal costs: one at random), else the cheapest. */
static const struct connector *
pick_cheapest(const struct connector **v, const int *spec, size_t n, int best,
    connector_down_fn is_down)
{
	const struct connector *pick = NULL, *fallback = NULL;
	size_t i, nties = 0;

	for (i = 0; i < n; i++) {
		if (spec[i] != best)
			continue;
		if (fallback == NULL || v[i]->cost < fallback->cost)
			fallback = v[i];
		if (is_down != NULL && is_down(v[i]->name))
			continue;
		if (pick == NULL || v[i]->cost < pick->cost) {
			pick = v[i];
			nties = 1;
		} else if (v[i]->cost == pick->cost && random() % ++nties == 0)
			pick = v[i];	/* reservoir: each tie equally likely */
	}
	return pick != NULL ? pick : fallback;
}

/* The matching connectors of domain into v/spec (cap entries); their count.
 * *tls_floor says whether the preferred one (most specific, cheapest)
 * requires TLS. */
static size_t
collect_matches(const struct connectors *cs, const char *domain,
    const struct connector **v, int *spec, size_t cap, int *tls_floor)
{
	const struct connector *pref = NULL;
	int pref_spec = -1, m;
	size_t i, n = 0;

	*tls_floor = 0;
	for (i = 0; i < cs->n && n < cap; i++) {
		if ((m = connector_match(&cs->v[i], domain)) < 0)
			continue;
		v[n] = &cs->v[i];
		spec[n++] = m;
		if (m > pref_spec || (m == pref_spec && cs->v[i].cost < pref->cost)) {
			pref = &cs->v[i];
			pref_spec = m;
			*tls_floor = pref->is_tls_required;
		} else if (m == pref_spec && cs->v[i].cost == pref->cost &&
		    cs->v[i].is_tls_required)
			*tls_floor = 1;
	}
	return n;
}

int
connectors_select(const struct connectors *cs, const char *domain,
    const struct route_facts *m, connector_down_fn is_down,
    const struct connector **out)
{
	const struct connector **v;
	int *spec, tls_floor, best = -1, why, refusal = -1;
	size_t i, n;

	if (cs->n == 0)
		return -1;
	v = calloc(cs->n, sizeof *v);
	spec = calloc(cs->n, sizeof *spec);
	if (v == NULL || spec == NULL) {
		free(v);
		free(spec);
		return -2;
	}
	n = collect_matches(cs, domain, v, spec, cs->n, &tls_floor);
	for (i = 0; i < n; i++) {
		if (tls_floor && !v[i]->is_tls_required) {
			spec[i] = -1;	/* never a reason of its own: the TLS
					 * connector it stands in for has one */
			continue;
		}
		if ((why = connector_allows(v[i], m)) != CONNECTOR_OK) {
			/* size is checked last: TOO_BIG means a connector
			 * would have taken the message but for its size,
			 * which is what the sender needs to hear (5.2.3) */
			if (refusal < 0 || why == CONNECTOR_TOO_BIG)
				refusal = why;
			spec[i] = -1;
		} else if (spec[i] > best)
			best = spec[i];
	}
	*out = best >= 0 ? pick_cheapest(v, spec, n, best, is_down) : NULL;
	free(v);
	free(spec);
	if (*out != NULL)
		return CONNECTOR_OK;
	return n == 0 ? -1 : refusal;
}

int
connector_smarthost_hops(const char *list, struct buf *b)
{
	char item[SMARTHOST_MAX][ITEM_MAX / 2], tmp[ITEM_MAX / 2];
	size_t n = 0, i, j;

	while (n < SMARTHOST_MAX && list_next(&list, item[n], sizeof item[n]))
		n++;
	if (n == 0) {
		errno = EINVAL;
		return -1;
	}
	for (i = n - 1; i > 0; i--) {	/* Fisher-Yates */
		j = (size_t)random() % (i + 1);
		memcpy(tmp, item[i], sizeof tmp);
		memcpy(item[i], item[j], sizeof tmp);
		memcpy(item[j], tmp, sizeof tmp);
	}
	if (buf_adds(b, "smarthost:") < 0)
		return -1;
	for (i = 0; i < n; i++)
		if ((i > 0 && buf_addc(b, ',') < 0) || buf_adds(b, item[i]) < 0)
			return -1;
	return 0;
}

int
connector_is_dns(const struct connector *c)
{
	const char *route = attrs_get(&c->attrs, "route");
	const char *hosts = attrs_get(&c->attrs, "smarthost");

	return (route != NULL && strcasecmp(route, "dns") == 0) ||
	    hosts == NULL || *hosts == '\0';
}

int
connector_hops(const struct connector *c, const char *domain, struct buf *b)
{
	if (connector_is_dns(c))
		return buf_printf(b, "mx:%s", domain);
	return connector_smarthost_hops(attrs_get(&c->attrs, "smarthost"), b);
}

/* Splits "[IP]:PORT", "[IP]", "HOST:PORT", "HOST" into host and port
 * (def when absent); *is_literal tells an address from a name. */
static void
hop_split(const char *entry, char *host, size_t cap, long *port, long def,
    int *is_literal)
{
	const char *end, *colon;
	size_t n;

	*port = def;
	*is_literal = entry[0] == '[';
	if (*is_literal) {
		entry++;
		end = strchr(entry, ']');
		if (end == NULL)
			end = entry + strlen(entry);
		colon = *end == ']' && end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(entry, ':');
		end = colon != NULL ? colon : entry + strlen(entry);
	}
	if (colon != NULL)
		*port = strtol(colon + 1, NULL, 10);
	n = (size_t)(end - entry) < cap - 1 ? (size_t)(end - entry) : cap - 1;
	memcpy(host, entry, n);
	host[n] = '\0';
}

/* Is ip one of this host's addresses? Loopback always is. */
static int
address_is_local(const char *ip)
{
	struct ifaddrs *ifs, *i;
	char text[INET6_ADDRSTRLEN];
	int found = strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;

	if (found || getifaddrs(&ifs) < 0)
		return found;
	for (i = ifs; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
			    text, sizeof text);
		else if (i->ifa_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
			    text, sizeof text);
		else
			continue;
		found = strcmp(text, ip) == 0;
	}
	freeifaddrs(ifs);
	return found;
}

/* Does the listen list (IP:PORT,...) of one server cover ip:port? */
static int
listen_covers(const char *list, const char *ip, long port)
{
	char item[ITEM_MAX], host[ITEM_MAX];
	long lport;
	int lit;

	while (list_next(&list, item, sizeof item)) {
		hop_split(item, host, sizeof host, &lport, 25, &lit);
		if (lport != port)
			continue;
		if (strcmp(host, ip) == 0 ||
		    ((strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) &&
		    address_is_local(ip)))
			return 1;
	}
	return 0;
}

/* Does the listen list (IP:PORT,...) of one server use port? */
static int
listen_port(const char *list, long port)
{
	char item[ITEM_MAX], host[ITEM_MAX];
	long lport;
	int lit;

	while (list_next(&list, item, sizeof item)) {
		hop_split(item, host, sizeof host, &lport, 25, &lit);
		if (lport == port)
			return 1;
	}
	return 0;
}

/* A next hop: an address (ip) or a host name (name), and its port (0 for
 * a name without one: any port). */
struct hop {
	const char *name, *ip;
	long port;
};

/* Is the hop this server (one record of servers.cdb)? A name counts when
 * it is the server's hostname= or settings hostname and, with a port, the
 * server listens on that port (another root on this machine may listen on
 * another). */
static int
server_is(const struct attrs *a, const struct hop *h)
{
	const char *host = attrs_get(a, "hostname");
	const char *listen = attrs_get(a, "listen");

	if (h->ip != NULL)
		return listen != NULL && listen_covers(listen, h->ip, h->port);
	if ((host == NULL || strcasecmp(host, h->name) != 0) &&
	    strcasecmp(h->name, conf_hostname()) != 0)
		return 0;
	return h->port == 0 || (listen != NULL && listen_port(listen, h->port));
}

static int
is_self(const struct hop *h)
{
	static struct conf servers;
	static int is_open;
	struct attrs a = ATTRS_INIT;
	char **names, key[300];
	size_t n, i;
	int self = 0;

	if (h->name != NULL && h->port == 0 &&
	    strcasecmp(h->name, conf_hostname()) == 0)
		return 1;
	if (!is_open && conf_open(&servers, "servers") == 0)
		is_open = 1;
	if (!is_open || conf_refresh(&servers) < 0 ||
	    conf_list(&servers, "servers", &names, &n) <= 0)
		return 0;
	for (i = 0; i < n && !self; i++) {
		snprintf(key, sizeof key, "server:%s", names[i]);
		if (conf_record(&servers, key, &a) == 1)
			self = server_is(&a, h);
		attrs_free(&a);
	}
	free(names);
	return self;
}

static int
smarthost_self(const char *list, long def_port)
{
	char item[ITEM_MAX], host[ITEM_MAX];
	struct hop h;
	int lit;

	while (list_next(&list, item, sizeof item)) {
		hop_split(item, host, sizeof host, &h.port, def_port, &lit);
		h.ip = lit ? host : NULL;
		h.name = lit ? NULL : host;
		if (!lit && strchr(item, ':') == NULL)
			h.port = 0;	/* a name without a port: any port */
		if (is_self(&h))
			return 1;
	}
	return 0;
}

int
connector_hops_self(const char *hops)
{
	char group[2048];
	long port = conf_setting_size("remote-port", 25);

	while (attr_word(&hops, group, sizeof group) == 1) {
		struct hop mx = { group + 3, NULL, 0 };
		if (strncmp(group, "mx:", 3) == 0 && is_self(&mx))
			return 1;
		if (strncmp(group, "smarthost:", 10) == 0 &&
		    smarthost_self(group + 10, port))
			return 1;
	}
	return 0;
}
