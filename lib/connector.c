#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addrspace.h"
#include "connector.h"
#include "hops.h"

enum { ITEM_MAX = 512 };

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
connector_match(const struct connector *c, const char *domain)
{
	return addrspace_best(attrs_get(&c->attrs, "address-space"), domain);
}

int
connector_priority(const char *headers, size_t len)
{
	return priority_of_headers(headers, len);
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

	while (attr_list_next(&list, item, sizeof item))
		if (sender_matches(item, sender))
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
	    !priority_listed(v, m->priority))
		return CONNECTOR_RESTRICTED;
	if ((v = attrs_get(&c->attrs, "system")) != NULL &&
	    conf_parse_bool(v) == 0 && *m->sender == '\0')
		return CONNECTOR_RESTRICTED;
	if ((v = attrs_get(&c->attrs, "max-size")) != NULL &&
	    (max = conf_parse_size(v)) > 0 && m->size > max)
		return CONNECTOR_TOO_BIG;
	return CONNECTOR_OK;
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

int
connector_schedule_open(const char *schedule, time_t now, time_t *opens)
{
	return schedule_open(schedule, now, opens);
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
	return hops_smarthost(attrs_get(&c->attrs, "smarthost"), b);
}
