#ifndef BH_ADDR_H
#define BH_ADDR_H
/*
 * addr: mail addresses (RFC 5321 mailboxes, stored without angle brackets).
 */
#include <stddef.h>

enum {
	ADDR_MAX = 256,		/* a whole path, RFC 5321 §4.5.3.1.3 */
	ADDR_LOCAL_MAX = 64,
	ADDR_DOMAIN_MAX = 255,
	ADDR_ALLOW_POSTMASTER = 1,	/* bare "postmaster" (RCPT only) */
	ADDR_UTF8 = 2,			/* UTF-8 allowed (RFC 6531 SMTPUTF8) */
};

/* The domain part (after the last '@'), or "" when there is none. */
const char *addr_domain(const char *addr);

/* Copies addr lower-cased into out (the form used as a lookup key).
 * 0, or -1 when it does not fit. */
int addr_key(const char *addr, char *out, size_t cap);

/* Copies the local part (before the last '@') into out. 0 or -1. */
int addr_local(const char *addr, char *out, size_t cap);

/* Parses the inside of an RFC 5321 path (what stands between '<' and '>'):
 * [source-route ":"] local-part "@" domain, the domain a name or an address
 * literal ([192.0.2.1], [IPv6:...]). The source route is dropped (§C), a
 * quoted local part that needs no quotes is unquoted. The mailbox goes to
 * out. 0, or -1 when the syntax is wrong or it is too long. With
 * ADDR_ALLOW_POSTMASTER a bare "postmaster" (any case) is accepted as is;
 * with ADDR_UTF8 local parts and domain labels may hold UTF-8 (valid,
 * shortest form), as SMTPUTF8 allows. */
int addr_parse(const char *in, char *out, size_t cap, int flags);

/* 1 when s is all ASCII. */
int addr_is_ascii(const char *s);

/* 1 when the domain is an address literal. */
int addr_is_literal(const char *addr);

/* 1 when the local part carries routing of the old relay tricks: '%'
 * (percent hack), '!' (UUCP bang path) or '@' (inside quotes). A server
 * that does not relay refuses these even for its own domains. */
int addr_has_route(const char *addr);

/* 1 when domain equals zone or lies below it (case-insensitive). */
int addr_domain_in(const char *domain, const char *zone);

#endif
