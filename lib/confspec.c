/*
 * confspec: the attributes each configuration source may hold (see
 * confspec.h), and the check of one value against its attribute.
 */
#include <string.h>

#include "confspec.h"
#include "source.h"

#define ONE 0
#define LIST 1
#define REQUIRED 1

const struct confspec confspec_settings[] = {
	{ "hostname", VT_HOST, ONE, 0, NULL },
	{ "postmaster", VT_ADDR, ONE, 0, NULL },
	{ "default-domain", VT_HOST, ONE, 0, NULL },
	{ "ndr-copy", VT_ADDR, LIST, 0, NULL },
	{ "max-hops", VT_INT, ONE, 0, NULL },
	{ "retry", VT_TIME, LIST, 0, NULL },
	{ "delay-notify", VT_TIME, ONE, 0, NULL },
	{ "expire", VT_TIME, ONE, 0, NULL },
	{ "max-remote", VT_INT, ONE, 0, NULL },
	{ "max-remote-per-domain", VT_INT, ONE, 0, NULL },
	{ "timeout", VT_TIME, ONE, 0, NULL },
	{ "remote-port", VT_PORT, ONE, 0, NULL },
	{ "remote-idle", VT_TIME, ONE, 0, NULL },
	{ "dns", VT_DNS, LIST, 0, NULL },
	{ "smarthost", VT_HOP, LIST, 0, NULL },
	{ "direct-first", VT_BOOL, ONE, 0, NULL },
	{ "unresolved-host", VT_HOP, LIST, 0, NULL },
	{ "tracking", VT_BOOL, ONE, 0, NULL },
	{ "tracking-subjects", VT_BOOL, ONE, 0, NULL },
	{ "tracking-days", VT_DAYS, ONE, 0, NULL },
	{ "log-level", VT_LOGLEVEL, LIST, 0, NULL },
	{ "hooks", VT_PATH, LIST, 0, NULL },
	{ "hook-timeout", VT_TIME, ONE, 0, NULL },
	{ "max-inject-size", VT_SIZE, ONE, 0, NULL },
	{ "ndr-return-max", VT_SIZE, ONE, 0, NULL },
	{ "unreachable-after", VT_TIME, ONE, 0, NULL },
	{ "user", VT_NAME, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_server[] = {
	{ "listen", VT_LISTEN, LIST, REQUIRED, NULL },
	{ "hostname", VT_HOST, ONE, 0, NULL },
	{ "banner", VT_STR, ONE, 0, NULL },
	{ "auth", VT_ENUM, LIST, 0, "anonymous|plain|login" },
	{ "tls", VT_ENUM, ONE, 0, "off|optional|required" },
	{ "cert", VT_PATH, ONE, 0, NULL },
	{ "key", VT_PATH, ONE, 0, NULL },
	{ "relay-from", VT_ACCESS, LIST, 0, NULL },
	{ "relay-authenticated", VT_BOOL, ONE, 0, NULL },
	{ "allow-from", VT_ACCESS, LIST, 0, NULL },
	{ "deny-from", VT_ACCESS, LIST, 0, NULL },
	{ "filter", VT_BOOL, ONE, 0, NULL },
	{ "anti-spoof", VT_BOOL, ONE, 0, NULL },
	{ "max-size", VT_SIZE, ONE, 0, NULL },
	{ "max-session-size", VT_SIZE, ONE, 0, NULL },
	{ "max-messages", VT_INT, ONE, 0, NULL },
	{ "max-recipients", VT_INT, ONE, 0, NULL },
	{ "max-connections", VT_INT, ONE, 0, NULL },
	{ "max-connections-per-ip", VT_INT, ONE, 0, NULL },
	{ "max-hops", VT_INT, ONE, 0, NULL },
	{ "max-errors", VT_INT, ONE, 0, NULL },
	{ "timeout", VT_TIME, ONE, 0, NULL },
	{ "data-timeout", VT_TIME, ONE, 0, NULL },
	{ "hook-timeout", VT_TIME, ONE, 0, NULL },
	{ "plaintext-auth", VT_BOOL, ONE, 0, NULL },
	{ "vrfy", VT_BOOL, ONE, 0, NULL },
	{ "etrn", VT_BOOL, ONE, 0, NULL },
	{ "atrn", VT_BOOL, ONE, 0, NULL },
	{ "hooks", VT_PATH, LIST, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_domain[] = {
	{ "type", VT_ENUM, ONE, 0, "authoritative|shared" },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_policy[] = {
	{ "filter", VT_FILTER, ONE, 0, NULL },
	{ "addresses", VT_PATTERN, LIST, REQUIRED, NULL },
	{ "priority", VT_INT, ONE, 0, NULL },
	{ "primary", VT_PATTERN, ONE, 0, NULL },
	{ "rewrite-from", VT_BOOL, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_mailbox[] = {
	{ "addresses", VT_ADDR, LIST, 0, NULL },
	{ "name", VT_STR, ONE, 0, NULL },
	{ "given", VT_STR, ONE, 0, NULL },
	{ "surname", VT_STR, ONE, 0, NULL },
	{ "department", VT_STR, ONE, 0, NULL },
	{ "company", VT_STR, ONE, 0, NULL },
	{ "office", VT_STR, ONE, 0, NULL },
	{ "maildir", VT_PATH, ONE, 0, NULL },
	{ "quota", VT_SIZE, ONE, 0, NULL },
	{ "password", VT_HASH, ONE, 0, NULL },
	{ "accept-from", VT_SENDER, LIST, 0, NULL },
	{ "reject-from", VT_SENDER, LIST, 0, NULL },
	{ "max-size", VT_SIZE, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_contact[] = {
	{ "addresses", VT_ADDR, LIST, 0, NULL },
	{ "name", VT_STR, ONE, 0, NULL },
	{ "target", VT_REF, ONE, REQUIRED, NULL },
	{ "accept-from", VT_SENDER, LIST, 0, NULL },
	{ "reject-from", VT_SENDER, LIST, 0, NULL },
	{ "max-size", VT_SIZE, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_group[] = {
	{ "addresses", VT_ADDR, LIST, 0, NULL },
	{ "name", VT_STR, ONE, 0, NULL },
	{ "members", VT_REF, LIST, 0, NULL },
	{ "accept-from", VT_SENDER, LIST, 0, NULL },
	{ "reject-from", VT_SENDER, LIST, 0, NULL },
	{ "max-size", VT_SIZE, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_alias[] = {
	{ "addresses", VT_ADDR, LIST, REQUIRED, NULL },
	{ "target", VT_REF, ONE, REQUIRED, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec confspec_connector[] = {
	{ "address-space", VT_SPACE, LIST, REQUIRED, NULL },
	{ "cost", VT_INT, ONE, 0, NULL },
	{ "route", VT_ENUM, ONE, 0, "dns" },
	{ "smarthost", VT_HOP, LIST, 0, NULL },
	{ "relay", VT_BOOL, ONE, 0, NULL },
	{ "helo", VT_BOOL, ONE, 0, NULL },
	{ "tls", VT_ENUM, ONE, 0, "off|optional|required" },
	{ "auth", VT_USERPASS, ONE, 0, NULL },
	{ "source", VT_NAME, LIST, 0, NULL },
	{ "accept-senders", VT_CSENDER, LIST, 0, NULL },
	{ "reject-senders", VT_CSENDER, LIST, 0, NULL },
	{ "rate", VT_RATE, ONE, 0, NULL },
	{ "tls-ca", VT_PATH, ONE, 0, NULL },
	{ "priorities", VT_ENUM, LIST, 0, "low|normal|high" },
	{ "max-size", VT_SIZE, ONE, 0, NULL },
	{ "system", VT_BOOL, ONE, 0, NULL },
	{ "schedule", VT_SCHEDULE, ONE, 0, NULL },
	{ "oversize", VT_SIZE, ONE, 0, NULL },
	{ "oversize-schedule", VT_SCHEDULE, ONE, 0, NULL },
	{ "hold", VT_BOOL, ONE, 0, NULL },
	{ "trigger-accounts", VT_SENDER, LIST, 0, NULL },
	{ "etrn-request", VT_STR, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

const struct confspec *
confspec_find(const struct confspec *spec, const char *name)
{
	for (; spec->name != NULL; spec++)
		if (strcmp(spec->name, name) == 0)
			return spec;
	return NULL;
}

int
confspec_check(const struct confspec *sp, const char *value,
    const char **item, const char **why)
{
	static char one[SOURCE_LINE_MAX + 1];
	const char *p = value;

	*item = value;
	*why = "";
	if (!sp->is_list)
		return valuetype_check(sp->kind, sp->choices, value, why) ? 0 : -1;
	while (source_item(&p, one, sizeof one) == 1) {
		*item = one;
		if (one[0] == '\0') {
			*why = NULL;
			return -1;
		}
		if (!valuetype_check(sp->kind, sp->choices, one, why))
			return -1;
	}
	return 0;
}
