/*
 * bh-check: the configuration doctor. Reads the compiled configuration and
 * prints what is dangerous or will not work, each finding on one line with
 * the reason (after the Exchange 2000 SMTP book) and the fix:
 *
 *	error: connector open: relay=yes with address-space * ... Fix: ...
 *
 * reads   cdb/settings.cdb servers.cdb domains.cdb connectors.cdb, and the
 *         sources' times (a source newer than its .cdb is not in force)
 * writes  stdout: the findings, or "no problems found"
 * exit    0 clean; 1 warnings only; 2 errors; 111 a database is unreadable
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <limits.h>

#include "addrspace.h"
#include "attr.h"
#include "buf.h"
#include "conf.h"
#include "connector.h"
#include "hops.h"
#include "log.h"
#include "priv.h"
#include "root.h"

enum { CLEAN = 0, WARNINGS = 1, ERRORS = 2 };

struct server {
	char *name;
	struct attrs attrs;
};

struct config {
	struct conf servers_cdb, domains_cdb;
	struct server *servers;
	size_t nservers;
	char **domains;		/* accepted domains (a conf_list) */
	size_t ndomains;
	struct connectors cs;
	char hostname[256];
};

static int worst = CLEAN;

static void __attribute__((format(printf, 2, 3)))
finding(int level, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", level == ERRORS ? "error" : "warning");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (level > worst)
		worst = level;
}

/* Calls fn on each item of a comma-separated list. */
static void
each_item(const char *list, void (*fn)(const char *, void *), void *arg)
{
	char item[512];
	size_t n;

	while (list != NULL && *list != '\0') {
		n = strcspn(list, ",");
		if (n > 0 && n < sizeof item) {
			memcpy(item, list, n);
			item[n] = '\0';
			fn(item, arg);
		}
		list += n + (list[n] == ',');
	}
}

static int
list_has(const char *list, const char *word)
{
	size_t n = strlen(word);

	while (list != NULL && *list != '\0') {
		size_t len = strcspn(list, ",");
		if (len == n && strncasecmp(list, word, n) == 0)
			return 1;
		list += len + (list[len] == ',');
	}
	return 0;
}

/* ---- loading ---- */

static void
load_servers(struct config *c)
{
	char **names;
	size_t n, i;
	int rc;

	if (conf_open(&c->servers_cdb, "servers") < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/servers.cdb");
	if ((rc = conf_list(&c->servers_cdb, "servers", &names, &n)) < 0)
		die(EXIT_TEMP, errno, "unable to read cdb/servers.cdb");
	if (rc == 0)
		return;
	if ((c->servers = calloc(n + 1, sizeof *c->servers)) == NULL)
		die(EXIT_TEMP, errno, "out of memory");
	for (i = 0; i < n; i++) {
		char key[300];
		snprintf(key, sizeof key, "server:%s", names[i]);
		c->servers[i].name = strdup(names[i]);
		if (c->servers[i].name == NULL ||
		    conf_record(&c->servers_cdb, key, &c->servers[i].attrs) < 0)
			die(EXIT_TEMP, errno, "unable to read server %s", names[i]);
	}
	c->nservers = n;
	free(names);
}

static void
load(struct config *c)
{
	memset(c, 0, sizeof *c);
	load_servers(c);
	if (conf_open(&c->domains_cdb, "domains") < 0 ||
	    conf_list(&c->domains_cdb, "domains", &c->domains, &c->ndomains) < 0)
		die(EXIT_TEMP, errno, "unable to read cdb/domains.cdb");
	if (connectors_open(&c->cs) < 0)
		die(EXIT_TEMP, errno, "unable to read cdb/connectors.cdb");
	snprintf(c->hostname, sizeof c->hostname, "%s", conf_hostname());
}

static const char *
domain_type(struct config *c, const char *domain)
{
	static char type[32];
	struct attrs a = ATTRS_INIT;
	char key[300];
	const char *t;

	snprintf(key, sizeof key, "domain:%s", domain);
	snprintf(type, sizeof type, "authoritative");
	if (conf_record(&c->domains_cdb, key, &a) == 1 &&
	    (t = attrs_get(&a, "type")) != NULL)
		snprintf(type, sizeof type, "%s", t);
	attrs_free(&a);
	return type;
}

/* ---- the checks ---- */

static void
check_relay_from(const char *item, void *arg)
{
	const char *slash = strchr(item, '/');

	if (slash != NULL && strcmp(slash, "/0") == 0)
		finding(ERRORS, "server %s: relay-from=%s lets every client relay: "
		    "an open relay is found within hours and used to send spam, "
		    "and the server ends up on block lists. Fix: list only your "
		    "own networks in relay-from and let other users "
		    "authenticate.", (const char *)arg, item);
}

static void
check_open_relay(struct config *c)
{
	size_t i;

	for (i = 0; i < c->cs.n; i++) {
		const struct connector *k = &c->cs.v[i];
		const char *relay = attrs_get(&k->attrs, "relay");
		if (relay != NULL && conf_parse_bool(relay) == 1 &&
		    list_has(attrs_get(&k->attrs, "address-space"), "*"))
			finding(ERRORS, "connector %s: relay=yes with address-space "
			    "* makes an open relay: the server accepts mail from "
			    "anyone for every domain, and spammers will use it. "
			    "Fix: list only the domains you relay for in "
			    "address-space, or remove relay=yes.", k->name);
	}
	for (i = 0; i < c->nservers; i++)
		each_item(attrs_get(&c->servers[i].attrs, "relay-from"),
		    check_relay_from, c->servers[i].name);
}

struct host_check {
	struct config *c;
	const char *what;	/* "domains" or "policy NAME" */
};

/* Is name this server's host name (settings hostname or a server's fqdn)?
 * Says which into who. */
static int
is_own_name(struct config *c, const char *name, char *who, size_t cap)
{
	const char *fqdn;
	size_t i;

	if (strcasecmp(name, c->hostname) == 0) {
		snprintf(who, cap, "the host name of this server");
		return 1;
	}
	for (i = 0; i < c->nservers; i++)
		if ((((fqdn = attrs_get(&c->servers[i].attrs, "hostname")) != NULL &&
		    strcasecmp(name, fqdn) == 0) ||
		    ((fqdn = attrs_get(&c->servers[i].attrs, "fqdn")) != NULL &&
		    strcasecmp(name, fqdn) == 0))) {
			snprintf(who, cap, "the host name of server %s",
			    c->servers[i].name);
			return 1;
		}
	return 0;
}

static void
policy_domain(struct config *c, const char *what, const char *domain)
{
	char who[300];

	if (is_own_name(c, domain, who, sizeof who))
		finding(ERRORS, "%s: %s is %s: mail addressed to the server "
		    "itself is then taken for mail of the recipient policy, and "
		    "messages fail with 5.4.8. Fix: use the parent domain in "
		    "the policy and keep host names out of it.", what, domain,
		    who);
}

static void
policy_pattern(const char *pattern, void *arg)
{
	struct host_check *h = arg;
	const char *at = strrchr(pattern, '@');

	if (at != NULL)
		policy_domain(h->c, h->what, at + 1);
}

static void
check_policy_domains(struct config *c)
{
	char **names, what[300], key[300];
	struct attrs a;
	size_t i, n;
	struct host_check h = { c, what };

	for (i = 0; i < c->ndomains; i++)
		policy_domain(c, "domains", c->domains[i]);
	if (conf_list(&c->domains_cdb, "policies", &names, &n) != 1)
		return;
	for (i = 0; i < n; i++) {
		memset(&a, 0, sizeof a);
		snprintf(key, sizeof key, "policy:%s", names[i]);
		snprintf(what, sizeof what, "policy %s", names[i]);
		if (conf_record(&c->domains_cdb, key, &a) == 1)
			each_item(attrs_get(&a, "addresses"), policy_pattern, &h);
		attrs_free(&a);
	}
	free(names);
}

struct space_check {
	struct config *c;
	const char *connector;
};

static void
space_entry(const char *space, void *arg)
{
	struct space_check *s = arg;
	size_t i;

	if (strcmp(space, "*") == 0)
		return;	/* the default route; local domains go first */
	for (i = 0; i < s->c->ndomains; i++)
		if (strcmp(domain_type(s->c, s->c->domains[i]),
		    "authoritative") == 0 &&
		    addrspace_match(space, s->c->domains[i]) >= 0)
			finding(ERRORS, "connector %s: address-space %s covers the "
			    "authoritative domain %s: mail for it would leave "
			    "through the connector and come back, a loop that "
			    "ends in 5.3.5 NDRs. Fix: remove %s from the address "
			    "space, or make the domain type=shared if another "
			    "system holds some of its mailboxes.", s->connector,
			    space, s->c->domains[i], space);
}

static void
check_loops(struct config *c)
{
	size_t i;

	for (i = 0; i < c->cs.n; i++) {
		struct space_check s = { c, c->cs.v[i].name };
		each_item(attrs_get(&c->cs.v[i].attrs, "address-space"),
		    space_entry, &s);
	}
}

static void
smarthost_entry(const char *entry, void *arg)
{
	const char *what = arg;
	char hops[600];

	if (!hops_entry_valid(entry)) {
		finding(ERRORS, "%s: smart host %s is neither [IP] nor a fully "
		    "qualified domain name: an address without brackets is "
		    "looked up as a host name, and a short name does not "
		    "resolve, so mail waits and then fails with 5.4.0. Fix: "
		    "write an IP address in brackets ([192.0.2.1]) or a full "
		    "host name (relay.example.net).", what, entry);
		return;
	}
	snprintf(hops, sizeof hops, "smarthost:%s", entry);
	if (hops_is_self(hops))
		finding(ERRORS, "%s: smart host %s is this server: mail sent "
		    "there comes straight back, a loop that ends in 5.3.5 or "
		    "hop-count (5.4.6) NDRs. Fix: name the next server on the "
		    "way out, not this one.", what, entry);
}

static void
check_smarthosts(struct config *c)
{
	char what[300], list[4096];
	size_t i;

	for (i = 0; i < c->cs.n; i++) {
		snprintf(what, sizeof what, "connector %s", c->cs.v[i].name);
		each_item(attrs_get(&c->cs.v[i].attrs, "smarthost"),
		    smarthost_entry, what);
	}
	if (conf_setting("smarthost", NULL, list, sizeof list) == 1)
		each_item(list, smarthost_entry, "settings smarthost");
}

struct listen {
	const char *server;
	char ip[64];
	int port;
};

struct listens {
	struct listen v[64];
	size_t n;
	const char *server;
};

static void
listen_entry(const char *item, void *arg)
{
	struct listens *l = arg;
	const char *colon = strrchr(item, ':');
	size_t n;

	if (colon == NULL || l->n == sizeof l->v / sizeof l->v[0])
		return;
	n = colon - item;
	if (item[0] == '[' && n >= 2 && item[n - 1] == ']')
		item++, n -= 2;
	if (n >= sizeof l->v[0].ip)
		return;
	memcpy(l->v[l->n].ip, item, n);
	l->v[l->n].ip[n] = '\0';
	l->v[l->n].port = atoi(colon + 1);
	l->v[l->n++].server = l->server;
}

static int
is_any(const char *ip)
{
	return strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0;
}

static int
listen_clash(const struct listen *a, const struct listen *b)
{
	int is_v6a = strchr(a->ip, ':') != NULL, is_v6b = strchr(b->ip, ':') != NULL;

	if (a->port != b->port || is_v6a != is_v6b)
		return 0;
	return strcmp(a->ip, b->ip) == 0 || is_any(a->ip) || is_any(b->ip);
}

static void
check_listen(struct config *c)
{
	static struct listens l;
	size_t i, j;

	for (i = 0; i < c->nservers; i++) {
		l.server = c->servers[i].name;
		each_item(attrs_get(&c->servers[i].attrs, "listen"), listen_entry,
		    &l);
	}
	for (i = 0; i < l.n; i++)
		for (j = i + 1; j < l.n; j++)
			if (listen_clash(&l.v[i], &l.v[j]))
				finding(ERRORS, "servers %s and %s both listen on "
				    "%s:%d: only the first to start gets the "
				    "address and the other cannot serve. Fix: give "
				    "each virtual server its own address or port.",
				    l.v[i].server, l.v[j].server,
				    is_any(l.v[i].ip) ? l.v[j].ip : l.v[i].ip,
				    l.v[i].port);
}

static void
check_star(struct config *c)
{
	size_t i;

	if (c->cs.n == 0)
		return;	/* no connectors: everything goes by DNS */
	for (i = 0; i < c->cs.n; i++)
		if (list_has(attrs_get(&c->cs.v[i].attrs, "address-space"), "*"))
			return;
	finding(WARNINGS, "no connector has address-space *: once connectors "
	    "exist, mail for a domain that none of them lists has no route "
	    "and fails with 5.4.4. Fix: give the connector for Internet mail "
	    "address-space=* (route=dns to deliver by MX).");
}

/* The listen= entries of one server (in a static table: reused by the
 * next call). */
static const struct listens *
server_listens(const struct server *s)
{
	static struct listens l;

	l.n = 0;
	l.server = s->name;
	each_item(attrs_get(&s->attrs, "listen"), listen_entry, &l);
	return &l;
}

static int
listens_on_25(const struct server *s)
{
	const struct listens *l = server_listens(s);
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].port == 25)
			return 1;
	return 0;
}

/* Only loopback addresses: passwords never cross a network. */
static int
is_loopback_only(const struct server *s)
{
	const struct listens *l = server_listens(s);
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strncmp(l->v[i].ip, "127.", 4) != 0 && strcmp(l->v[i].ip, "::1"))
			return 0;
	return l->n > 0;
}

static void
check_auth(struct config *c)
{
	const char *auth, *tls;
	size_t i;

	for (i = 0; i < c->nservers; i++) {
		const struct server *s = &c->servers[i];
		if ((auth = attrs_get(&s->attrs, "auth")) == NULL)
			auth = "anonymous,plain,login";
		if ((tls = attrs_get(&s->attrs, "tls")) == NULL)
			tls = attrs_get(&s->attrs, "cert") ? "optional" : "off";
		if (!list_has(auth, "anonymous") &&
		    (listens_on_25(s) || c->nservers == 1))
			finding(WARNINGS, "server %s: anonymous access is off, but "
			    "it receives Internet mail: other servers never "
			    "authenticate, so their mail is refused with 530 "
			    "5.7.0. Fix: add anonymous to auth=, or keep this "
			    "server for submission and receive on another.", s->name);
		if ((list_has(auth, "plain") || list_has(auth, "login")) &&
		    strcmp(tls, "off") == 0 && !is_loopback_only(s))
			finding(WARNINGS, "server %s: AUTH PLAIN/LOGIN without TLS "
			    "sends passwords in clear text that anyone on the path "
			    "can read. Fix: set cert= and key= (tls=optional or "
			    "required), or remove plain and login from auth=.",
			    s->name);
	}
}

static void
log_category(const char *item, void *arg)
{
	static const char *known[] = { "smtp", "categorize", "route", "queue",
	    "local", "remote", "ndr", "*" };
	const char *eq = strchr(item, '=');
	size_t i, n;

	(void)arg;
	if (eq == NULL)
		return;	/* a bare level: the default */
	n = eq - item;
	for (i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strlen(known[i]) == n && strncmp(item, known[i], n) == 0)
			return;
	finding(WARNINGS, "settings log-level names the category %.*s, which "
	    "no stage uses: its level changes nothing. Fix: use smtp, "
	    "categorize, route, queue, local, remote or ndr.", (int)n, item);
}

static void
check_log_level(void)
{
	char buf[512];

	if (conf_setting("log-level", NULL, buf, sizeof buf) == 1)
		each_item(buf, log_category, NULL);
}

/* A source edited after its database was compiled is not in force yet. */
static void
check_compiled(void)
{
	static const char *sources[] = { "settings", "servers", "domains",
	    "directory", "connectors", "filters" };
	char src[PATH_MAX], db[PATH_MAX];
	struct stat s, d;
	size_t i;

	for (i = 0; i < sizeof sources / sizeof sources[0]; i++) {
		if (root_path(src, sizeof src, "cdb/%s", sources[i]) < 0 ||
		    root_path(db, sizeof db, "cdb/%s.cdb", sources[i]) < 0 ||
		    stat(src, &s) < 0)
			continue;
		if (stat(db, &d) < 0 || s.st_mtim.tv_sec > d.st_mtim.tv_sec ||
		    (s.st_mtim.tv_sec == d.st_mtim.tv_sec &&
		    s.st_mtim.tv_nsec > d.st_mtim.tv_nsec))
			finding(WARNINGS, "cdb/%s changed after cdb/%s.cdb was "
			    "compiled: the stages (and this check) still use the "
			    "old configuration. Fix: run make -C cdb (bh-config "
			    "reports any error in the source).", sources[i],
			    sources[i]);
	}
}

static void
check_settings(void)
{
	char buf[256];

	if (conf_setting("postmaster", NULL, buf, sizeof buf) != 1)
		finding(WARNINGS, "settings postmaster is not set: RFC 5321 "
		    "requires a postmaster mailbox, and NDR copies have nowhere "
		    "to go. Fix: add \"postmaster postmaster@YOUR-DOMAIN\" to "
		    "settings.");
}

/* Least privilege: with settings user, the stages run as that user and
 * need the root's spool/, log/ and mailroot/; queued mail and logs are
 * nobody else's business. */
static void
check_permissions(void)
{
	static const char *dirs[] = { "spool", "log", "mailroot" };
	char user[64], path[PATH_MAX];
	struct passwd *pw = NULL;
	struct stat st;
	size_t i;

	if (priv_user(user, sizeof user) && (pw = getpwnam(user)) == NULL)
		finding(ERRORS, "settings user %s: no such account: every stage "
		    "started as root stops at once. Fix: create it (useradd "
		    "--system %s) or remove the setting.", user, user);
	for (i = 0; i < 3; i++) {
		if (root_path(path, sizeof path, "%s", dirs[i]) < 0 ||
		    stat(path, &st) < 0)
			continue;
		if (pw != NULL && st.st_uid != pw->pw_uid)
			finding(ERRORS, "%s does not belong to settings user %s: "
			    "the stages run as %s and cannot write it. Fix: chown "
			    "-R %s %s", dirs[i], user, user, user, path);
		if (i < 2 && (st.st_mode & 077) != 0)
			finding(WARNINGS, "%s is open to other local users (mode "
			    "%03o): they can list queued mail or read logs. Fix: "
			    "chmod 700 %s", dirs[i], (unsigned)(st.st_mode & 0777),
			    path);
	}
}

int
main(int argc, char **argv)
{
	struct config c;

	log_init("check");
	if (argc != 1)
		die(EXIT_PERM, 0, "usage: bh-check");
	load(&c);
	check_open_relay(&c);
	check_policy_domains(&c);
	check_loops(&c);
	check_smarthosts(&c);
	check_listen(&c);
	check_star(&c);
	check_auth(&c);
	check_settings();
	check_permissions();
	check_log_level();
	check_compiled();
	if (worst == CLEAN)
		printf("no problems found\n");
	return worst;
}
