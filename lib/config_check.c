/*
 * config_check: bh-config's checks of settings, servers, domains,
 * connectors and filters, and of what spans files (see config_check.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_check.h"
#include "config_source.h"
#include "source.h"
#include "valuetype.h"

struct strtable config_settings_seen;
static const char *hostname_setting;

void
config_check_settings(void)
{
	struct config_file *fl = &config_files[CONFIG_SETTINGS];
	const struct confspec *sp;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword != 2) {
			config_error_at(CONFIG_SETTINGS, r->line, "expected "
			    "KEY VALUE (quote a value with spaces)");
			continue;
		}
		if ((sp = confspec_find(confspec_settings, r->word[0])) ==
		    NULL) {
			config_error_at(CONFIG_SETTINGS, r->line,
			    "unknown setting %s", r->word[0]);
			continue;
		}
		/* a later line overrides an earlier one: settings >> works */
		if (strtable_put(&config_settings_seen, r->word[0], r) != NULL)
			strtable_slot(&config_settings_seen,
			    r->word[0])->value = r;
		config_check_value(CONFIG_SETTINGS, r->line, NULL, sp,
		    r->word[1]);
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
		config_error_at(CONFIG_SERVERS, r->line,
		    "%s: cert= and key= go together", what);
	else if (tls != NULL && (strcmp(tls, "optional") == 0 ||
	    strcmp(tls, "required") == 0) && !has_cert)
		config_error_at(CONFIG_SERVERS, source_attr_line(r, "tls"),
		    "%s: tls=%s needs cert= and key=", what, tls);
}

void
config_check_servers(void)
{
	struct config_file *fl = &config_files[CONFIG_SERVERS];
	char what[128];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (!config_named_record(CONFIG_SERVERS, r, 1,
		    "NAME name=value ..."))
			continue;
		snprintf(what, sizeof what, "server %s", r->word[0]);
		if (!config_unique(CONFIG_SERVERS, &servers, r->word[0], r,
		    "server"))
			continue;
		config_check_attrs(CONFIG_SERVERS, r, confspec_server, what);
		check_server_tls(r, what);
	}
}

static struct strtable domains, policies;

static void
check_domain(struct source_record *r)
{
	char what[300];

	if (r->nword != 1) {
		config_error_at(CONFIG_DOMAINS, r->line, "expected DOMAIN "
		    "type=... or policy NAME ...");
		return;
	}
	if (!valuetype_is_host(r->word[0])) {
		config_error_at(CONFIG_DOMAINS, r->line, "bad domain \"%s\"",
		    r->word[0]);
		return;
	}
	config_lower(r->word[0]);
	if (!config_unique(CONFIG_DOMAINS, &domains, r->word[0], r, "domain"))
		return;
	snprintf(what, sizeof what, "domain %s", r->word[0]);
	config_check_attrs(CONFIG_DOMAINS, r, confspec_domain, what);
}

void
config_check_domains(void)
{
	struct config_file *fl = &config_files[CONFIG_DOMAINS];
	char what[128];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword == 0 || strcmp(r->word[0], "policy") != 0) {
			check_domain(r);
			continue;
		}
		if (!config_named_record(CONFIG_DOMAINS, r, 2,
		    "policy NAME name=value ..."))
			continue;
		if (!config_unique(CONFIG_DOMAINS, &policies, r->word[1], r,
		    "policy"))
			continue;
		snprintf(what, sizeof what, "policy %s", r->word[1]);
		config_check_attrs(CONFIG_DOMAINS, r, confspec_policy, what);
	}
}

static struct strtable connectors;

void
config_check_connectors(void)
{
	struct config_file *fl = &config_files[CONFIG_CONNECTORS];
	char what[128];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (!config_named_record(CONFIG_CONNECTORS, r, 1,
		    "NAME name=value ..."))
			continue;
		if (!config_unique(CONFIG_CONNECTORS, &connectors, r->word[0],
		    r, "connector"))
			continue;
		snprintf(what, sizeof what, "connector %s", r->word[0]);
		config_check_attrs(CONFIG_CONNECTORS, r, confspec_connector,
		    what);
		if (attrs_get(&r->attrs, "route") != NULL &&
		    attrs_get(&r->attrs, "smarthost") != NULL)
			config_error_at(CONFIG_CONNECTORS,
			    source_attr_line(r, "smarthost"), "%s: route=dns "
			    "and smarthost= exclude each other", what);
	}
}

static struct strtable filters;

void
config_check_filters(void)
{
	struct config_file *fl = &config_files[CONFIG_FILTERS];
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword != 1) {
			config_error_at(CONFIG_FILTERS, r->line, "expected one "
			    "@DOMAIN or ADDRESS per line");
			continue;
		}
		if (!(r->word[0][0] == '@' && valuetype_is_host(r->word[0] + 1)) &&
		    !valuetype_is_addr(r->word[0])) {
			config_error_at(CONFIG_FILTERS, r->line,
			    "\"%s\" is not @DOMAIN or an address", r->word[0]);
			continue;
		}
		config_lower(r->word[0]);
		config_unique(CONFIG_FILTERS, &filters, r->word[0], r,
		    "filter");
	}
}

/* ---- checks that span files ---- */

/* The book's 5.4.8 trap: a policy domain equal to a server's FQDN makes
 * mail for the server's own name look like mail for the policy. */
static void
check_policy_host(const struct source_record *pr, const char *domain)
{
	static char machine[256];
	struct config_file *fl = &config_files[CONFIG_SERVERS];
	const char *fqdn;
	size_t i;

	if (hostname_setting == NULL && machine[0] == '\0' &&
	    gethostname(machine, sizeof machine - 1) < 0)
		machine[0] = '\0';
	if (strcasecmp(domain, hostname_setting ? hostname_setting : machine) == 0)
		config_error_at(CONFIG_DOMAINS,
		    source_attr_line(pr, "addresses"), "policy %s: domain "
		    "%s is the host name of %s (5.4.8: a policy domain must not "
		    "equal a server's FQDN)", pr->word[1], domain,
		    hostname_setting ? "settings hostname" : "this machine");
	for (i = 0; i < fl->n; i++)
		if ((fqdn = attrs_get(&fl->rec[i].attrs, "hostname")) != NULL &&
		    strcasecmp(domain, fqdn) == 0)
			config_error_at(CONFIG_DOMAINS,
			    source_attr_line(pr, "addresses"), "policy %s: "
			    "domain %s is the host name of server %s (5.4.8: "
			    "a policy domain must not equal a server's FQDN)",
			    pr->word[1], domain, fl->rec[i].word[0]);
}

void
config_check_policy_hosts(void)
{
	static char item[SOURCE_LINE_MAX + 1];
	struct config_file *fl = &config_files[CONFIG_DOMAINS];
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

void
config_check_connector_sources(void)
{
	static char item[SOURCE_LINE_MAX + 1];
	struct config_file *fl = &config_files[CONFIG_CONNECTORS];
	const char *p;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		p = attrs_get(&r->attrs, "source");
		while (p != NULL && source_item(&p, item, sizeof item) == 1)
			if (valuetype_is_name(item) && strtable_get(&servers, item) == NULL)
				config_error_at(CONFIG_CONNECTORS,
				    source_attr_line(r, "source"), "connector "
				    "%s: source: no server %s in servers",
				    r->nword ? r->word[0] : "", item);
	}
}
