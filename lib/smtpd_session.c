/*
 * smtpd_session: one bh-smtpd session: connection control, replies and
 * the protocol log, the command loop, and the files a session reads.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <udns.h>

#include "addr.h"
#include "conf.h"
#include "connector.h"
#include "directory.h"
#include "dns.h"
#include "log.h"
#include "loglevel.h"
#include "net.h"
#include "smtp.h"
#include "smtpd_hooks.h"
#include "smtpd_message.h"
#include "smtpd_session.h"

struct directory smtpd_dir;
struct connectors smtpd_connectors;
struct conf smtpd_filters_cdb;

/* ---- addresses and access lists ---- */

/* Does one of the forward addresses of name equal ip? */
static int
rdns_forward_is(const char *name, const char *ip, int family)
{
	char text[INET6_ADDRSTRLEN];
	int i, found = 0;

	if (family == AF_INET) {
		struct dns_rr_a4 *a = dns_resolve_a4(NULL, name, 0);
		for (i = 0; a != NULL && i < a->dnsa4_nrr && !found; i++)
			found = inet_ntop(AF_INET, &a->dnsa4_addr[i], text,
			    sizeof text) && strcmp(text, ip) == 0;
		free(a);
	} else {
		struct dns_rr_a6 *a = dns_resolve_a6(NULL, name, 0);
		for (i = 0; a != NULL && i < a->dnsa6_nrr && !found; i++)
			found = inet_ntop(AF_INET6, &a->dnsa6_addr[i], text,
			    sizeof text) && strcmp(text, ip) == 0;
		free(a);
	}
	return found;
}

/* The confirmed name through the DNS servers of settings "dns" (udns, as
 * remote delivery resolves). 0, or -1. */
static int
rdns_udns(const char *ip, char *out, size_t cap)
{
	struct in6_addr a6;
	struct in_addr a4;
	struct dns_rr_ptr *ptr = NULL;
	int family = AF_INET, i, rc = -1;

	if (dns_setup() < 0)
		return -1;
	if (inet_pton(AF_INET, ip, &a4) == 1)
		ptr = dns_resolve_a4ptr(NULL, &a4);
	else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		family = AF_INET6;
		ptr = dns_resolve_a6ptr(NULL, &a6);
	}
	for (i = 0; ptr != NULL && i < ptr->dnsptr_nrr && i < 4 && rc < 0; i++)
		if (rdns_forward_is(ptr->dnsptr_ptr[i], ip, family))
			rc = snprintf(out, cap, "%s", ptr->dnsptr_ptr[i]) <
			    (int)cap ? 0 : -1;
	free(ptr);
	return rc;
}

/* The peer's host name, confirmed by a forward lookup (the book's
 * connection control by domain): through settings dns when it is set,
 * else the system's resolver (which reads /etc/hosts too). Looked up
 * once, and only when a list holds a domain entry. */
static const char *
session_rdns(struct session *s)
{
	char servers[256];
	int rc;

	if (s->has_rdns)
		return s->rdns;
	s->has_rdns = 1;
	if (conf_setting("dns", "", servers, sizeof servers) == 1 && *servers)
		rc = rdns_udns(s->peer, s->rdns, sizeof s->rdns);
	else
		rc = net_confirmed_name(s->peer, s->rdns, sizeof s->rdns);
	if (rc < 0)
		s->rdns[0] = '\0';
	return s->rdns;
}

/* Does the peer match an access list of CIDRs, IPs and domain names? */
static int
access_match(struct session *s, const char *list)
{
	char entry[300];
	const char *p = list;

	while (*p != '\0') {
		size_t len = strcspn(p, ", ");
		if (len > 0 && len < sizeof entry) {
			memcpy(entry, p, len);
			entry[len] = '\0';
			if (isdigit((unsigned char)entry[0]) || strchr(entry, ':')) {
				if (net_cidr_match(entry, s->peer))
					return 1;
			} else if (*session_rdns(s) != '\0' &&
			    addr_domain_in(s->rdns, entry[0] == '.' ? entry + 1 : entry))
				return 1;
		}
		p += len;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

/* ---- replies and the protocol log ---- */

static void
trace_line(int is_reply, const char *line)
{
	log_event("protocol", "pid=%d %s %s", (int)getpid(),
	    is_reply ? "out" : "in", log_quote(line));
}

/* The protocol log is on at log-level max for category smtp (lib/loglevel:
 * "log-level smtp=max" or a bare "max"). */
static void
trace_setup(void)
{
	smtp_trace = loglevel("smtp") == LOGLEVEL_MAX ? trace_line : NULL;
}

/* A refusal that counts toward max-errors; past it the session ends with
 * 421 (a client looping on errors is not served forever). */
int
smtpd_reply_error(struct session *s, int code, const char *ecode, const char *fmt,
    ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	smtp_reply(s->net, code, ecode, "%s", text);
	if (++s->nerrors >= s->srv->max_errors) {
		smtp_reply(s->net, 421, "4.7.0", "%s Too many errors, closing "
		    "connection", smtpd_server_host(s->srv));
		s->is_closing = 1;
	}
	return 0;
}

int
smtpd_reply_smtp_error(struct session *s, const struct smtp_error *err)
{
	return smtpd_reply_error(s, err->code, err->ecode, "%s", err->text);
}

/* ---- the session ---- */

/* SIGTERM in a session: a session waiting for its next command closes
 * with 421 4.3.2; one in the middle of a mail transaction finishes it
 * first. SIGTERM stays blocked except while waiting for input. */
volatile sig_atomic_t smtpd_session_stopping;

static void
on_session_stop(int sig)
{
	(void)sig;
	smtpd_session_stopping = 1;
}

void
smtpd_session_signals(void)
{
	struct sigaction sa;
	sigset_t term;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_session_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
}

/* The protocol log never shows AUTH secrets. */
static void
trace_command(const char *line)
{
	char masked[64];

	if (smtp_trace == NULL)
		return;
	if (strncasecmp(line, "AUTH ", 5) == 0 && strchr(line + 5, ' ')) {
		snprintf(masked, sizeof masked, "%.*s ***",
		    (int)(strchr(line + 5, ' ') - line), line);
		smtp_trace(0, masked);
	} else
		smtp_trace(0, line);
}

/* One command. 0 go on, -1 the session ends. */
static int
session_command(struct session *s, char *line, ssize_t n)
{
	const struct smtp_command *cmd;
	char *args;

	/* settings.cdb is looked at once per command; the server record,
	 * directory, connectors and filters once per connection */
	conf_mark();
	if (n == NET_TOOLONG)
		return smtpd_reply_error(s, 500, "5.5.2", "Line too long");
	if (n == NET_BARE)
		return smtpd_reply_error(s, 500, "5.5.2", "Bare CR or LF not allowed; "
		    "lines end in CRLF");
	if ((cmd = smtp_command_find(s->srv->commands, line, &args)) == NULL)
		return smtpd_reply_error(s, 500, "5.5.2", "Command unrecognized");
	return cmd->run(s, args);
}

static void
session_loop(struct session *s)
{
	char line[LINE_MAX_CMD];
	ssize_t n;

	while (!s->is_closing) {
		s->net->timeout_sec = s->srv->command_timeout;
		s->net->stop = s->has_mail ? NULL : &smtpd_session_stopping;
		if ((smtpd_session_stopping && !s->has_mail) ||
		    (n = net_line(s->net, line, sizeof line)) == -1) {
			if (smtpd_session_stopping && !s->has_mail)
				smtp_reply(s->net, 421, "4.3.2", "%s Service shutting "
				    "down, closing connection", smtpd_server_host(s->srv));
			else
				smtp_reply(s->net, 421, "4.4.2", "%s Error: timeout "
				    "or connection lost", smtpd_server_host(s->srv));
			break;
		}
		trace_command(line);
		if (session_command(s, line, n) < 0)
			break;
	}
}

/* RFC 5321 §3.1: after a 554 greeting, only QUIT is served. */
static void
session_quit_only(struct session *s)
{
	char line[LINE_MAX_CMD];
	int i;

	for (i = 0; i < 20 && net_line(s->net, line, sizeof line) != -1; i++) {
		if (strcasecmp(line, "QUIT") == 0) {
			smtp_reply(s->net, 221, "2.0.0", "%s closing connection",
			    smtpd_server_host(s->srv));
			return;
		}
		smtp_reply(s->net, 503, "5.7.1", "Connection refused; send QUIT");
	}
}

/* Connection control: 0 serve, -1 refused (sent). */
static int
session_admit(struct session *s)
{
	const char *allow = smtpd_server_get(s->srv, "allow-from");
	const char *deny = smtpd_server_get(s->srv, "deny-from");

	if ((*allow && !access_match(s, allow)) || (*deny && access_match(s, deny))) {
		log_event("refused", "peer=%s server=%s", log_quote(s->peer),
		    log_quote(s->srv->name));
		smtp_reply(s->net, 554, "5.7.1", "%s Access denied",
		    smtpd_server_host(s->srv));
		session_quit_only(s);
		return -1;
	}
	if (smtpd_hooks_run(s, "connect", "", -1) < 0) {
		if (s->net->olen > 0 && s->net->out[0] == '5')
			session_quit_only(s);
		return -1;
	}
	return 0;
}

/* The files a session reads, opened by a process's first session and
 * brought up to date (a rebuilt .cdb) by each later one. */
static void
session_open_config(void)
{
	static int is_dir_open, is_connectors_open, is_filters_open;

	if (is_dir_open && directory_refresh(&smtpd_dir) < 0) {
		directory_close(&smtpd_dir);
		is_dir_open = 0;
	}
	if (!is_dir_open && !(is_dir_open = directory_open(&smtpd_dir) == 0))
		log_event("warning", "msg=\"directory unavailable\" error=%s",
		    log_quote(strerror(errno)));
	if (is_connectors_open && connectors_refresh(&smtpd_connectors) < 0) {
		connectors_free(&smtpd_connectors);
		is_connectors_open = 0;
	}
	if (!is_connectors_open &&
	    !(is_connectors_open = connectors_open(&smtpd_connectors) == 0))
		log_event("warning", "msg=\"connectors unavailable\"");
	if (is_filters_open)
		conf_refresh(&smtpd_filters_cdb);
	else
		is_filters_open = conf_open(&smtpd_filters_cdb, "filters") == 0;
	trace_setup();
}

void
smtpd_session_run(struct server *srv, int rfd, int wfd, const char *peer)
{
	static struct net net;
	static struct session s;
	const char *banner = smtpd_server_get(srv, "banner");

	/* a session process serves one connection after another: nothing of
	 * the last one may remain */
	if (s.tls_ctx != NULL)
		SSL_CTX_free(s.tls_ctx);
	memset(&s, 0, sizeof s);
	conf_mark();
	s.srv = srv;
	s.net = &net;
	s.fd = -1;
	snprintf(s.peer, sizeof s.peer, "%s", peer);
	net_init(&net, rfd, wfd, srv->command_timeout);
	session_open_config();
	if (loglevel_on("smtp", LOGLEVEL_MEDIUM))
		log_event("connect", "peer=%s server=%s", log_quote(peer),
		    log_quote(srv->name));
	s.is_relay_client = access_match(&s, smtpd_server_get(srv, "relay-from"));
	if (session_admit(&s) == 0) {
		smtp_reply(&net, 220, NULL, "%s ESMTP %s", smtpd_server_host(srv),
		    *banner ? banner : "bridgehead");
		session_loop(&s);
	}
	smtpd_transaction_reset(&s);
	net_flush(&net);
	net_tls_end(&net);
	if (loglevel_on("smtp", LOGLEVEL_MEDIUM))
		log_event("disconnect", "peer=%s messages=%lld", log_quote(peer),
		    s.nmessages);
}
