#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "expansion.h"

enum { ITEM_MAX = DIRECTORY_ITEM_MAX, KEY_MAX = 1100 };

/* The state of one walk through the directory: where the current
 * one-to-one chain (aliases, contacts) started and what it passed. */
struct walk {
	struct directory *d;
	struct directory_expansion *x;
	char top[ITEM_MAX];		/* the address the sender or group named */
	char chain[DIRECTORY_MAX_DEPTH][KEY_MAX];
	size_t nchain;
	int depth;
	int is_expanded;
};

static int expand_addr(struct walk *w, const char *addr);
static int expand_name(struct walk *w, const char *name);
static int expand_group(struct walk *w, const char *name, const char *addr);

/* A set of strings: open addressing, power-of-two size, FNV-1a. */
static size_t
set_hash(const char *s)
{
	size_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static int
set_grow(struct directory_set *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64, i, j;
	char **slot = calloc(cap, sizeof *slot);

	if (slot == NULL)
		return -1;
	for (i = 0; i < s->cap; i++) {
		if (s->slot[i] == NULL)
			continue;
		for (j = set_hash(s->slot[i]) & (cap - 1); slot[j];
		    j = (j + 1) & (cap - 1))
			;
		slot[j] = s->slot[i];
	}
	free(s->slot);
	s->slot = slot;
	s->cap = cap;
	return 0;
}

/* Adds key: 1 added, 0 already there, -1 ENOMEM. */
static int
set_add(struct directory_set *s, const char *key)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap && set_grow(s) < 0)
		return -1;
	for (i = set_hash(key) & (s->cap - 1); s->slot[i];
	    i = (i + 1) & (s->cap - 1))
		if (strcmp(s->slot[i], key) == 0)
			return 0;
	if ((s->slot[i] = strdup(key)) == NULL)
		return -1;
	s->n++;
	return 1;
}

static void
set_free(struct directory_set *s)
{
	size_t i;

	for (i = 0; i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
	memset(s, 0, sizeof *s);
}

static struct directory_target *
target_add(struct directory_expansion *x, const char *addr, int how)
{
	struct directory_target *t;

	if (x->n >= DIRECTORY_MAX_TARGETS + 8) {	/* room for the 5.5.3 note */
		errno = E2BIG;
		return NULL;
	}
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 8;
		if ((t = realloc(x->v, cap * sizeof *t)) == NULL)
			return NULL;
		x->v = t;
		x->cap = cap;
	}
	t = &x->v[x->n];
	memset(t, 0, sizeof *t);
	if ((t->addr = strdup(addr)) == NULL)
		return NULL;
	t->how = how;
	x->n++;
	return t;
}

/* A failure (or, with code NULL, a skipped member) for the address the
 * current chain started from: that is the address the sender knows. */
static int
target_note(struct walk *w, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
target_note(struct walk *w, const char *code, const char *fmt, ...)
{
	struct directory_target *t;
	char reason[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	t = target_add(w->x, w->top, code ? DIRECTORY_FAILED : DIRECTORY_SKIPPED);
	if (t == NULL || (t->reason = strdup(reason)) == NULL)
		return -1;
	snprintf(t->code, sizeof t->code, "%s", code ? code : "");
	t->is_expanded = w->is_expanded;
	return 0;
}

/* 1 when the expansion is full: the first time, a 5.5.3 failure is noted
 * for the recipient being expanded; later members are dropped. */
static int
is_full(struct walk *w)
{
	if (w->x->n < DIRECTORY_MAX_TARGETS)
		return 0;
	if (!w->x->is_truncated) {
		w->x->is_truncated = 1;
		if (target_note(w, "5.5.3", "554 5.5.3 <%s>: too many recipients "
		    "(more than %d after expansion)", w->top,
		    DIRECTORY_MAX_TARGETS) < 0)
			return -1;
	}
	return 1;
}

static int
add_remote(struct walk *w, const char *addr, const char *relay_host)
{
	struct directory_target *t;
	char key[KEY_MAX];
	int rc;

	snprintf(key, sizeof key, "r:%s", addr);
	addr_key(key, key, sizeof key);
	if ((rc = set_add(&w->x->seen, key)) <= 0)
		return rc < 0 ? -1 : target_note(w, NULL, "%s is already a "
		    "recipient", addr);
	if ((t = target_add(w->x, addr, DIRECTORY_REMOTE)) == NULL)
		return -1;
	t->is_expanded = w->is_expanded;
	if (relay_host && (t->relay_host = strdup(relay_host)) == NULL)
		return -1;
	return 0;
}

/* Who the sender is in the directory, looked up once per message. */
static int
sender_identity(struct walk *w)
{
	struct directory_expansion *x = w->x;
	int rc;

	if (x->sender_known)
		return 0;
	rc = directory_lookup(w->d, x->sender, x->sender_kind,
	    sizeof x->sender_kind, x->sender_name, sizeof x->sender_name);
	if (rc < 0)
		return -1;
	if (rc == 0)
		x->sender_kind[0] = x->sender_name[0] = '\0';
	x->sender_known = 1;
	return 0;
}

static int
is_sender_mailbox(struct walk *w, const char *name)
{
	return strcmp(w->x->sender_kind, "mailbox") == 0 &&
	    strcmp(w->x->sender_name, name) == 0;
}

/* Whether the sender is a member of a group, nested groups included. */
struct membership {
	struct walk *w;
	struct directory_set visited;
	int depth;
};

static int group_has_sender(struct membership *m, const char *group);

static int
member_is_sender(const char *item, void *arg)
{
	struct membership *m = arg;
	struct walk *w = m->w;
	char kind[16], name[256];
	int rc;

	if (strchr(item, '@') != NULL) {
		if (strcasecmp(item, w->x->sender) == 0)
			return 1;
		rc = directory_lookup(w->d, item, kind, sizeof kind,
		    name, sizeof name);
		if (rc <= 0)
			return rc;
		if (strcmp(kind, "mailbox") == 0)
			return is_sender_mailbox(w, name);
		item = name;
		if (strcmp(kind, "group") != 0)
			return 0;
	}
	if (is_sender_mailbox(w, item))
		return 1;
	return group_has_sender(m, item);
}

/* 1 when the sender is in group (or a group nested in it), 0, -1. */
static int
group_has_sender(struct membership *m, const char *group)
{
	struct attrs a = ATTRS_INIT;
	char key[KEY_MAX];
	int rc;

	snprintf(key, sizeof key, "g:%s", group);
	if (m->depth >= DIRECTORY_MAX_DEPTH ||
	    (rc = set_add(&m->visited, key)) == 0)
		return 0;	/* a cycle: this group was searched already */
	if (rc < 0 || (rc = directory_record(m->w->d, "group", group, &a)) <= 0) {
		attrs_free(&a);
		return rc;
	}
	m->depth++;
	rc = directory_each(attrs_get(&a, "members"), member_is_sender, m);
	m->depth--;
	attrs_free(&a);
	return rc;
}

/* Whether the sender matches one restriction entry: 1, 0, -1. */
static int
sender_matches(const char *item, void *arg)
{
	struct walk *w = arg;
	const char *sender = w->x->sender, *domain = addr_domain(sender);
	struct membership m = { w, { NULL, 0, 0 }, 0 };
	size_t dlen, ilen;
	int rc;

	if (*sender == '\0')
		return 0;	/* <> is nobody: it matches no entry */
	if (item[0] == '@') {
		/* "@example.com" covers its sub-domains too */
		dlen = strlen(domain);
		ilen = strlen(item + 1);
		return strcasecmp(domain, item + 1) == 0 || (dlen > ilen &&
		    domain[dlen - ilen - 1] == '.' &&
		    strcasecmp(domain + dlen - ilen, item + 1) == 0);
	}
	if (strchr(item, '@') != NULL)
		return strcasecmp(item, sender) == 0;
	if (sender_identity(w) < 0)
		return -1;
	if (is_sender_mailbox(w, item))
		return 1;
	rc = group_has_sender(&m, item);
	set_free(&m.visited);
	return rc;
}

/* Applies a recipient's accept-from, reject-from and max-size to this
 * message: 0 allowed, 1 refused (a failure was added), -1 error. */
static int
check_restrictions(struct walk *w, const struct attrs *a, const char *addr)
{
	const char *accept = attrs_get(a, "accept-from");
	const char *reject = attrs_get(a, "reject-from");
	const char *max = attrs_get(a, "max-size");
	long long limit;
	int rc;

	if (accept != NULL && *accept != '\0') {
		if ((rc = directory_each(accept, sender_matches, w)) < 0)
			return -1;
		if (rc == 0)
			goto refused;
	}
	if (reject != NULL && *reject != '\0') {
		if ((rc = directory_each(reject, sender_matches, w)) < 0)
			return -1;
		if (rc == 1)
			goto refused;
	}
	if (max != NULL && w->x->size >= 0 &&
	    (limit = conf_parse_size(max)) >= 0 && w->x->size > limit)
		return target_note(w, "5.2.3", "552 5.2.3 <%s>: message too "
		    "large for this recipient (%lld bytes, limit %lld)", addr,
		    w->x->size, limit) < 0 ? -1 : 1;
	return 0;
refused:
	return target_note(w, "5.7.1", "550 5.7.1 <%s>: sender not allowed "
	    "to send to this recipient", addr) < 0 ? -1 : 1;
}

static int
expand_mailbox(struct walk *w, const char *name, const char *addr)
{
	struct attrs a = ATTRS_INIT;
	struct directory_target *t;
	char key[KEY_MAX];
	int rc;

	snprintf(key, sizeof key, "m:%s", name);
	if ((rc = set_add(&w->x->seen, key)) <= 0)	/* once per mailbox */
		return rc < 0 ? -1 : target_note(w, NULL, "mailbox %s is "
		    "already a recipient", name);
	if ((rc = directory_record(w->d, "mailbox", name, &a)) <= 0) {
		attrs_free(&a);
		return rc < 0 ? -1 : target_note(w, "5.1.1", "550 5.1.1 <%s>: "
		    "mailbox %s is not in the directory", addr, name);
	}
	rc = check_restrictions(w, &a, addr);
	attrs_free(&a);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if ((t = target_add(w->x, addr, DIRECTORY_LOCAL)) == NULL ||
	    (t->box = strdup(name)) == NULL)
		return -1;
	t->is_expanded = w->is_expanded;
	return 0;
}

/* An alias or contact: its target, unless the chain comes back to it. */
static int
expand_forward(struct walk *w, const char *kind, const char *name,
    const char *addr)
{
	struct attrs a = ATTRS_INIT;
	const char *target;
	size_t i;
	int rc;

	for (i = 0; i < w->nchain; i++)
		if (strcmp(w->chain[i] + 2, name) == 0 &&
		    w->chain[i][0] == kind[0])
			return target_note(w, "5.4.6", "554 5.4.6 <%s>: "
			    "forwarding loop: %s %s leads back to itself",
			    w->top, kind, name);
	if ((rc = directory_record(w->d, kind, name, &a)) < 0)
		goto out;
	target = attrs_get(&a, "target");
	if (rc == 0 || target == NULL || *target == '\0') {
		rc = target_note(w, "5.1.1", "550 5.1.1 <%s>: %s %s has no "
		    "target", addr, kind, name);
		goto out;
	}
	if ((rc = check_restrictions(w, &a, addr)) != 0)
		goto out;
	snprintf(w->chain[w->nchain++], KEY_MAX, "%c:%s", kind[0], name);
	w->is_expanded++;
	/* a target is an address, or the NAME of another recipient */
	rc = strchr(target, '@') ? expand_addr(w, target) : expand_name(w, target);
	w->is_expanded--;
	w->nchain--;
out:
	attrs_free(&a);
	return rc;
}


/* Which kind a member NAME is: 1 with the kind and the record, 0 none. */
static int
member_record(struct walk *w, const char *name, const char **kind,
    struct attrs *a)
{
	static const char *kinds[] = { "mailbox", "group", "contact", "alias" };
	size_t i;
	int rc;

	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if ((rc = directory_record(w->d, kinds[i], name, a)) != 0) {
			*kind = kinds[i];
			return rc;
		}
	return 0;
}

/* A directory object by its kind: mailbox, group, or a forwarding kind. */
static int
expand_object(struct walk *w, const char *kind, const char *name,
    const char *addr)
{
	if (strcmp(kind, "mailbox") == 0)
		return expand_mailbox(w, name, addr);
	if (strcmp(kind, "group") == 0)
		return expand_group(w, name, addr);
	return expand_forward(w, kind, name, addr);
}

/* A recipient named by its NAME (a member, or a target given by name). */
static int
expand_name(struct walk *w, const char *name)
{
	struct attrs a = ATTRS_INIT;
	const char *kind;
	char addr[ITEM_MAX];
	int rc;

	if ((rc = is_full(w)) != 0)
		return rc < 0 ? -1 : 0;
	if ((rc = member_record(w, name, &kind, &a)) <= 0) {
		attrs_free(&a);
		return rc < 0 ? -1 : target_note(w, NULL, "%s does not exist",
		    name);
	}
	directory_address(&a, name, addr);
	attrs_free(&a);
	return expand_object(w, kind, name, addr);
}

static int
expand_member(const char *item, void *arg)
{
	struct walk *w = arg;
	struct attrs a = ATTRS_INIT;
	const char *kind;

	snprintf(w->top, sizeof w->top, "%s", item);
	if (strchr(item, '@') == NULL &&
	    member_record(w, item, &kind, &a) == 1)
		directory_address(&a, item, w->top);
	attrs_free(&a);
	if (strchr(item, '@') != NULL)
		return expand_addr(w, item) < 0 ? -1 : 0;
	return expand_name(w, item) < 0 ? -1 : 0;
}

/* A group's members, each once; a group met again is a cycle, skipped.
 * Members start chains of their own: a loop through a group is a group
 * cycle, not a forwarding loop. */
static int
expand_group(struct walk *w, const char *name, const char *addr)
{
	struct attrs a = ATTRS_INIT;
	char key[KEY_MAX], top[ITEM_MAX];
	size_t nchain = w->nchain;
	int rc;

	snprintf(key, sizeof key, "g:%s", name);
	if ((rc = set_add(&w->x->groups, key)) <= 0)
		return rc < 0 ? -1 : target_note(w, NULL, "group %s already "
		    "expanded (nested twice or a cycle)", name);
	if ((rc = directory_record(w->d, "group", name, &a)) <= 0) {
		attrs_free(&a);
		return rc < 0 ? -1 : target_note(w, "5.1.1", "550 5.1.1 <%s>: "
		    "group %s is not in the directory", addr, name);
	}
	if ((rc = check_restrictions(w, &a, addr)) == 0) {
		memcpy(top, w->top, sizeof top);
		w->nchain = 0;
		w->depth++;
		w->is_expanded++;
		rc = directory_each(attrs_get(&a, "members"), expand_member, w);
		w->is_expanded--;
		w->depth--;
		w->nchain = nchain;
		memcpy(w->top, top, sizeof top);
	}
	attrs_free(&a);
	return rc < 0 ? -1 : 0;
}

/* An address the directory does not know, by the type of its domain. */
static int
expand_unknown(struct walk *w, const char *addr)
{
	char host[ITEM_MAX], local[ITEM_MAX], postmaster[ITEM_MAX];
	int type;

	if (strchr(addr, '@') == NULL)	/* RFC 5321 4.1.1.3: <postmaster> */
		return strcasecmp(addr, "postmaster") == 0 &&
		    conf_setting("postmaster", NULL, postmaster,
		    sizeof postmaster) == 1 && strchr(postmaster, '@') ?
		    expand_addr(w, postmaster) : target_note(w, "5.1.3",
		    "501 5.1.3 <%s>: the address has no domain", addr);
	if ((type = directory_domain(w->d, addr_domain(addr))) < 0)
		return -1;
	if (type != DIRECTORY_AUTHORITATIVE)
		return add_remote(w, addr, NULL);
	/* RFC 5321 4.5.1: postmaster of every domain we own must work */
	if (addr_local(addr, local, sizeof local) == 0 &&
	    strcasecmp(local, "postmaster") == 0 &&
	    conf_setting("postmaster", NULL, postmaster, sizeof postmaster) == 1 &&
	    strchr(postmaster, '@') && strcasecmp(postmaster, addr) != 0) {
		w->depth++;
		type = expand_addr(w, postmaster);
		w->depth--;
		return type;
	}
	if (conf_setting("unresolved-host", NULL, host, sizeof host) == 1 &&
	    *host != '\0')
		return add_remote(w, addr, host);
	return target_note(w, "5.1.1", "550 5.1.1 <%s>: recipient not found",
	    addr);
}

static int
expand_addr(struct walk *w, const char *addr)
{
	char kind[16], name[256];
	int rc;

	if ((rc = is_full(w)) != 0)
		return rc < 0 ? -1 : 0;
	if (w->depth >= DIRECTORY_MAX_DEPTH || w->nchain >= DIRECTORY_MAX_DEPTH)
		return target_note(w, "5.4.6", "554 5.4.6 <%s>: forwarding "
		    "or nesting deeper than %d", w->top, DIRECTORY_MAX_DEPTH);
	if ((rc = directory_lookup(w->d, addr, kind, sizeof kind, name,
	    sizeof name)) < 0)
		return -1;
	if (rc == 1)
		return expand_object(w, kind, name, addr);
	return expand_unknown(w, addr);
}

int
directory_expand(struct directory *d, struct directory_expansion *x,
    const char *addr)
{
	struct walk *w = calloc(1, sizeof *w);	/* ~35K: not on the stack */
	int rc;

	if (w == NULL)
		return -1;
	w->d = d;
	w->x = x;
	snprintf(w->top, sizeof w->top, "%s", addr);
	rc = expand_addr(w, addr);
	free(w);
	return rc;
}

void
directory_expansion_free(struct directory_expansion *x)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		free(x->v[i].addr);
		free(x->v[i].box);
		free(x->v[i].relay_host);
		free(x->v[i].reason);
	}
	free(x->v);
	set_free(&x->seen);
	set_free(&x->groups);
	x->v = NULL;
	x->n = x->cap = 0;
	x->sender_known = x->is_truncated = 0;
}
