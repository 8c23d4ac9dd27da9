#ifndef BH_SMTPD_SERVER_H
#define BH_SMTPD_SERVER_H
/*
 * smtpd_server: the settings of a bh-smtpd virtual server, read from
 * servers.cdb "server:NAME", with their defaults.
 */
#include "attr.h"

struct smtp_command;

enum { TLS_OFF, TLS_OPTIONAL, TLS_REQUIRED };

/* One virtual server's settings (servers.cdb), with their defaults. */
struct server {
	char name[64];
	struct attrs a;
	int tls, is_relay_authenticated, is_filter, is_anti_spoof;
	int is_vrfy, is_etrn, is_atrn, is_plaintext_auth;
	int has_anonymous, has_plain, has_login;
	long long max_size, max_session_size, max_messages, max_recipients;
	long long max_connections, max_per_ip, max_hops, max_errors;
	int command_timeout, data_timeout, hook_timeout;
	/* the command table of stages/smtpd.c, which its sessions serve */
	const struct smtp_command *commands;
};

/* Opens servers.cdb. 0, or -1 with errno. */
int smtpd_server_open(void);

/* Reads "server:NAME" (again: a rebuilt servers.cdb is picked up). 1 found,
 * 0 no such record (defaults apply), -1 error. */
int smtpd_server_load(struct server *srv, const char *name);

/* A setting of the record, "" when it has none. */
const char *smtpd_server_get(const struct server *srv, const char *name);

/* The name this server gives itself: its hostname=, else settings. */
const char *smtpd_server_host(const struct server *srv);

/* Is word in the comma-separated list (case-insensitive)? */
int smtpd_list_has(const char *list, const char *word);

#endif
