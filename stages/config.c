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
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cdb.h>

#include "addr.h"
#include "buf.h"
#include "conf.h"
#include "connector.h"
#include "log.h"
#include "root.h"
#include "source.h"

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

/* ---- a string-keyed hash table (open addressing): duplicate names and
 * addresses are found in constant time, not by comparing every pair ---- */

struct slot {
	const char *key;
	void *value;
};

struct table {
	struct slot *v;
	size_t cap, n;
};

static size_t
table_hash(const char *s)
{
	size_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static struct slot *
table_slot(const struct table *t, const char *key)
{
	size_t i = table_hash(key) & (t->cap - 1);

	while (t->v[i].key != NULL && strcmp(t->v[i].key, key) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->v[i];
}

static void *
table_get(const struct table *t, const char *key)
{
	return t->cap == 0 ? NULL : table_slot(t, key)->value;
}

static void
table_grow(struct table *t)
{
	struct table bigger = { NULL, t->cap ? t->cap * 2 : 64, t->n };
	size_t i;

	if ((bigger.v = calloc(bigger.cap, sizeof *bigger.v)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	for (i = 0; i < t->cap; i++)
		if (t->v[i].key != NULL)
			*table_slot(&bigger, t->v[i].key) = t->v[i];
	free(t->v);
	*t = bigger;
}

/* Adds key (kept by reference) unless present: the earlier value, or NULL
 * when value was added. */
static void *
table_put(struct table *t, const char *key, void *value)
{
	struct slot *s;

	if (2 * (t->n + 1) > t->cap)
		table_grow(t);
	s = table_slot(t, key);
	if (s->key != NULL)
		return s->value;
	s->key = key;
	s->value = value;
	t->n++;
	return NULL;
}

/* ---- value types ---- */

enum kind { K_STR, K_INT, K_PORT, K_SIZE, K_TIME, K_BOOL, K_ENUM, K_ADDR,
    K_HOST, K_LISTEN, K_DNS, K_HOP, K_CIDR, K_SPACE, K_SENDER, K_CSENDER,
    K_REF,
    K_NAME, K_HASH, K_USERPASS, K_SCHEDULE, K_LOGLEVEL, K_FILTER,
    K_PATTERN, K_PATH, K_DAYS, K_ACCESS, K_RATE };

static int
is_int(const char *s)
{
	size_t n = strspn(s, "0123456789");

	return n > 0 && n <= 9 && s[n] == '\0';
}

static int
is_port(const char *s)
{
	return is_int(s) && atoi(s) >= 1 && atoi(s) <= 65535;
}

static int
is_name(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-");

	return n > 0 && n < 64 && s[n] == '\0';
}

/* A host name: dot-separated labels of letters, digits, '-' and '_'. */
static int
is_host(const char *s)
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
static int
is_addr(const char *s)
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
	return s[0] == '[' ? is_ip(host) : is_host(host);
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
	return slash == NULL || (is_int(slash + 1) && atoi(slash + 1) <= bits);
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
	return is_host(s[0] == '.' ? s + 1 : s);
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
	return is_int(n) && (s[len] == '\0' || strcmp(s + len, "/min") == 0);
}

static int
is_space(const char *s)
{
	if (strcmp(s, "*") == 0)
		return 1;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	return is_host(s);
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
		if (!is_name(cat) && strcmp(cat, "*") != 0)
			return 0;
		s = eq + 1;
	}
	for (i = 0; i < 4; i++)
		if (strcmp(s, levels[i]) == 0)
			return 1;
	return 0;
}

static int
is_filter(const char *s)
{
	const char *eq;

	if (strcmp(s, "all") == 0)
		return 1;
	if (strncmp(s, "group:", 6) == 0)
		return is_name(s + 6);
	if (strncmp(s, "attr:", 5) != 0 || (eq = strchr(s, '=')) == NULL)
		return 0;
	return eq > s + 5;
}

/* An address pattern: local@domain where the local part holds %u %g %s
 * %i %% and the characters of an address; the domain is literal. */
static int
is_pattern(const char *s)
{
	const char *at = strrchr(s, '@'), *p;

	if (at == NULL || at == s || !is_host(at + 1))
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

/* 1 when item is good for kind; else 0 and *why says what was expected. */
static int
check_item(enum kind kind, const char *choices, const char *s, const char **why)
{
	switch (kind) {
	case K_STR: return 1;
	case K_PATH: *why = "not a path"; return *s != '\0';
	case K_INT: *why = "not a number"; return is_int(s);
	case K_DAYS: *why = "not a number of days (N or Nd)";
		return is_int(s) || (strlen(s) > 1 && s[strlen(s) - 1] == 'd' &&
		    strspn(s, "0123456789") == strlen(s) - 1 && strlen(s) < 10);
	case K_PORT: *why = "not a port (1-65535)"; return is_port(s);
	case K_SIZE: *why = "not a size (N, NK, NM or NG)";
		return conf_parse_size(s) >= 0;
	case K_TIME: *why = "not a time (N, Ns, Nm, Nh or Nd)";
		return conf_parse_time(s) >= 0;
	case K_BOOL: *why = "not yes or no"; return conf_parse_bool(s) >= 0;
	case K_ENUM: *why = choices; return is_choice(s, choices);
	case K_ADDR: *why = "not an address (local@domain)"; return is_addr(s);
	case K_HOST: *why = "not a host name"; return is_host(s);
	case K_LISTEN: *why = "not IP:PORT"; return is_listen(s);
	case K_DNS: *why = "not IP or IP:PORT"; return is_dns(s);
	case K_HOP: *why = "not [IP]:PORT, [IP] or HOST[:PORT]"; return is_hop(s);
	case K_CIDR: *why = "not IP or IP/BITS"; return is_cidr(s);
	case K_ACCESS: *why = "not IP, IP/BITS or DOMAIN (a name beginning "
		"with a digit reads as an address)"; return is_access(s);
	case K_RATE: *why = "not a rate (N or N/min)"; return is_rate(s);
	case K_SPACE: *why = "not *, *.DOMAIN or DOMAIN"; return is_space(s);
	case K_SENDER: *why = "not @DOMAIN, an address or a directory name";
		return (s[0] == '@' && is_host(s + 1)) || is_addr(s) || is_name(s);
	case K_CSENDER: *why = "not <>, @DOMAIN, DOMAIN or an address";
		return strcmp(s, "<>") == 0 || (s[0] == '@' && is_host(s + 1)) ||
		    is_host(s) || is_addr(s);
	case K_REF: *why = "not an address or a directory name";
		return is_addr(s) || is_name(s);
	case K_NAME: *why = "not a name (letters, digits, '.', '_', '-')";
		return is_name(s);
	case K_HASH: *why = "not a crypt hash (make one with bh-passwd)";
		return is_hash(s);
	case K_USERPASS: *why = "not USER:PASSWORD";
		return strchr(s, ':') != NULL && s[0] != ':';
	case K_SCHEDULE: *why = "not always, never or a list of "
		"[DAYS ]HH:MM-HH:MM"; return is_schedule(s);
	case K_LOGLEVEL: *why = "not LEVEL or CATEGORY=LEVEL (none, min, "
		"medium, max)"; return is_level(s);
	case K_FILTER: *why = "not all, group:NAME or attr:NAME=VALUE";
		return is_filter(s);
	case K_PATTERN: *why = "not an address pattern (%u, %g, %s, %i "
		"in the local part, then @domain)"; return is_pattern(s);
	}
	return 0;
}

/* ---- what each file may hold ---- */

struct spec {
	const char *name;
	unsigned char kind, is_list, is_required;
	const char *choices;		/* K_ENUM: "a|b|c" */
};

#define ONE 0
#define LIST 1
#define REQUIRED 1

static const struct spec settings_spec[] = {
	{ "hostname", K_HOST, ONE, 0, NULL },
	{ "postmaster", K_ADDR, ONE, 0, NULL },
	{ "default-domain", K_HOST, ONE, 0, NULL },
	{ "ndr-copy", K_ADDR, LIST, 0, NULL },
	{ "max-hops", K_INT, ONE, 0, NULL },
	{ "retry", K_TIME, LIST, 0, NULL },
	{ "delay-notify", K_TIME, ONE, 0, NULL },
	{ "expire", K_TIME, ONE, 0, NULL },
	{ "max-remote", K_INT, ONE, 0, NULL },
	{ "max-remote-per-domain", K_INT, ONE, 0, NULL },
	{ "timeout", K_TIME, ONE, 0, NULL },
	{ "remote-port", K_PORT, ONE, 0, NULL },
	{ "dns", K_DNS, LIST, 0, NULL },
	{ "smarthost", K_HOP, LIST, 0, NULL },
	{ "direct-first", K_BOOL, ONE, 0, NULL },
	{ "unresolved-host", K_HOP, LIST, 0, NULL },
	{ "tracking", K_BOOL, ONE, 0, NULL },
	{ "tracking-subjects", K_BOOL, ONE, 0, NULL },
	{ "tracking-days", K_DAYS, ONE, 0, NULL },
	{ "log-level", K_LOGLEVEL, LIST, 0, NULL },
	{ "hooks", K_PATH, LIST, 0, NULL },
	{ "hook-timeout", K_TIME, ONE, 0, NULL },
	{ "max-inject-size", K_SIZE, ONE, 0, NULL },
	{ "ndr-return-max", K_SIZE, ONE, 0, NULL },
	{ "unreachable-after", K_TIME, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec server_spec[] = {
	{ "listen", K_LISTEN, LIST, REQUIRED, NULL },
	{ "hostname", K_HOST, ONE, 0, NULL },
	{ "banner", K_STR, ONE, 0, NULL },
	{ "auth", K_ENUM, LIST, 0, "anonymous|plain|login" },
	{ "tls", K_ENUM, ONE, 0, "off|optional|required" },
	{ "cert", K_PATH, ONE, 0, NULL },
	{ "key", K_PATH, ONE, 0, NULL },
	{ "relay-from", K_ACCESS, LIST, 0, NULL },
	{ "relay-authenticated", K_BOOL, ONE, 0, NULL },
	{ "allow-from", K_ACCESS, LIST, 0, NULL },
	{ "deny-from", K_ACCESS, LIST, 0, NULL },
	{ "filter", K_BOOL, ONE, 0, NULL },
	{ "anti-spoof", K_BOOL, ONE, 0, NULL },
	{ "max-size", K_SIZE, ONE, 0, NULL },
	{ "max-session-size", K_SIZE, ONE, 0, NULL },
	{ "max-messages", K_INT, ONE, 0, NULL },
	{ "max-recipients", K_INT, ONE, 0, NULL },
	{ "max-connections", K_INT, ONE, 0, NULL },
	{ "max-connections-per-ip", K_INT, ONE, 0, NULL },
	{ "max-hops", K_INT, ONE, 0, NULL },
	{ "max-errors", K_INT, ONE, 0, NULL },
	{ "timeout", K_TIME, ONE, 0, NULL },
	{ "data-timeout", K_TIME, ONE, 0, NULL },
	{ "hook-timeout", K_TIME, ONE, 0, NULL },
	{ "plaintext-auth", K_BOOL, ONE, 0, NULL },
	{ "vrfy", K_BOOL, ONE, 0, NULL },
	{ "etrn", K_BOOL, ONE, 0, NULL },
	{ "atrn", K_BOOL, ONE, 0, NULL },
	{ "hooks", K_PATH, LIST, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec domain_spec[] = {
	{ "type", K_ENUM, ONE, 0, "authoritative|shared" },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec policy_spec[] = {
	{ "filter", K_FILTER, ONE, 0, NULL },
	{ "addresses", K_PATTERN, LIST, REQUIRED, NULL },
	{ "priority", K_INT, ONE, 0, NULL },
	{ "primary", K_PATTERN, ONE, 0, NULL },
	{ "rewrite-from", K_BOOL, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec mailbox_spec[] = {
	{ "addresses", K_ADDR, LIST, 0, NULL },
	{ "name", K_STR, ONE, 0, NULL },
	{ "given", K_STR, ONE, 0, NULL },
	{ "surname", K_STR, ONE, 0, NULL },
	{ "department", K_STR, ONE, 0, NULL },
	{ "company", K_STR, ONE, 0, NULL },
	{ "office", K_STR, ONE, 0, NULL },
	{ "maildir", K_PATH, ONE, 0, NULL },
	{ "quota", K_SIZE, ONE, 0, NULL },
	{ "password", K_HASH, ONE, 0, NULL },
	{ "accept-from", K_SENDER, LIST, 0, NULL },
	{ "reject-from", K_SENDER, LIST, 0, NULL },
	{ "max-size", K_SIZE, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec contact_spec[] = {
	{ "addresses", K_ADDR, LIST, 0, NULL },
	{ "name", K_STR, ONE, 0, NULL },
	{ "target", K_REF, ONE, REQUIRED, NULL },
	{ "accept-from", K_SENDER, LIST, 0, NULL },
	{ "reject-from", K_SENDER, LIST, 0, NULL },
	{ "max-size", K_SIZE, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec group_spec[] = {
	{ "addresses", K_ADDR, LIST, 0, NULL },
	{ "name", K_STR, ONE, 0, NULL },
	{ "members", K_REF, LIST, 0, NULL },
	{ "accept-from", K_SENDER, LIST, 0, NULL },
	{ "reject-from", K_SENDER, LIST, 0, NULL },
	{ "max-size", K_SIZE, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec alias_spec[] = {
	{ "addresses", K_ADDR, LIST, REQUIRED, NULL },
	{ "target", K_REF, ONE, REQUIRED, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec connector_spec[] = {
	{ "address-space", K_SPACE, LIST, REQUIRED, NULL },
	{ "cost", K_INT, ONE, 0, NULL },
	{ "route", K_ENUM, ONE, 0, "dns" },
	{ "smarthost", K_HOP, LIST, 0, NULL },
	{ "relay", K_BOOL, ONE, 0, NULL },
	{ "helo", K_BOOL, ONE, 0, NULL },
	{ "tls", K_ENUM, ONE, 0, "off|optional|required" },
	{ "auth", K_USERPASS, ONE, 0, NULL },
	{ "source", K_NAME, LIST, 0, NULL },
	{ "accept-senders", K_CSENDER, LIST, 0, NULL },
	{ "reject-senders", K_CSENDER, LIST, 0, NULL },
	{ "rate", K_RATE, ONE, 0, NULL },
	{ "tls-ca", K_PATH, ONE, 0, NULL },
	{ "priorities", K_ENUM, LIST, 0, "low|normal|high" },
	{ "max-size", K_SIZE, ONE, 0, NULL },
	{ "system", K_BOOL, ONE, 0, NULL },
	{ "schedule", K_SCHEDULE, ONE, 0, NULL },
	{ "oversize", K_SIZE, ONE, 0, NULL },
	{ "oversize-schedule", K_SCHEDULE, ONE, 0, NULL },
	{ "hold", K_BOOL, ONE, 0, NULL },
	{ "trigger-accounts", K_SENDER, LIST, 0, NULL },
	{ "etrn-request", K_STR, ONE, 0, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static const struct spec *
spec_find(const struct spec *spec, const char *name)
{
	for (; spec->name != NULL; spec++)
		if (strcmp(spec->name, name) == 0)
			return spec;
	return NULL;
}

static void
report_bad(int f, unsigned line, const char *what, const struct spec *sp,
    const char *item, const char *why)
{
	error_at(f, line, "%s%s%s: \"%s\" is %s%s", what ? what : "",
	    what ? ": " : "", sp->name, item,
	    sp->kind == K_ENUM ? "not one of " : "", why);
}

/* Checks one value (each item of a list); reports the first bad item.
 * what names the record ("mailbox demo"), NULL for a setting. */
static void
check_value(int f, unsigned line, const char *what, const struct spec *sp,
    const char *value)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *p = value, *why = "";
	int rc;

	if (!sp->is_list) {
		if (!check_item(sp->kind, sp->choices, value, &why))
			report_bad(f, line, what, sp, value, why);
		return;
	}
	while ((rc = source_item(&p, item, sizeof item)) == 1) {
		if (item[0] == '\0') {
			error_at(f, line, "%s%s%s: empty item in list",
			    what ? what : "", what ? ": " : "", sp->name);
			return;
		}
		if (!check_item(sp->kind, sp->choices, item, &why)) {
			report_bad(f, line, what, sp, item, why);
			return;
		}
	}
}

/* Checks every attribute of r against spec; what names the record. */
static void
check_attrs(int f, const struct source_record *r, const struct spec *spec,
    const char *what)
{
	const struct spec *sp;
	size_t i;

	for (i = 0; i < r->attrs.n; i++) {
		const struct attr *a = &r->attrs.v[i];
		if ((sp = spec_find(spec, a->name)) == NULL)
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

/* The line an attribute was given on, or the record's line. */
static unsigned
attr_line(const struct source_record *r, const char *name)
{
	int i = source_attr_index(r, name);

	return i < 0 ? r->line : r->attr_line[i];
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
unique(int f, struct table *t, const char *name, struct source_record *r,
    const char *kind)
{
	struct source_record *earlier = table_put(t, name, r);

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
	if (!is_name(r->word[nword - 1])) {
		error_at(f, r->line, "bad name \"%s\" (use letters, digits, '.', "
		    "'_' and '-')", r->word[nword - 1]);
		return 0;
	}
	return 1;
}

static struct table settings_seen;
static const char *hostname_setting;

static void
check_settings(void)
{
	struct file *fl = &files[F_SETTINGS];
	const struct spec *sp;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword != 2) {
			error_at(F_SETTINGS, r->line, "expected KEY VALUE (quote "
			    "a value with spaces)");
			continue;
		}
		if ((sp = spec_find(settings_spec, r->word[0])) == NULL) {
			error_at(F_SETTINGS, r->line, "unknown setting %s",
			    r->word[0]);
			continue;
		}
		/* a later line overrides an earlier one: settings >> works */
		if (table_put(&settings_seen, r->word[0], r) != NULL)
			table_slot(&settings_seen, r->word[0])->value = r;
		check_value(F_SETTINGS, r->line, NULL, sp, r->word[1]);
		if (strcmp(r->word[0], "hostname") == 0)
			hostname_setting = r->word[1];
	}
}

static struct table servers;

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
		error_at(F_SERVERS, attr_line(r, "tls"), "%s: tls=%s needs "
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
		check_attrs(F_SERVERS, r, server_spec, what);
		check_server_tls(r, what);
	}
}

static struct table domains, policies;

static void
check_domain(struct source_record *r)
{
	char what[300];

	if (r->nword != 1) {
		error_at(F_DOMAINS, r->line, "expected DOMAIN type=... or "
		    "policy NAME ...");
		return;
	}
	if (!is_host(r->word[0])) {
		error_at(F_DOMAINS, r->line, "bad domain \"%s\"", r->word[0]);
		return;
	}
	lower(r->word[0]);
	if (!unique(F_DOMAINS, &domains, r->word[0], r, "domain"))
		return;
	snprintf(what, sizeof what, "domain %s", r->word[0]);
	check_attrs(F_DOMAINS, r, domain_spec, what);
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
		check_attrs(F_DOMAINS, r, policy_spec, what);
	}
}

static struct table connectors;

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
		check_attrs(F_CONNECTORS, r, connector_spec, what);
		if (attrs_get(&r->attrs, "route") != NULL &&
		    attrs_get(&r->attrs, "smarthost") != NULL)
			error_at(F_CONNECTORS, attr_line(r, "smarthost"), "%s: "
			    "route=dns and smarthost= exclude each other", what);
	}
}

static struct table filters;

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
		if (!(r->word[0][0] == '@' && is_host(r->word[0] + 1)) &&
		    !is_addr(r->word[0])) {
			error_at(F_FILTERS, r->line, "\"%s\" is not @DOMAIN or an "
			    "address", r->word[0]);
			continue;
		}
		lower(r->word[0]);
		unique(F_FILTERS, &filters, r->word[0], r, "filter");
	}
}

/* ---- the directory: recipients, their names and addresses ---- */

enum { D_MAILBOX, D_CONTACT, D_GROUP, D_ALIAS, NKINDS };

static const struct {
	const char *name, *plural;
	const struct spec *spec;
} kinds[NKINDS] = {
	{ "mailbox", "mailboxes", mailbox_spec },
	{ "contact", "contacts", contact_spec },
	{ "group", "groups", group_spec },
	{ "alias", "aliases", alias_spec },
};

struct entry {
	struct source_record *rec;
	int kind;
	const char *name;
	char **addr;			/* lower case: given, then generated */
	size_t naddr, addrcap;
	const char *primary;		/* one of addr, or NULL */
	int rewrite_from;		/* from the policy that gave primary; -1 */
	size_t mark;			/* policy filter visits */
};

static struct entry *entries;
static size_t nentries;
static struct table names;		/* NAME -> entry */
static struct table addrs;		/* lower-case address -> entry */

static void
entry_add_addr(struct entry *e, char *key)
{
	if (e->naddr == e->addrcap) {
		e->addrcap = e->addrcap ? e->addrcap * 2 : 4;
		e->addr = xrealloc(e->addr, e->addrcap, sizeof *e->addr);
	}
	e->addr[e->naddr++] = key;
}

static int
entry_kind(const char *word)
{
	int k;

	for (k = 0; k < NKINDS; k++)
		if (strcmp(word, kinds[k].name) == 0)
			return k;
	return -1;
}

static void
check_entry(struct source_record *r)
{
	char what[128];
	struct entry *e, *earlier;
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
	e = &entries[nentries];
	memset(e, 0, sizeof *e);
	e->rec = r;
	e->kind = kind;
	e->name = r->word[1];
	e->rewrite_from = -1;
	if ((earlier = table_put(&names, e->name, e)) != NULL) {
		error_at(F_DIRECTORY, r->line, "name %s already used by %s %s at "
		    "line %u", e->name, kinds[earlier->kind].name, e->name,
		    earlier->rec->line);
		return;
	}
	nentries++;
}

/* Gives address key (lower case, owned) to e, refusing an address that
 * names another recipient (5.1.4: it must name exactly one). */
static int
claim(struct entry *e, char *key, unsigned line)
{
	struct entry *owner = table_put(&addrs, key, e);

	if (owner == NULL) {
		entry_add_addr(e, key);
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
claim_given(struct entry *e)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *p = attrs_get(&e->rec->attrs, "addresses");
	unsigned line = attr_line(e->rec, "addresses");

	if (p == NULL)
		return;
	while (source_item(&p, item, sizeof item) == 1)
		if (is_addr(item)) {
			lower(item);
			claim(e, xstrdup(item), line);
		}
}

/* Every name in a reference list (no '@', not "@domain") must be a
 * directory name. */
static void
check_refs(struct entry *e, const char *attr)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *p = attrs_get(&e->rec->attrs, attr);

	if (p == NULL)
		return;
	while (source_item(&p, item, sizeof item) == 1)
		if (is_name(item) && strchr(item, '@') == NULL &&
		    table_get(&names, item) == NULL)
			error_at(F_DIRECTORY, attr_line(e->rec, attr), "%s %s: "
			    "%s: %s is not an address or a directory name",
			    kinds[e->kind].name, e->name, attr, item);
}

static void
check_directory(void)
{
	struct file *fl = &files[F_DIRECTORY];
	size_t i;

	entries = xrealloc(NULL, fl->n + 1, sizeof *entries);
	for (i = 0; i < fl->n; i++)
		check_entry(&fl->rec[i]);
	for (i = 0; i < nentries; i++)
		claim_given(&entries[i]);
	for (i = 0; i < nentries; i++) {
		check_refs(&entries[i], "target");
		check_refs(&entries[i], "members");
		check_refs(&entries[i], "accept-from");
		check_refs(&entries[i], "reject-from");
	}
}

/* ---- recipient policies: proxy addresses and primary addresses ---- */

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
name_parts(const struct entry *e, char *given, char *surname, size_t cap)
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
expand(const struct entry *e, const char *pattern, char *out, size_t cap)
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
	return n <= ADDR_LOCAL_MAX && is_addr(out);
}

/* Gives mailbox e the address pattern makes, made unique as Exchange does
 * (a number before '@') when another recipient holds it. The address, or
 * NULL. */
static const char *
generate(struct entry *e, const char *pattern, const struct source_record *pr)
{
	char addr[ADDR_MAX], try[ADDR_MAX + 8];
	const char *at;
	struct entry *owner;
	int n;

	if (!is_pattern(pattern) || !expand(e, pattern, addr, sizeof addr))
		return NULL;
	at = strrchr(addr, '@');
	for (n = 1; n < 100; n++) {
		if (n == 1)
			snprintf(try, sizeof try, "%s", addr);
		else
			snprintf(try, sizeof try, "%.*s%d%s", (int)(at - addr),
			    addr, n, at);
		if ((owner = table_get(&addrs, try)) == e)
			return table_slot(&addrs, try)->key;
		if (owner == NULL && strlen(try) < ADDR_MAX - 2) {
			char *key = xstrdup(try);
			table_put(&addrs, key, e);
			entry_add_addr(e, key);
			return key;
		}
	}
	error_at(F_DOMAINS, attr_line(pr, "addresses"), "policy %s: no unique "
	    "address from %s for mailbox %s", pr->word[1], pattern, e->name);
	return NULL;
}

/* Marks with stamp every recipient reached from group g through members
 * and alias targets (nested groups; a cycle ends where it was marked). */
static void
mark_group(struct entry *g, size_t stamp)
{
	static char item[SOURCE_LINE_MAX + 1];
	struct entry **stack = xrealloc(NULL, nentries + 1, sizeof *stack);
	size_t depth = 0;

	g->mark = stamp;
	stack[depth++] = g;
	while (depth > 0) {
		struct entry *x = stack[--depth], *y;
		const char *p = attrs_get(&x->rec->attrs,
		    x->kind == D_GROUP ? "members" : "target");
		while (p != NULL && source_item(&p, item, sizeof item) == 1) {
			if (strchr(item, '@') != NULL)
				lower(item);
			y = table_get(strchr(item, '@') ? &addrs : &names, item);
			if (y == NULL || y->mark == stamp)
				continue;
			y->mark = stamp;
			if (y->kind == D_GROUP || y->kind == D_ALIAS)
				stack[depth++] = y;
		}
	}
	free(stack);
}

/* Prepares a policy's filter; 1 when it selects mailboxes (*attr set for
 * attr:NAME=VALUE), 0 after reporting why not. */
static int
filter_start(const struct source_record *pr, size_t stamp, char *attr,
    size_t cap)
{
	const char *filter = attrs_get(&pr->attrs, "filter");
	struct entry *g;

	attr[0] = '\0';
	if (filter == NULL || strcmp(filter, "all") == 0 || !is_filter(filter))
		return 1;
	if (strncmp(filter, "group:", 6) == 0) {
		if ((g = table_get(&names, filter + 6)) == NULL ||
		    g->kind != D_GROUP) {
			error_at(F_DOMAINS, attr_line(pr, "filter"), "policy %s: "
			    "filter: no group %s in directory", pr->word[1],
			    filter + 6);
			return 0;
		}
		mark_group(g, stamp);
		return 1;
	}
	snprintf(attr, cap, "%.*s", (int)strcspn(filter + 5, "="), filter + 5);
	if (spec_find(mailbox_spec, attr) != NULL)
		return 1;
	error_at(F_DOMAINS, attr_line(pr, "filter"), "policy %s: filter: "
	    "mailboxes have no attribute %s", pr->word[1], attr);
	return 0;
}

static int
filter_match(const struct source_record *pr, const struct entry *e,
    size_t stamp, const char *attr)
{
	const char *filter = attrs_get(&pr->attrs, "filter"), *v;

	if (e->kind != D_MAILBOX)
		return 0;
	if (filter != NULL && strncmp(filter, "group:", 6) == 0)
		return e->mark == stamp;
	if (attr[0] == '\0')
		return 1;
	v = attrs_get(&e->rec->attrs, attr);
	return v != NULL && strcasecmp(v, strchr(filter, '=') + 1) == 0;
}

/* One policy on one mailbox: every pattern gives an address; the first
 * policy (highest priority) that yields a primary address gives it. */
static void
policy_apply(const struct source_record *pr, struct entry *e)
{
	static char item[SOURCE_LINE_MAX + 1];
	const char *list = attrs_get(&pr->attrs, "addresses"), *p = list;
	const char *primary = attrs_get(&pr->attrs, "primary"), *a;
	const char *rewrite = attrs_get(&pr->attrs, "rewrite-from");

	while (p != NULL && source_item(&p, item, sizeof item) == 1)
		generate(e, item, pr);
	if (e->primary != NULL)
		return;
	if (primary == NULL && list != NULL) {
		p = list;
		if (source_item(&p, item, sizeof item) == 1)
			primary = item;
	}
	if (primary != NULL && (a = generate(e, primary, pr)) != NULL) {
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
	long na = pa && is_int(pa) ? atol(pa) : 0;
	long nb = pb && is_int(pb) ? atol(pb) : 0;

	if (na != nb)
		return na > nb ? -1 : 1;
	return ra->line < rb->line ? -1 : ra->line > rb->line;
}

static void
apply_policies(void)
{
	struct file *fl = &files[F_DOMAINS];
	struct source_record **list = xrealloc(NULL, fl->n + 1, sizeof *list);
	char attr[SOURCE_NAME_MAX];
	size_t i, j, n = 0;

	for (i = 0; i < fl->n; i++)
		if (fl->rec[i].nword == 2 && strcmp(fl->rec[i].word[0], "policy") == 0)
			list[n++] = &fl->rec[i];
	qsort(list, n, sizeof *list, policy_order);
	for (i = 0; i < n; i++) {
		if (!filter_start(list[i], i + 1, attr, sizeof attr))
			continue;
		for (j = 0; j < nentries; j++)
			if (filter_match(list[i], &entries[j], i + 1, attr))
				policy_apply(list[i], &entries[j]);
	}
	for (j = 0; j < nentries; j++)
		if (entries[j].primary == NULL && entries[j].naddr > 0)
			entries[j].primary = entries[j].addr[0];
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
		error_at(F_DOMAINS, attr_line(pr, "addresses"), "policy %s: domain "
		    "%s is the host name of %s (5.4.8: a policy domain must not "
		    "equal a server's FQDN)", pr->word[1], domain,
		    hostname_setting ? "settings hostname" : "this machine");
	for (i = 0; i < fl->n; i++)
		if ((fqdn = attrs_get(&fl->rec[i].attrs, "hostname")) != NULL &&
		    strcasecmp(domain, fqdn) == 0)
			error_at(F_DOMAINS, attr_line(pr, "addresses"), "policy "
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
			if (is_pattern(item) && (at = strrchr(item, '@')) != NULL)
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
			if (is_name(item) && table_get(&servers, item) == NULL)
				error_at(F_CONNECTORS, attr_line(r, "source"),
				    "connector %s: source: no server %s in servers",
				    r->nword ? r->word[0] : "", item);
	}
}

/* ---- writing the databases ---- */

struct out {
	struct cdb_make cm;
	int fd;
	char tmp[PATH_MAX], path[PATH_MAX];
};

static struct out outs[NFILES];
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

static struct out *
out_start(int f)
{
	struct out *o = &outs[nouts++];

	if (snprintf(o->path, sizeof o->path, "%s/%s.cdb", dir,
	    files[f].name) >= (int)sizeof o->path ||
	    snprintf(o->tmp, sizeof o->tmp, "%s/%s.cdb.tmp", dir,
	    files[f].name) >= (int)sizeof o->tmp)
		die(EXIT_PERM, ENAMETOOLONG, "%s", dir);
	/* a source only its owner may read (password hashes) keeps its
	 * database as private: the mode is the source's */
	if ((o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0 || fchmod(o->fd, files[f].mode ? files[f].mode : 0644) < 0)
		die(EXIT_TEMP, errno, "unable to create %s", o->tmp);
	if (cdb_make_start(&o->cm, o->fd) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", o->tmp);
	return o;
}

static void
out_put(struct out *o, const char *key, const void *value, size_t len)
{
	if (cdb_make_add(&o->cm, key, strlen(key), value, len) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", o->tmp);
}

static void
out_putf(struct out *o, const struct buf *value, const char *fmt, ...)
{
	char key[SOURCE_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof key, fmt, ap);
	va_end(ap);
	out_put(o, key, value ? value->data : "", value ? value->len : 0);
}

static void
out_finish(struct out *o)
{
	if (cdb_make_finish(&o->cm) < 0 || fsync(o->fd) < 0 || close(o->fd) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", o->tmp);
}

static void
blob_add(struct buf *b, const char *name, const char *value)
{
	if (buf_add(b, name, strlen(name) + 1) < 0 ||
	    buf_add(b, value, strlen(value) + 1) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
}

static void
blob_attrs(struct buf *b, const struct attrs *a, const char *skip)
{
	size_t i;

	buf_reset(b);
	for (i = 0; i < a->n; i++)
		if (skip == NULL || strcmp(a->v[i].name, skip) != 0)
			blob_add(b, a->v[i].name, a->v[i].value);
}

static void
list_add(struct buf *b, const char *item)
{
	if (buf_add(b, item, strlen(item) + 1) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
}

static void
write_settings(struct out *o)
{
	struct file *fl = &files[F_SETTINGS];
	size_t i;

	for (i = 0; i < fl->n; i++)
		if (table_get(&settings_seen, fl->rec[i].word[0]) == &fl->rec[i])
			out_put(o, fl->rec[i].word[0], fl->rec[i].word[1],
			    strlen(fl->rec[i].word[1]));
}

/* servers.cdb and connectors.cdb: PREFIX:NAME -> record, LIST -> names. */
static void
write_named(struct out *o, int f, const char *prefix, const char *list)
{
	struct file *fl = &files[f];
	struct buf b = BUF_INIT, names_list = BUF_INIT;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		blob_attrs(&b, &fl->rec[i].attrs, NULL);
		out_putf(o, &b, "%s:%s", prefix, fl->rec[i].word[0]);
		list_add(&names_list, fl->rec[i].word[0]);
	}
	out_putf(o, &names_list, "%s", list);
	buf_free(&b);
	buf_free(&names_list);
}

static void
write_domains(struct out *o)
{
	struct file *fl = &files[F_DOMAINS];
	struct buf b = BUF_INIT, dl = BUF_INIT, pl = BUF_INIT;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword == 2) {
			blob_attrs(&b, &r->attrs, NULL);
			out_putf(o, &b, "policy:%s", r->word[1]);
			list_add(&pl, r->word[1]);
			continue;
		}
		blob_attrs(&b, &r->attrs, "type");
		blob_add(&b, "type", attrs_get(&r->attrs, "type") ?
		    attrs_get(&r->attrs, "type") : "authoritative");
		out_putf(o, &b, "domain:%s", r->word[0]);
		list_add(&dl, r->word[0]);
	}
	out_putf(o, &dl, "domains");
	out_putf(o, &pl, "policies");
	buf_free(&b);
	buf_free(&dl);
	buf_free(&pl);
}

/* A recipient's record: its attributes, with addresses= the whole list
 * (given and generated, lower case) and primary= its reply address. */
static void
write_entry(struct out *o, const struct entry *e, struct buf *b)
{
	struct buf list = BUF_INIT, pair = BUF_INIT;
	size_t i;

	blob_attrs(b, &e->rec->attrs, "addresses");
	for (i = 0; i < e->naddr; i++)
		if (buf_printf(&list, "%s%s", i ? "," : "", e->addr[i]) < 0)
			die(EXIT_TEMP, ENOMEM, "out of memory");
	if (e->naddr > 0)
		blob_add(b, "addresses", list.data);
	if (e->primary != NULL)
		blob_add(b, "primary", e->primary);
	if (e->rewrite_from >= 0)
		blob_add(b, "rewrite-from", e->rewrite_from ? "yes" : "no");
	out_putf(o, b, "%s:%s", kinds[e->kind].name, e->name);
	list_add(&pair, kinds[e->kind].name);
	list_add(&pair, e->name);
	for (i = 0; i < e->naddr; i++)
		out_putf(o, &pair, "addr:%s", e->addr[i]);
	buf_free(&list);
	buf_free(&pair);
}

static void
write_directory(struct out *o)
{
	struct buf b = BUF_INIT, lists[NKINDS] = { BUF_INIT, BUF_INIT,
	    BUF_INIT, BUF_INIT };
	size_t i;
	int k;

	for (i = 0; i < nentries; i++) {
		write_entry(o, &entries[i], &b);
		list_add(&lists[entries[i].kind], entries[i].name);
	}
	for (k = 0; k < NKINDS; k++) {
		out_putf(o, &lists[k], "%s", kinds[k].plural);
		buf_free(&lists[k]);
	}
	buf_free(&b);
}

static void
write_filters(struct out *o)
{
	struct file *fl = &files[F_FILTERS];
	size_t i;

	for (i = 0; i < fl->n; i++)
		out_putf(o, NULL, "filter:%s", fl->rec[i].word[0]);
}

static void
write_one(int f)
{
	struct out *o = out_start(f);

	switch (f) {
	case F_SETTINGS: write_settings(o); break;
	case F_SERVERS: write_named(o, f, "server", "servers"); break;
	case F_DOMAINS: write_domains(o); break;
	case F_DIRECTORY: write_directory(o); break;
	case F_CONNECTORS: write_named(o, f, "connector", "connectors"); break;
	case F_FILTERS: write_filters(o); break;
	}
	out_finish(o);
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
