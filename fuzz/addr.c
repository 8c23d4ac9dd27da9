/*
 * fuzz-addr: RFC 5321 paths as they stand between '<' and '>' (source
 * routes, quoted local parts, address literals [IP] and [IPv6:...]),
 * and the helpers that take a parsed mailbox apart. Checks: a parsed
 * mailbox fits, parses again to itself (the parser's output is always
 * valid input), and splits into a local part and a domain that fit.
 * Input: PATH, optionally "\n" and a ZONE for addr_domain_in.
 */
#include <string.h>

#include "addr.h"
#include "fuzz.h"

static void
fuzz_mailbox(const char *mailbox, const char *zone)
{
	char again[ADDR_MAX], key[ADDR_MAX], local[ADDR_MAX];
	const char *domain = addr_domain(mailbox);

	FUZZ_CHECK(strlen(mailbox) < ADDR_MAX);
	FUZZ_CHECK(addr_parse(mailbox, again, sizeof again,
	    ADDR_ALLOW_POSTMASTER) == 0);
	FUZZ_CHECK(strcmp(mailbox, again) == 0);
	FUZZ_CHECK(addr_key(mailbox, key, sizeof key) == 0);
	FUZZ_CHECK(strcasecmp(key, mailbox) == 0);
	FUZZ_CHECK(addr_local(mailbox, local, sizeof local) == 0);
	FUZZ_CHECK(*domain == '\0' ||
	    (domain > mailbox && domain < mailbox + strlen(mailbox)));
	(void)addr_is_literal(mailbox);
	(void)addr_has_route(mailbox);
	(void)addr_domain_in(domain, zone);
	(void)addr_domain_in(zone, domain);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rest;
	size_t nrest;
	char *path = fuzz_split(data, size, '\n', &rest, &nrest);
	char *zone = fuzz_string(rest, nrest);
	char out[ADDR_MAX], small[16];
	int flags;

	for (flags = 0; flags <= ADDR_ALLOW_POSTMASTER; flags++)
		if (addr_parse(path, out, sizeof out, flags) == 0)
			fuzz_mailbox(out, zone);
	/* a short buffer must be refused, never overrun */
	if (addr_parse(path, small, sizeof small, ADDR_ALLOW_POSTMASTER) == 0)
		FUZZ_CHECK(strlen(small) < sizeof small);
	(void)addr_has_route(path);
	(void)addr_is_literal(path);
	(void)addr_domain_in(path, zone);
	free(path);
	free(zone);
	return 0;
}
