/*
 * smtpd_server: the settings of a bh-smtpd virtual server, read from
 * servers.cdb "server:NAME", with their defaults.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "attr.h"
#include "conf.h"
#include "smtpd_server.h"

static struct conf servers_cdb;

/* ---- settings of a virtual server ---- */

const char *
smtpd_server_get(const struct server *srv, const char *name)
{
	const char *v = attrs_get(&srv->a, name);

	return v ? v : "";
}

/* The name this server gives itself: its hostname=, else settings. */
const char *
smtpd_server_host(const struct server *srv)
{
	const char *v = attrs_get(&srv->a, "hostname");

	return v && *v ? v : conf_hostname();
}

static long long
server_size(const struct server *srv, const char *name, long long def)
{
	const char *v = attrs_get(&srv->a, name);
	long long n;

	return (v && *v && (n = conf_parse_size(v)) >= 0) ? n : def;
}

static int
server_time(const struct server *srv, const char *name, int def)
{
	const char *v = attrs_get(&srv->a, name);
	long long n;

	return (v && *v && (n = conf_parse_time(v)) > 0) ? (int)n : def;
}

static int
server_bool(const struct server *srv, const char *name, int def)
{
	const char *v = attrs_get(&srv->a, name);
	int b;

	return (v && *v && (b = conf_parse_bool(v)) >= 0) ? b : def;
}

/* Is word in the comma-separated list (case-insensitive)? */
int
smtpd_list_has(const char *list, const char *word)
{
	size_t len = strlen(word);

	while (*list != '\0') {
		while (*list == ',' || *list == ' ')
			list++;
		if (strncasecmp(list, word, len) == 0 &&
		    (list[len] == '\0' || list[len] == ',' || list[len] == ' '))
			return 1;
		list += strcspn(list, ",");
	}
	return 0;
}

static void
server_defaults(struct server *srv)
{
	const char *auth = attrs_get(&srv->a, "auth");
	const char *tls = smtpd_server_get(srv, "tls");

	if (auth == NULL)
		auth = "anonymous,plain,login";
	srv->has_anonymous = smtpd_list_has(auth, "anonymous");
	srv->has_plain = smtpd_list_has(auth, "plain");
	srv->has_login = smtpd_list_has(auth, "login");
	if (strcasecmp(tls, "required") == 0)
		srv->tls = TLS_REQUIRED;
	else if (strcasecmp(tls, "optional") == 0 || strcasecmp(tls, "yes") == 0)
		srv->tls = TLS_OPTIONAL;
	else if (*tls == '\0' && *smtpd_server_get(srv, "cert") != '\0')
		srv->tls = TLS_OPTIONAL;
	else
		srv->tls = TLS_OFF;
	srv->is_relay_authenticated = server_bool(srv, "relay-authenticated", 1);
	srv->is_filter = server_bool(srv, "filter", 0);
	srv->is_anti_spoof = server_bool(srv, "anti-spoof", 0);
	srv->is_vrfy = server_bool(srv, "vrfy", 0);
	srv->is_etrn = server_bool(srv, "etrn", 1);
	srv->is_atrn = server_bool(srv, "atrn", 0);
	/* without TLS there is no other way to log in */
	srv->is_plaintext_auth = server_bool(srv, "plaintext-auth",
	    srv->tls == TLS_OFF);
}

static void
server_limits(struct server *srv)
{
	srv->max_size = server_size(srv, "max-size", 10 << 20);
	srv->max_session_size = server_size(srv, "max-session-size", 0);
	srv->max_messages = server_size(srv, "max-messages", 0);
	srv->max_recipients = server_size(srv, "max-recipients", 5000);
	srv->max_connections = server_size(srv, "max-connections", 200);
	srv->max_per_ip = server_size(srv, "max-connections-per-ip", 50);
	srv->max_hops = server_size(srv, "max-hops",
	    conf_setting_size("max-hops", 100));
	srv->max_errors = server_size(srv, "max-errors", 20);
	/* RFC 5321 §4.5.3.2: 5 minutes for a command, 3 for a data block */
	srv->command_timeout = server_time(srv, "timeout", 300);
	srv->data_timeout = server_time(srv, "data-timeout",
	    attrs_get(&srv->a, "timeout") ? srv->command_timeout : 180);
	srv->hook_timeout = server_time(srv, "hook-timeout",
	    (int)conf_setting_time("hook-timeout", 30));
	if (srv->max_connections > 10000)
		srv->max_connections = 10000;
}

/* Reads "server:NAME" (again: a rebuilt servers.cdb is picked up). 1 found,
 * 0 no such record (defaults apply), -1 error. */
int
smtpd_server_load(struct server *srv, const char *name)
{
	char key[96];
	int rc;

	attrs_free(&srv->a);
	if (name != srv->name)
		snprintf(srv->name, sizeof srv->name, "%s", name);
	snprintf(key, sizeof key, "server:%s", name);
	if (conf_refresh(&servers_cdb) < 0)
		return -1;
	rc = conf_record(&servers_cdb, key, &srv->a);
	server_defaults(srv);
	server_limits(srv);
	return rc;
}

/* Opens servers.cdb. 0, or -1 with errno. */
int
smtpd_server_open(void)
{
	return conf_open(&servers_cdb, "servers");
}
