/*
 * valuetype: the checks of single configuration values for bh-config
 * (see valuetype.h). Each predicate answers 1 or 0; none allocates.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "addr.h"
#include "conf.h"
#include "connector.h"
#include "valuetype.h"

int
valuetype_is_int(const char *s)
{
	size_t n = strspn(s, "0123456789");

	return n > 0 && n <= 9 && s[n] == '\0';
}

static int
is_port(const char *s)
{
	return valuetype_is_int(s) && atoi(s) >= 1 && atoi(s) <= 65535;
}

int
valuetype_is_name(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-");

	return n > 0 && n < 64 && s[n] == '\0';
}

/* A host name: dot-separated labels of letters, digits, '-' and '_'. */
int
valuetype_is_host(const char *s)
{
	size_t len = strlen(s), label;

	if (len == 0 || len > 253)
		return 0;
	while (*s != '\0') {
		label = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789-_");
		if (label == 0 || label > 63 || s[0] == '-' || s[label - 1] == '-')
			return 0;
		s += label;
		if (*s == '.' && s[1] != '\0')
			s++;
		else if (*s != '\0')
			return 0;
	}
	return 1;
}

/* An address as a recipient or sender is written: local@domain, no
 * quotes, no source route. */
int
valuetype_is_addr(const char *s)
{
	char out[ADDR_MAX];

	return strchr(s, '@') != NULL && addr_parse(s, out, sizeof out, 0) == 0 &&
	    strcmp(out, s) == 0;
}

static int
is_ip(const char *s)
{
	unsigned char bin[16];

	return inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1;
}

/* Splits "[IP]:PORT", "IPv4:PORT", "HOST:PORT" into host and port (port
 * NULL when there is none). 0, or -1 when it does not fit. */
static int
split_hostport(const char *s, char *host, size_t cap, const char **port)
{
	const char *colon;
	size_t n;

	*port = NULL;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		n = end - s - 1;
		*port = end[1] == ':' ? end + 2 : NULL;
		s++;
	} else if ((colon = strchr(s, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
		n = colon - s;
		*port = colon + 1;
	} else
		n = strlen(s);
	if (n >= cap)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	return 0;
}

static int
is_listen(const char *s)
{
	char host[64];
	const char *port;

	return split_hostport(s, host, sizeof host, &port) == 0 && port != NULL &&
	    is_ip(host) && is_port(port);
}

static int
is_dns(const char *s)
{
	char host[64];
	const char *port;

	if (is_ip(s))
		return 1;
	return split_hostport(s, host, sizeof host, &port) == 0 && is_ip(host) &&
	    (port == NULL || is_port(port));
}

/* A next hop: [IP]:PORT, [IP], or HOST[:PORT]. */
static int
is_hop(const char *s)
{
	char host[256];
	const char *port;

	if (split_hostport(s, host, sizeof host, &port) < 0 ||
	    (port != NULL && !is_port(port)))
		return 0;
	return s[0] == '[' ? is_ip(host) : valuetype_is_host(host);
}

static int
is_cidr(const char *s)
{
	char ip[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned char bin[16];
	int bits;

	if (n >= sizeof ip)
		return 0;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, bin) == 1)
		bits = 32;
	else if (inet_pton(AF_INET6, ip, bin) == 1)
		bits = 128;
	else
		return 0;
	return slash == NULL || (valuetype_is_int(slash + 1) && atoi(slash + 1) <= bits);
}

/* An access entry as bh-smtpd reads it: what begins with a digit or holds
 * a ':' is an address (IP or IP/BITS), anything else a domain name
 * (".DOMAIN" too) matched against the client's confirmed reverse name. A
 * domain beginning with a digit would be read as an address: refused. */
static int
is_access(const char *s)
{
	if (isdigit((unsigned char)s[0]) || strchr(s, ':') != NULL)
		return is_cidr(s);
	return valuetype_is_host(s[0] == '.' ? s + 1 : s);
}

/* A connector's rate: N messages a minute, written N or N/min. */
static int
is_rate(const char *s)
{
	char n[16];
	size_t len = strspn(s, "0123456789");

	if (len == 0 || len >= sizeof n)
		return 0;
	memcpy(n, s, len);
	n[len] = '\0';
	return valuetype_is_int(n) && (s[len] == '\0' || strcmp(s + len, "/min") == 0);
}

static int
is_space(const char *s)
{
	if (strcmp(s, "*") == 0)
		return 1;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	return valuetype_is_host(s);
}

static int
is_hash(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789./$=,-");

	return s[0] == '$' && strchr(s + 1, '$') != NULL && s[n] == '\0' && n < 512;
}

/* The schedule syntax is the one bh-route and bh-remote read. */
static int
is_schedule(const char *s)
{
	time_t opens;

	return connector_schedule_open(s, time(NULL), &opens) >= 0;
}

static int
is_level(const char *s)
{
	static const char *levels[] = { "none", "min", "medium", "max" };
	const char *eq = strchr(s, '=');
	char cat[64];
	size_t i;

	if (eq != NULL) {
		if ((size_t)(eq - s) >= sizeof cat)
			return 0;
		memcpy(cat, s, eq - s);
		cat[eq - s] = '\0';
		if (!valuetype_is_name(cat) && strcmp(cat, "*") != 0)
			return 0;
		s = eq + 1;
	}
	for (i = 0; i < 4; i++)
		if (strcmp(s, levels[i]) == 0)
			return 1;
	return 0;
}

int
valuetype_is_filter(const char *s)
{
	const char *eq;

	if (strcmp(s, "all") == 0)
		return 1;
	if (strncmp(s, "group:", 6) == 0)
		return valuetype_is_name(s + 6);
	if (strncmp(s, "attr:", 5) != 0 || (eq = strchr(s, '=')) == NULL)
		return 0;
	return eq > s + 5;
}

/* An address pattern: local@domain where the local part holds %u %g %s
 * %i %% and the characters of an address; the domain is literal. */
int
valuetype_is_pattern(const char *s)
{
	const char *at = strrchr(s, '@'), *p;

	if (at == NULL || at == s || !valuetype_is_host(at + 1))
		return 0;
	for (p = s; p < at; p++) {
		if (*p == '%') {
			if (p[1] == '\0' || strchr("ugsi%", p[1]) == NULL)
				return 0;
			p++;
		} else if (!isalnum((unsigned char)*p) &&
		    strchr(".-_+", *p) == NULL)
			return 0;
	}
	return 1;
}

/* N or Nd: tracking-days. */
static int
is_days(const char *s)
{
	size_t n = strlen(s);

	return valuetype_is_int(s) || (n > 1 && n < 10 && s[n - 1] == 'd' &&
	    strspn(s, "0123456789") == n - 1);
}

/* @DOMAIN: a sender's whole domain. */
static int
is_at_domain(const char *s)
{
	return s[0] == '@' && valuetype_is_host(s + 1);
}

static int
is_choice(const char *s, const char *choices)
{
	size_t n = strlen(s);
	const char *p = choices;

	while (n > 0 && (p = strstr(p, s)) != NULL) {
		if ((p == choices || p[-1] == '|') && (p[n] == '|' || p[n] == '\0'))
			return 1;
		p++;
	}
	return 0;
}

int
valuetype_check(enum valuetype kind, const char *choices, const char *s,
    const char **why)
{
	switch (kind) {
	case VT_STR: return 1;
	case VT_PATH: *why = "not a path"; return *s != '\0';
	case VT_INT: *why = "not a number"; return valuetype_is_int(s);
	case VT_DAYS: *why = "not a number of days (N or Nd)";
		return is_days(s);
	case VT_PORT: *why = "not a port (1-65535)"; return is_port(s);
	case VT_SIZE: *why = "not a size (N, NK, NM or NG)";
		return conf_parse_size(s) >= 0;
	case VT_TIME: *why = "not a time (N, Ns, Nm, Nh or Nd)";
		return conf_parse_time(s) >= 0;
	case VT_BOOL: *why = "not yes or no"; return conf_parse_bool(s) >= 0;
	case VT_ENUM: *why = choices; return is_choice(s, choices);
	case VT_ADDR: *why = "not an address (local@domain)";
		return valuetype_is_addr(s);
	case VT_HOST: *why = "not a host name"; return valuetype_is_host(s);
	case VT_LISTEN: *why = "not IP:PORT"; return is_listen(s);
	case VT_DNS: *why = "not IP or IP:PORT"; return is_dns(s);
	case VT_HOP: *why = "not [IP]:PORT, [IP] or HOST[:PORT]"; return is_hop(s);
	case VT_CIDR: *why = "not IP or IP/BITS"; return is_cidr(s);
	case VT_ACCESS: *why = "not IP, IP/BITS or DOMAIN (a name beginning "
		"with a digit reads as an address)"; return is_access(s);
	case VT_RATE: *why = "not a rate (N or N/min)"; return is_rate(s);
	case VT_SPACE: *why = "not *, *.DOMAIN or DOMAIN"; return is_space(s);
	case VT_SENDER: *why = "not @DOMAIN, an address or a directory name";
		return is_at_domain(s) || valuetype_is_addr(s) ||
		    valuetype_is_name(s);
	case VT_CSENDER: *why = "not <>, @DOMAIN, DOMAIN or an address";
		return strcmp(s, "<>") == 0 || is_at_domain(s) ||
		    valuetype_is_host(s) || valuetype_is_addr(s);
	case VT_REF: *why = "not an address or a directory name";
		return valuetype_is_addr(s) || valuetype_is_name(s);
	case VT_NAME: *why = "not a name (letters, digits, '.', '_', '-')";
		return valuetype_is_name(s);
	case VT_HASH: *why = "not a crypt hash (make one with bh-passwd)";
		return is_hash(s);
	case VT_USERPASS: *why = "not USER:PASSWORD";
		return strchr(s, ':') != NULL && s[0] != ':';
	case VT_SCHEDULE: *why = "not always, never or a list of "
		"[DAYS ]HH:MM-HH:MM"; return is_schedule(s);
	case VT_LOGLEVEL: *why = "not LEVEL or CATEGORY=LEVEL (none, min, "
		"medium, max)"; return is_level(s);
	case VT_FILTER: *why = "not all, group:NAME or attr:NAME=VALUE";
		return valuetype_is_filter(s);
	case VT_PATTERN: *why = "not an address pattern (%u, %g, %s, %i "
		"in the local part, then @domain)"; return valuetype_is_pattern(s);
	}
	return 0;
}
