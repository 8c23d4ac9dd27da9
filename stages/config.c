/*
 * bh-config: check the configuration sources as one set and compile them
 * into constant databases.
 *
 * usage   bh-config [-n] [SOURCE...]
 * reads   DIR/settings servers domains directory connectors filters, all
 *         six every time (a missing one reads as empty); DIR is the folder
 *         of the SOURCE arguments (the current one for bare names), or
 *         $BH_ROOT/cdb without arguments
 * writes  DIR/NAME.cdb for each SOURCE named (without arguments: each whose
 *         .cdb is missing or older than its source), through NAME.cdb.tmp,
 *         fsync and rename, so a reader sees the old or the new database;
 *         -n checks only and writes nothing
 * exit    0 written; 100 bad usage, or errors in the sources (each printed
 *         as FILE:LINE: message on stderr) and nothing written; 111 system
 *         trouble (nothing renamed into place)
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cdbout.h"
#include "conf.h"
#include "confspec.h"
#include "log.h"
#include "policy.h"
#include "root.h"
#include "source.h"
#include "strtable.h"
#include "valuetype.h"

/* ---- the six sources, and errors ---- */

enum { F_SETTINGS, F_SERVERS, F_DOMAINS, F_DIRECTORY, F_CONNECTORS,
    F_FILTERS, NFILES };

struct file {
	const char *name;
	int flags;			/* for source_open */
	struct source_record *rec;
	size_t n, cap;
	int is_wanted;
	mode_t mode;			/* the source's, given to its .cdb */
};

static struct file files[NFILES] = {
	{ .name = "settings", .flags = SOURCE_WORDS_ONLY },
	{ .name = "servers", .flags = 0 },
	{ .name = "domains", .flags = 0 },
	{ .name = "directory", .flags = 0 },
	{ .name = "connectors", .flags = 0 },
	{ .name = "filters", .flags = SOURCE_WORDS_ONLY },
};

static char dir[PATH_MAX];
static unsigned long nerrors;

/* Errors are kept and printed sorted by file and line at the end, so the
 * order of the checks does not show. */
enum { ERRORS_SHOWN = 10000 };

struct error {
	int f;
	unsigned line;
	unsigned long seq;
	char *text;
};

static struct error *errors;

static void __attribute__((format(printf, 3, 4)))
error_at(int f, unsigned line, const char *fmt, ...)
{
	struct error *e;
	va_list ap;

	if (nerrors++ >= ERRORS_SHOWN)
		return;
	if (errors == NULL && (errors = calloc(ERRORS_SHOWN, sizeof *errors)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	e = &errors[nerrors - 1];
	e->f = f;
	e->line = line;
	e->seq = nerrors;
	va_start(ap, fmt);
	if (vasprintf(&e->text, fmt, ap) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	va_end(ap);
}

static int
error_order(const void *a, const void *b)
{
	const struct error *x = a, *y = b;

	if (x->f != y->f)
		return x->f < y->f ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
errors_print(void)
{
	unsigned long i, n = nerrors < ERRORS_SHOWN ? nerrors : ERRORS_SHOWN;

	qsort(errors, n, sizeof *errors, error_order);
	for (i = 0; i < n; i++)
		fprintf(stderr, "%s:%u: %s\n", files[errors[i].f].name,
		    errors[i].line, errors[i].text);
	if (nerrors > n)
		fprintf(stderr, "bh-config: %lu more errors not shown\n",
		    nerrors - n);
	fprintf(stderr, "bh-config: %lu error%s, nothing written\n", nerrors,
	    nerrors == 1 ? "" : "s");
}

static void *
xrealloc(void *p, size_t n, size_t size)
{
	if (n > ((size_t)-1) / 2 / size || (p = realloc(p, n * size)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	return copy;
}

/* Checks one value (each item of a list); reports the first bad item.
 * what names the record ("mailbox demo"), NULL for a setting. */
static void
check_value(int f, unsigned line, const char *what, const struct confspec *sp,
    const char *value)
{
	const char *item, *why;

	if (confspec_check(sp, value, &item, &why) == 0)
		return;
	if (why == NULL)
		error_at(f, line, "%s%s%s: empty item in list", what ? what : "",
		    what ? ": " : "", sp->name);
	else
		error_at(f, line, "%s%s%s: \"%s\" is %s%s", what ? what : "",
		    what ? ": " : "", sp->name, item,
		    sp->kind == VT_ENUM ? "not one of " : "", why);
}

/* Checks every attribute of r against spec; what names the record. */
static void
check_attrs(int f, const struct source_record *r, const struct confspec *spec,
    const char *what)
{
	const struct confspec *sp;
	size_t i;

	for (i = 0; i < r->attrs.n; i++) {
		const struct attr *a = &r->attrs.v[i];
		if ((sp = confspec_find(spec, a->name)) == NULL)
			error_at(f, r->attr_line[i], "%s: unknown attribute %s",
			    what, a->name);
		else if (r->attr_times[i] > 1 && !sp->is_list)
			error_at(f, r->attr_line[i], "%s: %s given twice", what,
			    a->name);
		else
			check_value(f, r->attr_line[i], what, sp, a->value);
	}
	for (sp = spec; sp->name != NULL; sp++)
		if (sp->is_required && source_attr_index(r, sp->name) < 0)
			error_at(f, r->line, "%s: %s= is missing", what, sp->name);
}

/* ---- reading the sources ---- */

static void
load(int f)
{
	struct file *fl = &files[f];
	struct source s;
	struct source_record r;
	struct stat st;
	char path[PATH_MAX];
	int rc;

	if (snprintf(path, sizeof path, "%s/%s", dir, fl->name) >= (int)sizeof path)
		die(EXIT_PERM, ENAMETOOLONG, "%s/%s", dir, fl->name);
	if (source_open(&s, path, fl->flags) < 0) {
		if (errno == ENOENT)
			return;		/* a missing source is an empty one */
		die(EXIT_TEMP, errno, "unable to open %s", path);
	}
	if (fstat(fileno(s.f), &st) == 0)
		fl->mode = st.st_mode & 0666;
	while ((rc = source_next(&s, &r)) != 0) {
		if (rc == -2)
			die(EXIT_TEMP, errno, "unable to read %s", path);
		if (rc == -1) {
			error_at(f, s.error_line, "%s", s.error);
			continue;
		}
		if (fl->n == fl->cap) {
			fl->cap = fl->cap ? fl->cap * 2 : 64;
			fl->rec = xrealloc(fl->rec, fl->cap, sizeof *fl->rec);
		}
		fl->rec[fl->n++] = r;
	}
	source_close(&s);
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = tolower((unsigned char)*s);
}

/* Registers a record's name in t; refuses a second record of that name. */
static int
unique(int f, struct strtable *t, const char *name, struct source_record *r,
    const char *kind)
{
	struct source_record *earlier = strtable_put(t, name, r);

	if (earlier == NULL)
		return 1;
	error_at(f, r->line, "%s %s already defined at line %u", kind, name,
	    earlier->line);
	return 0;
}

/* Checks the key words of a "NAME attrs" record; 1 when usable. */
static int
named_record(int f, struct source_record *r, size_t nword, const char *shape)
{
	if (r->nword != nword) {
		error_at(f, r->line, "expected %s", shape);
		return 0;
	}
	if (!valuetype_is_name(r->word[nword - 1])) {
		error_at(f, r->line, "bad name \"%s\" (use letters, digits, '.', "
		    "'_' and '-')", r->word[nword - 1]);
		return 0;
	}
	return 1;
}

static struct strtable settings_seen;
static const char *hostname_setting;

static void
check_settings(void)
{
	struct file *fl = &files[F_SETTINGS];
	const struct confspec *sp;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword != 2) {
			error_at(F_SETTINGS, r->line, "expected KEY VALUE (quote "
			    "a value with spaces)");
			continue;
		}
		if ((sp = confspec_find(confspec_settings, r->word[0])) == NULL) {
			error_at(F_SETTINGS, r->line, "unknown setting %s",
			    r->word[0]);
			continue;
		}
		/* a later line overrides an earlier one: settings >> works */
		if (strtable_put(&settings_seen, r->word[0], r) != NULL)
			strtable_slot(&settings_seen, r->word[0])->value = r;
		check_value(F_SETTINGS, r->line, NULL, sp, r->word[1]);
		if (strcmp(r->word[0], "hostname") == 0)
			hostname_setting = r->word[1];
	}
}

static struct strtable servers;

static void
check_server_tls(struct source_record *r, const char *what)
{
	const char *tls = attrs_get(&r->attrs, "tls");
	int has_cert = attrs_get(&r->attrs, "cert") != NULL;
	int has_key = attrs_get(&r->attrs, "key") != NULL;

	if (has_cert != has_key)
		error_at(F_SERVERS, r->line, "%s: cert= and key= go together",
		    what);
	else if (tls != NULL && (strcmp(tls, "optional") == 0 ||
	    strcmp(tls, "required") == 0) && !has_cert)
		error_at(F_SERVERS, source_attr_line(r, "tls"), "%s: tls=%s needs "
		    "cert= and key=", what, tls);
}

static void
check_servers(void)
{
	struct file *fl = &files[F_SERVERS];
	char what[128];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (!named_record(F_SERVERS, r, 1, "NAME name=value ..."))
			continue;
		snprintf(what, sizeof what, "server %s", r->word[0]);
		if (!unique(F_SERVERS, &servers, r->word[0], r, "server"))
			continue;
		check_attrs(F_SERVERS, r, confspec_server, what);
		check_server_tls(r, what);
	}
}

static struct strtable domains, policies;

static void
check_domain(struct source_record *r)
{
	char what[300];

	if (r->nword != 1) {
		error_at(F_DOMAINS, r->line, "expected DOMAIN type=... or "
		    "policy NAME ...");
		return;
	}
	if (!valuetype_is_host(r->word[0])) {
		error_at(F_DOMAINS, r->line, "bad domain \"%s\"", r->word[0]);
		return;
	}
	lower(r->word[0]);
	if (!unique(F_DOMAINS, &domains, r->word[0], r, "domain"))
		return;
	snprintf(what, sizeof what, "domain %s", r->word[0]);
	check_attrs(F_DOMAINS, r, confspec_domain, what);
}

static void
check_domains(void)
{
	struct file *fl = &files[F_DOMAINS];
	char what[128];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword == 0 || strcmp(r->word[0], "policy") != 0) {
			check_domain(r);
			continue;
		}
		if (!named_record(F_DOMAINS, r, 2, "policy NAME name=value ..."))
			continue;
		if (!unique(F_DOMAINS, &policies, r->word[1], r, "policy"))
			continue;
		snprintf(what, sizeof what, "policy %s", r->word[1]);
		check_attrs(F_DOMAINS, r, confspec_policy, what);
	}
}

static struct strtable connectors;

static void
check_connectors(void)
{
	struct file *fl = &files[F_CONNECTORS];
	char what[128];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (!named_record(F_CONNECTORS, r, 1, "NAME name=value ..."))
			continue;
		if (!unique(F_CONNECTORS, &connectors, r->word[0], r, "connector"))
			continue;
		snprintf(what, sizeof what, "connector %s", r->word[0]);
		check_attrs(F_CONNECTORS, r, confspec_connector, what);
		if (attrs_get(&r->attrs, "route") != NULL &&
		    attrs_get(&r->attrs, "smarthost") != NULL)
			error_at(F_CONNECTORS, source_attr_line(r, "smarthost"), "%s: "
			    "route=dns and smarthost= exclude each other", what);
	}
}

static struct strtable filters;

static void
check_filters(void)
{
	struct file *fl = &files[F_FILTERS];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword != 1) {
			error_at(F_FILTERS, r->line, "expected one @DOMAIN or "
			    "ADDRESS per line");
			continue;
		}
		if (!(r->word[0][0] == '@' && valuetype_is_host(r->word[0] + 1)) &&
		    !valuetype_is_addr(r->word[0])) {
			error_at(F_FILTERS, r->line, "\"%s\" is not @DOMAIN or an "
			    "address", r->word[0]);
			continue;
		}
		lower(r->word[0]);
		unique(F_FILTERS, &filters, r->word[0], r, "filter");
	}
}

/* ---- the directory: recipients, their names and addresses ---- */

static const struct {
	const char *name, *plural;
	const struct confspec *spec;
} kinds[POLICY_NKINDS] = {
	{ "mailbox", "mailboxes", confspec_mailbox },
	{ "contact", "contacts", confspec_contact },
	{ "group", "groups", confspec_group },
	{ "alias", "aliases", confspec_alias },
};

static struct policy_dir recips;

static int
entry_kind(const char *word)
{
	int k;

	for (k = 0; k < POLICY_NKINDS; k++)
		if (strcmp(word, kinds[k].name) == 0)
			return k;
	return -1;
}

static void
check_entry(struct source_record *r)
{
	char what[128];
	struct policy_entry *e, *earlier;
	int kind;

	if (r->nword == 0 || (kind = entry_kind(r->word[0])) < 0) {
		error_at(F_DIRECTORY, r->line, "unknown kind \"%s\" (mailbox, "
		    "contact, group or alias)", r->nword ? r->word[0] : "");
		return;
	}
	if (!named_record(F_DIRECTORY, r, 2, "KIND NAME name=value ..."))
		return;
	snprintf(what, sizeof what, "%s %s", r->word[0], r->word[1]);
	check_attrs(F_DIRECTORY, r, kinds[kind].spec, what);
	e = &recips.v[recips.n];
	memset(e, 0, sizeof *e);
	e->rec = r;
	e->kind = kind;
	e->name = r->word[1];
	e->rewrite_from = -1;
	if ((earlier = strtable_put(&recips.names, e->name, e)) != NULL) {
		error_at(F_DIRECTORY, r->line, "name %s already used by %s %s at "
		    "line %u", e->name, kinds[earlier->kind].name, e->name,
		    earlier->rec->line);
		return;
	}
	recips.n++;
}

/* Gives address key (lower case, owned) to e, refusing an address that
 * names another recipient (5.1.4: it must name exactly one). */
static int
claim(struct policy_entry *e, char *key, unsigned line)
{
	struct policy_entry *owner = strtable_put(&recips.addrs, key, e);

	if (owner == NULL) {
		policy_entry_add_addr(e, key);
		return 1;
	}
	if (owner == e)
		error_at(F_DIRECTORY, line, "%s %s: address %s listed twice",
		    kinds[e->kind].name, e->name, key);
	else
		error_at(F_DIRECTORY, line, "%s %s: address %s already belongs "
		    "to %s %s (line %u)", kinds[e->kind].name, e->name, key,
		    kinds[owner->kind].name, owner->name, owner->rec->line);
	free(key);
	return 0;
}

static void
claim_given(struct policy_entry *e)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *p = attrs_get(&e->rec->attrs, "addresses");
	unsigned line = source_attr_line(e->rec, "addresses");

	if (p == NULL)
		return;
	while (source_item(&p, item, sizeof item) == 1)
		if (valuetype_is_addr(item)) {
			lower(item);
			claim(e, xstrdup(item), line);
		}
}

/* Every name in a reference list (no '@', not "@domain") must be a
 * directory name. */
static void
check_refs(struct policy_entry *e, const char *attr)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *p = attrs_get(&e->rec->attrs, attr);

	if (p == NULL)
		return;
	while (source_item(&p, item, sizeof item) == 1)
		if (valuetype_is_name(item) && strchr(item, '@') == NULL &&
		    strtable_get(&recips.names, item) == NULL)
			error_at(F_DIRECTORY, source_attr_line(e->rec, attr), "%s %s: "
			    "%s: %s is not an address or a directory name",
			    kinds[e->kind].name, e->name, attr, item);
}

static void
check_directory(void)
{
	struct file *fl = &files[F_DIRECTORY];
	size_t i;

	recips.v = xrealloc(NULL, fl->n + 1, sizeof *recips.v);
	for (i = 0; i < fl->n; i++)
		check_entry(&fl->rec[i]);
	for (i = 0; i < recips.n; i++)
		claim_given(&recips.v[i]);
	for (i = 0; i < recips.n; i++) {
		check_refs(&recips.v[i], "target");
		check_refs(&recips.v[i], "members");
		check_refs(&recips.v[i], "accept-from");
		check_refs(&recips.v[i], "reject-from");
	}
}

/* ---- recipient policies (lib/policy) ---- */

static void __attribute__((format(printf, 2, 3)))
policy_error(unsigned line, const char *fmt, ...)
{
	char *text;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	va_end(ap);
	error_at(F_DOMAINS, line, "%s", text);
	free(text);
}

static void
apply_policies(void)
{
	struct file *fl = &files[F_DOMAINS];
	struct source_record **list = xrealloc(NULL, fl->n + 1, sizeof *list);
	size_t i, n = 0;

	for (i = 0; i < fl->n; i++)
		if (fl->rec[i].nword == 2 && strcmp(fl->rec[i].word[0], "policy") == 0)
			list[n++] = &fl->rec[i];
	recips.error = policy_error;
	policy_apply_all(&recips, list, n);
	free(list);
}

/* ---- checks that span files ---- */

/* The book's 5.4.8 trap: a policy domain equal to a server's FQDN makes
 * mail for the server's own name look like mail for the policy. */
static void
check_policy_host(const struct source_record *pr, const char *domain)
{
	static char machine[256];
	struct file *fl = &files[F_SERVERS];
	const char *fqdn;
	size_t i;

	if (hostname_setting == NULL && machine[0] == '\0' &&
	    gethostname(machine, sizeof machine - 1) < 0)
		machine[0] = '\0';
	if (strcasecmp(domain, hostname_setting ? hostname_setting : machine) == 0)
		error_at(F_DOMAINS, source_attr_line(pr, "addresses"), "policy %s: domain "
		    "%s is the host name of %s (5.4.8: a policy domain must not "
		    "equal a server's FQDN)", pr->word[1], domain,
		    hostname_setting ? "settings hostname" : "this machine");
	for (i = 0; i < fl->n; i++)
		if ((fqdn = attrs_get(&fl->rec[i].attrs, "hostname")) != NULL &&
		    strcasecmp(domain, fqdn) == 0)
			error_at(F_DOMAINS, source_attr_line(pr, "addresses"), "policy "
			    "%s: domain %s is the host name of server %s (5.4.8: "
			    "a policy domain must not equal a server's FQDN)",
			    pr->word[1], domain, fl->rec[i].word[0]);
}

static void
check_policy_hosts(void)
{
	static char item[SOURCE_LINE_MAX + 1];
	struct file *fl = &files[F_DOMAINS];
	const char *p, *at;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword != 2 || strcmp(r->word[0], "policy") != 0)
			continue;
		p = attrs_get(&r->attrs, "addresses");
		while (p != NULL && source_item(&p, item, sizeof item) == 1)
			if (valuetype_is_pattern(item) && (at = strrchr(item, '@')) != NULL)
				check_policy_host(r, at + 1);
	}
}

static void
check_connector_sources(void)
{
	static char item[SOURCE_LINE_MAX + 1];
	struct file *fl = &files[F_CONNECTORS];
	const char *p;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		p = attrs_get(&r->attrs, "source");
		while (p != NULL && source_item(&p, item, sizeof item) == 1)
			if (valuetype_is_name(item) && strtable_get(&servers, item) == NULL)
				error_at(F_CONNECTORS, source_attr_line(r, "source"),
				    "connector %s: source: no server %s in servers",
				    r->nword ? r->word[0] : "", item);
	}
}

/* ---- writing the databases ---- */

static struct cdbout outs[NFILES];
static int nouts;

/* A failed run leaves no NAME.cdb.tmp behind (die exits through here). */
static void
out_cleanup(void)
{
	int i;

	for (i = 0; i < nouts; i++)
		if (outs[i].tmp[0] != '\0')
			unlink(outs[i].tmp);
}

static void
write_settings(struct cdbout *o)
{
	struct file *fl = &files[F_SETTINGS];
	size_t i;

	for (i = 0; i < fl->n; i++)
		if (strtable_get(&settings_seen, fl->rec[i].word[0]) == &fl->rec[i])
			cdbout_put(o, fl->rec[i].word[0], fl->rec[i].word[1],
			    strlen(fl->rec[i].word[1]));
}

/* servers.cdb and connectors.cdb: PREFIX:NAME -> record, LIST -> names. */
static void
write_named(struct cdbout *o, int f, const char *prefix, const char *list)
{
	struct file *fl = &files[f];
	struct buf b = BUF_INIT, names_list = BUF_INIT;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		cdbout_blob_attrs(&b, &fl->rec[i].attrs, NULL);
		cdbout_putf(o, &b, "%s:%s", prefix, fl->rec[i].word[0]);
		cdbout_list_add(&names_list, fl->rec[i].word[0]);
	}
	cdbout_putf(o, &names_list, "%s", list);
	buf_free(&b);
	buf_free(&names_list);
}

static void
write_domains(struct cdbout *o)
{
	struct file *fl = &files[F_DOMAINS];
	struct buf b = BUF_INIT, dl = BUF_INIT, pl = BUF_INIT;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword == 2) {
			cdbout_blob_attrs(&b, &r->attrs, NULL);
			cdbout_putf(o, &b, "policy:%s", r->word[1]);
			cdbout_list_add(&pl, r->word[1]);
			continue;
		}
		cdbout_blob_attrs(&b, &r->attrs, "type");
		cdbout_blob_add(&b, "type", attrs_get(&r->attrs, "type") ?
		    attrs_get(&r->attrs, "type") : "authoritative");
		cdbout_putf(o, &b, "domain:%s", r->word[0]);
		cdbout_list_add(&dl, r->word[0]);
	}
	cdbout_putf(o, &dl, "domains");
	cdbout_putf(o, &pl, "policies");
	buf_free(&b);
	buf_free(&dl);
	buf_free(&pl);
}

/* A recipient's record: its attributes, with addresses= the whole list
 * (given and generated, lower case) and primary= its reply address. */
static void
write_entry(struct cdbout *o, const struct policy_entry *e, struct buf *b)
{
	struct buf list = BUF_INIT, pair = BUF_INIT;
	size_t i;

	cdbout_blob_attrs(b, &e->rec->attrs, "addresses");
	for (i = 0; i < e->naddr; i++)
		if (buf_printf(&list, "%s%s", i ? "," : "", e->addr[i]) < 0)
			die(EXIT_TEMP, ENOMEM, "out of memory");
	if (e->naddr > 0)
		cdbout_blob_add(b, "addresses", list.data);
	if (e->primary != NULL)
		cdbout_blob_add(b, "primary", e->primary);
	if (e->rewrite_from >= 0)
		cdbout_blob_add(b, "rewrite-from", e->rewrite_from ? "yes" : "no");
	cdbout_putf(o, b, "%s:%s", kinds[e->kind].name, e->name);
	cdbout_list_add(&pair, kinds[e->kind].name);
	cdbout_list_add(&pair, e->name);
	for (i = 0; i < e->naddr; i++)
		cdbout_putf(o, &pair, "addr:%s", e->addr[i]);
	buf_free(&list);
	buf_free(&pair);
}

static void
write_directory(struct cdbout *o)
{
	struct buf b = BUF_INIT, lists[POLICY_NKINDS] = { BUF_INIT, BUF_INIT,
	    BUF_INIT, BUF_INIT };
	size_t i;
	int k;

	for (i = 0; i < recips.n; i++) {
		write_entry(o, &recips.v[i], &b);
		cdbout_list_add(&lists[recips.v[i].kind], recips.v[i].name);
	}
	for (k = 0; k < POLICY_NKINDS; k++) {
		cdbout_putf(o, &lists[k], "%s", kinds[k].plural);
		buf_free(&lists[k]);
	}
	buf_free(&b);
}

static void
write_filters(struct cdbout *o)
{
	struct file *fl = &files[F_FILTERS];
	size_t i;

	for (i = 0; i < fl->n; i++)
		cdbout_putf(o, NULL, "filter:%s", fl->rec[i].word[0]);
}

static void
write_one(int f)
{
	struct cdbout *o = &outs[nouts++];

	cdbout_start(o, dir, files[f].name,
	    files[f].mode ? files[f].mode : 0644);

	switch (f) {
	case F_SETTINGS: write_settings(o); break;
	case F_SERVERS: write_named(o, f, "server", "servers"); break;
	case F_DOMAINS: write_domains(o); break;
	case F_DIRECTORY: write_directory(o); break;
	case F_CONNECTORS: write_named(o, f, "connector", "connectors"); break;
	case F_FILTERS: write_filters(o); break;
	}
	cdbout_finish(o);
}

/* Every database is written aside first; only then are they renamed into
 * place, so a failure part way leaves every old one. */
static void
write_all(void)
{
	int f, i, dfd;

	atexit(out_cleanup);
	for (f = 0; f < NFILES; f++)
		if (files[f].is_wanted)
			write_one(f);
	if (nouts == 0)
		return;		/* nothing stale */
	for (i = 0; i < nouts; i++) {
		if (rename(outs[i].tmp, outs[i].path) < 0)
			die(EXIT_TEMP, errno, "unable to rename %s", outs[i].tmp);
		outs[i].tmp[0] = '\0';
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0 || fsync(dfd) < 0)
		die(EXIT_TEMP, errno, "unable to sync %s", dir);
	close(dfd);
}

/* ---- arguments ---- */

static int
file_index(const char *name)
{
	int f;

	for (f = 0; f < NFILES; f++)
		if (strcmp(files[f].name, name) == 0)
			return f;
	return -1;
}

/* Each SOURCE names a file in one folder: "directory", "cdb/directory"
 * or "directory.cdb" (make's target). */
static void
want(const char *arg)
{
	const char *slash = strrchr(arg, '/');
	char name[64], folder[PATH_MAX];
	size_t n;
	int f;

	snprintf(folder, sizeof folder, "%.*s", slash ? (int)(slash - arg) : 1,
	    slash ? arg : ".");
	if (slash == arg)
		snprintf(folder, sizeof folder, "/");
	if (dir[0] != '\0' && strcmp(dir, folder) != 0)
		die(EXIT_PERM, 0, "sources in two folders: %s and %s", dir, folder);
	snprintf(dir, sizeof dir, "%s", folder);
	n = strlen(slash ? slash + 1 : arg);
	snprintf(name, sizeof name, "%s", slash ? slash + 1 : arg);
	if (n > 4 && n < sizeof name && strcmp(name + n - 4, ".cdb") == 0)
		name[n - 4] = '\0';
	if ((f = file_index(name)) < 0)
		die(EXIT_PERM, 0, "unknown source %s (settings, servers, domains, "
		    "directory, connectors or filters)", arg);
	files[f].is_wanted = 1;
}

/* Without arguments: every source newer than its database, or without one. */
static void
want_stale(void)
{
	char path[PATH_MAX + 8];
	struct stat src, db;
	int f;

	if (root_path(dir, sizeof dir, "cdb") < 0)
		die(EXIT_PERM, ENAMETOOLONG, "root path");
	for (f = 0; f < NFILES; f++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[f].name);
		if (stat(path, &src) < 0)
			continue;
		snprintf(path, sizeof path, "%s/%s.cdb", dir, files[f].name);
		if (stat(path, &db) < 0 || db.st_mtim.tv_sec < src.st_mtim.tv_sec ||
		    (db.st_mtim.tv_sec == src.st_mtim.tv_sec &&
		    db.st_mtim.tv_nsec < src.st_mtim.tv_nsec))
			files[f].is_wanted = 1;
	}
	/* what each source feeds, as FEEDS_ in cdb/Makefile */
	if (files[F_SETTINGS].is_wanted || files[F_SERVERS].is_wanted ||
	    files[F_DIRECTORY].is_wanted)
		files[F_DOMAINS].is_wanted = 1;
	if (files[F_DOMAINS].is_wanted)
		files[F_DIRECTORY].is_wanted = 1;
	if (files[F_SERVERS].is_wanted)
		files[F_CONNECTORS].is_wanted = 1;
}

static void
check_all(void)
{
	int f;

	for (f = 0; f < NFILES; f++)
		load(f);
	check_settings();
	check_servers();
	check_domains();
	check_directory();
	check_connectors();
	check_filters();
	apply_policies();
	check_policy_hosts();
	check_connector_sources();
}

int
main(int argc, char **argv)
{
	int i = 1, is_check_only = 0;

	log_init("config");
	if (argc > 1 && strcmp(argv[1], "-n") == 0) {
		is_check_only = 1;
		i++;
	}
	if (i < argc && argv[i][0] == '-')
		die(EXIT_PERM, 0, "usage: bh-config [-n] [SOURCE...]");
	for (; i < argc; i++)
		want(argv[i]);
	if (dir[0] == '\0')
		want_stale();
	check_all();
	if (nerrors > 0) {
		errors_print();
		return EXIT_PERM;
	}
	if (!is_check_only)
		write_all();
	return EXIT_DONE;
}
