/*
 * config_directory: bh-config's checks of the directory source, and the
 * recipient policies applied to it (see config_directory.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_directory.h"
#include "config_source.h"
#include "log.h"
#include "source.h"
#include "strtable.h"
#include "valuetype.h"

/* ---- the directory: recipients, their names and addresses ---- */

const struct config_kind config_kinds[POLICY_NKINDS] = {
	{ "mailbox", "mailboxes", confspec_mailbox },
	{ "contact", "contacts", confspec_contact },
	{ "group", "groups", confspec_group },
	{ "alias", "aliases", confspec_alias },
};

struct policy_dir config_recips;

static int
entry_kind(const char *word)
{
	int k;

	for (k = 0; k < POLICY_NKINDS; k++)
		if (strcmp(word, config_kinds[k].name) == 0)
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
		config_error_at(CONFIG_DIRECTORY, r->line, "unknown kind "
		    "\"%s\" (mailbox, contact, group or alias)",
		    r->nword ? r->word[0] : "");
		return;
	}
	if (!config_named_record(CONFIG_DIRECTORY, r, 2,
	    "KIND NAME name=value ..."))
		return;
	snprintf(what, sizeof what, "%s %s", r->word[0], r->word[1]);
	config_check_attrs(CONFIG_DIRECTORY, r, config_kinds[kind].spec, what);
	e = &config_recips.v[config_recips.n];
	memset(e, 0, sizeof *e);
	e->rec = r;
	e->kind = kind;
	e->name = r->word[1];
	e->rewrite_from = -1;
	if ((earlier = strtable_put(&config_recips.names, e->name, e)) !=
	    NULL) {
		config_error_at(CONFIG_DIRECTORY, r->line, "name %s already "
		    "used by %s %s at line %u", e->name,
		    config_kinds[earlier->kind].name, e->name,
		    earlier->rec->line);
		return;
	}
	config_recips.n++;
}

/* Gives address key (lower case, owned) to e, refusing an address that
 * names another recipient (5.1.4: it must name exactly one). */
static int
claim(struct policy_entry *e, char *key, unsigned line)
{
	struct policy_entry *owner = strtable_put(&config_recips.addrs, key, e);

	if (owner == NULL) {
		policy_entry_add_addr(e, key);
		return 1;
	}
	if (owner == e)
		config_error_at(CONFIG_DIRECTORY, line,
		    "%s %s: address %s listed twice",
		    config_kinds[e->kind].name, e->name, key);
	else
		config_error_at(CONFIG_DIRECTORY, line, "%s %s: address %s "
		    "already belongs to %s %s (line %u)",
		    config_kinds[e->kind].name, e->name, key,
		    config_kinds[owner->kind].name, owner->name,
		    owner->rec->line);
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
			config_lower(item);
			claim(e, config_xstrdup(item), line);
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
		    strtable_get(&config_recips.names, item) == NULL)
			config_error_at(CONFIG_DIRECTORY,
			    source_attr_line(e->rec, attr), "%s %s: "
			    "%s: %s is not an address or a directory name",
			    config_kinds[e->kind].name, e->name, attr, item);
}

void
config_check_directory(void)
{
	struct config_file *fl = &config_files[CONFIG_DIRECTORY];
	size_t i;

	config_recips.v = config_xrealloc(NULL, fl->n + 1,
	    sizeof *config_recips.v);
	for (i = 0; i < fl->n; i++)
		check_entry(&fl->rec[i]);
	for (i = 0; i < config_recips.n; i++)
		claim_given(&config_recips.v[i]);
	for (i = 0; i < config_recips.n; i++) {
		check_refs(&config_recips.v[i], "target");
		check_refs(&config_recips.v[i], "members");
		check_refs(&config_recips.v[i], "accept-from");
		check_refs(&config_recips.v[i], "reject-from");
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
	config_error_at(CONFIG_DOMAINS, line, "%s", text);
	free(text);
}

void
config_apply_policies(void)
{
	struct config_file *fl = &config_files[CONFIG_DOMAINS];
	struct source_record **list = config_xrealloc(NULL, fl->n + 1,
	    sizeof *list);
	size_t i, n = 0;

	for (i = 0; i < fl->n; i++)
		if (fl->rec[i].nword == 2 && strcmp(fl->rec[i].word[0], "policy") == 0)
			list[n++] = &fl->rec[i];
	config_recips.error = policy_error;
	policy_apply_all(&config_recips, list, n);
	free(list);
}
