/*
 * policy: recipient policies give the directory's mailboxes their proxy
 * addresses and their primary (reply) address, as Exchange's recipient
 * policies do (see policy.h). Generated addresses are made unique with a
 * number before '@', and never taken from another recipient.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "conf.h"
#include "confspec.h"
#include "log.h"
#include "policy.h"
#include "valuetype.h"

static void *
xrealloc(void *p, size_t n, size_t size)
{
	if (n > ((size_t)-1) / 2 / size || (p = realloc(p, n * size)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	return p;
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = tolower((unsigned char)*s);
}

void
policy_entry_add_addr(struct policy_entry *e, char *key)
{
	if (e->naddr == e->addrcap) {
		e->addrcap = e->addrcap ? e->addrcap * 2 : 4;
		e->addr = xrealloc(e->addr, e->addrcap, sizeof *e->addr);
	}
	e->addr[e->naddr++] = key;
}

/* Appends the letters, digits and '-' of s, lower-cased, to out. */
static void
put_clean(char *out, size_t *n, size_t cap, const char *s)
{
	for (; *s != '\0' && *n + 1 < cap; s++)
		if (isalnum((unsigned char)*s) || *s == '-')
			out[(*n)++] = tolower((unsigned char)*s);
	out[*n] = '\0';
}

/* The given name and surname of a mailbox: given= and surname=, else the
 * first and the last word of name= (a surname needs two words). */
static void
name_parts(const struct policy_entry *e, char *given, char *surname, size_t cap)
{
	const char *g = attrs_get(&e->rec->attrs, "given");
	const char *s = attrs_get(&e->rec->attrs, "surname");
	const char *full = attrs_get(&e->rec->attrs, "name");
	const char *last;
	size_t n;

	given[0] = surname[0] = '\0';
	if (full != NULL) {
		full += strspn(full, " \t");
		n = strcspn(full, " \t");
		snprintf(given, cap, "%.*s", (int)n, full);
		last = full + n;
		while (*(last += strspn(last, " \t")) != '\0') {
			n = strcspn(last, " \t");
			snprintf(surname, cap, "%.*s", (int)n, last);
			last += n;
		}
	}
	if (g != NULL)
		snprintf(given, cap, "%s", g);
	if (s != NULL)
		snprintf(surname, cap, "%s", s);
}

/* Expands pattern for mailbox e into out (lower case). 1, or 0 when a part
 * it needs is empty or the result is no address. */
static int
expand(const struct policy_entry *e, const char *pattern, char *out, size_t cap)
{
	char given[ADDR_LOCAL_MAX + 1], surname[ADDR_LOCAL_MAX + 1];
	char local[ADDR_LOCAL_MAX + 2], part[ADDR_LOCAL_MAX + 1];
	const char *p, *at = strrchr(pattern, '@');
	size_t n = 0, before;

	name_parts(e, given, surname, sizeof given);
	for (p = pattern; p < at && n + 1 < sizeof local; p++) {
		before = n;
		if (*p != '%') {
			local[n++] = tolower((unsigned char)*p);
			local[n] = '\0';
			continue;
		}
		switch (*++p) {
		case 'u': snprintf(part, sizeof part, "%s", e->name); break;
		case 'g': snprintf(part, sizeof part, "%s", given); break;
		case 's': snprintf(part, sizeof part, "%s", surname); break;
		case 'i': snprintf(part, sizeof part, "%.1s", given); break;
		default: snprintf(part, sizeof part, "%%"); break;
		}
		if (*p == 'u' || *p == '%')
			for (size_t i = 0; part[i] && n + 1 < sizeof local; i++)
				local[n++] = tolower((unsigned char)part[i]);
		else
			put_clean(local, &n, sizeof local, part);
		local[n] = '\0';
		if (n == before)
			return 0;	/* "%s" of a mailbox without a surname */
	}
	local[n] = '\0';
	if (snprintf(out, cap, "%s%s", local, at) >= (int)cap)
		return 0;
	lower(out);
	return n <= ADDR_LOCAL_MAX && valuetype_is_addr(out);
}

/* Gives mailbox e the address pattern makes, made unique as Exchange does
 * (a number before '@') when another recipient holds it. The address, or
 * NULL. */
static const char *
generate(struct policy_dir *d, struct policy_entry *e, const char *pattern,
    const struct source_record *pr)
{
	char addr[ADDR_MAX], try[ADDR_MAX + 8];
	const char *at;
	struct policy_entry *owner;
	int n;

	if (!valuetype_is_pattern(pattern) || !expand(e, pattern, addr, sizeof addr))
		return NULL;
	at = strrchr(addr, '@');
	for (n = 1; n < 100; n++) {
		if (n == 1)
			snprintf(try, sizeof try, "%s", addr);
		else
			snprintf(try, sizeof try, "%.*s%d%s", (int)(at - addr),
			    addr, n, at);
		if ((owner = strtable_get(&d->addrs, try)) == e)
			return strtable_slot(&d->addrs, try)->key;
		if (owner == NULL && strlen(try) < ADDR_MAX - 2) {
			char *key = strdup(try);
			if (key == NULL)
				die(EXIT_TEMP, ENOMEM, "out of memory");
			strtable_put(&d->addrs, key, e);
			policy_entry_add_addr(e, key);
			return key;
		}
	}
	d->error(source_attr_line(pr, "addresses"), "policy %s: no unique "
	    "address from %s for mailbox %s", pr->word[1], pattern, e->name);
	return NULL;
}

/* Marks with stamp every recipient reached from group g through members
 * and alias targets (nested groups; a cycle ends where it was marked). */
static void
mark_group(struct policy_dir *d, struct policy_entry *g, size_t stamp)
{
	static char item[SOURCE_LINE_MAX + 1];
	struct policy_entry **stack = xrealloc(NULL, d->n + 1, sizeof *stack);
	size_t depth = 0;

	g->mark = stamp;
	stack[depth++] = g;
	while (depth > 0) {
		struct policy_entry *x = stack[--depth], *y;
		const char *p = attrs_get(&x->rec->attrs,
		    x->kind == POLICY_GROUP ? "members" : "target");
		while (p != NULL && source_item(&p, item, sizeof item) == 1) {
			if (strchr(item, '@') != NULL)
				lower(item);
			y = strtable_get(strchr(item, '@') ? &d->addrs : &d->names, item);
			if (y == NULL || y->mark == stamp)
				continue;
			y->mark = stamp;
			if (y->kind == POLICY_GROUP || y->kind == POLICY_ALIAS)
				stack[depth++] = y;
		}
	}
	free(stack);
}

/* Prepares a policy's filter; 1 when it selects mailboxes (*attr set for
 * attr:NAME=VALUE), 0 after reporting why not. */
static int
filter_start(struct policy_dir *d, const struct source_record *pr,
    size_t stamp, char *attr, size_t cap)
{
	const char *filter = attrs_get(&pr->attrs, "filter");
	struct policy_entry *g;

	attr[0] = '\0';
	if (filter == NULL || strcmp(filter, "all") == 0 ||
	    !valuetype_is_filter(filter))
		return 1;
	if (strncmp(filter, "group:", 6) == 0) {
		if ((g = strtable_get(&d->names, filter + 6)) == NULL ||
		    g->kind != POLICY_GROUP) {
			d->error(source_attr_line(pr, "filter"), "policy %s: "
			    "filter: no group %s in directory", pr->word[1],
			    filter + 6);
			return 0;
		}
		mark_group(d, g, stamp);
		return 1;
	}
	snprintf(attr, cap, "%.*s", (int)strcspn(filter + 5, "="), filter + 5);
	if (confspec_find(confspec_mailbox, attr) != NULL)
		return 1;
	d->error(source_attr_line(pr, "filter"), "policy %s: filter: "
	    "mailboxes have no attribute %s", pr->word[1], attr);
	return 0;
}

static int
filter_match(const struct source_record *pr, const struct policy_entry *e,
    size_t stamp, const char *attr)
{
	const char *filter = attrs_get(&pr->attrs, "filter"), *v, *eq;

	if (e->kind != POLICY_MAILBOX)
		return 0;
	if (filter != NULL && strncmp(filter, "group:", 6) == 0)
		return e->mark == stamp;
	if (attr[0] == '\0')
		return 1;
	v = attrs_get(&e->rec->attrs, attr);
	eq = filter != NULL ? strchr(filter, '=') : NULL;
	return v != NULL && eq != NULL && strcasecmp(v, eq + 1) == 0;
}

/* One policy on one mailbox: every pattern gives an address; the first
 * policy (highest priority) that yields a primary address gives it. */
static void
policy_apply(struct policy_dir *d, const struct source_record *pr,
    struct policy_entry *e)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *list = attrs_get(&pr->attrs, "addresses"), *p = list;
	const char *primary = attrs_get(&pr->attrs, "primary"), *a;
	const char *rewrite = attrs_get(&pr->attrs, "rewrite-from");

	while (p != NULL && source_item(&p, item, sizeof item) == 1)
		generate(d, e, item, pr);
	if (e->primary != NULL)
		return;
	if (primary == NULL && list != NULL) {
		p = list;
		if (source_item(&p, item, sizeof item) == 1)
			primary = item;
	}
	if (primary != NULL && (a = generate(d, e, primary, pr)) != NULL) {
		e->primary = a;
		e->rewrite_from = rewrite != NULL && conf_parse_bool(rewrite) == 1;
	}
}

static int
policy_order(const void *a, const void *b)
{
	const struct source_record *ra = *(const struct source_record **)a;
	const struct source_record *rb = *(const struct source_record **)b;
	const char *pa = attrs_get(&ra->attrs, "priority");
	const char *pb = attrs_get(&rb->attrs, "priority");
	long na = pa && valuetype_is_int(pa) ? atol(pa) : 0;
	long nb = pb && valuetype_is_int(pb) ? atol(pb) : 0;

	if (na != nb)
		return na > nb ? -1 : 1;
	return ra->line < rb->line ? -1 : ra->line > rb->line;
}

void
policy_apply_all(struct policy_dir *d, struct source_record **list, size_t n)
{
	char attr[SOURCE_NAME_MAX];
	size_t i, j;

	qsort(list, n, sizeof *list, policy_order);
	for (i = 0; i < n; i++) {
		if (!filter_start(d, list[i], i + 1, attr, sizeof attr))
			continue;
		for (j = 0; j < d->n; j++)
			if (filter_match(list[i], &d->v[j], i + 1, attr))
				policy_apply(d, list[i], &d->v[j]);
	}
	for (j = 0; j < d->n; j++)
		if (d->v[j].primary == NULL && d->v[j].naddr > 0)
			d->v[j].primary = d->v[j].addr[0];
}
