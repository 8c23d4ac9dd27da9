/*
 * bh-smtpd: an SMTP virtual server (RFC 5321 with PIPELINING, SIZE, DSN,
 * 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8, STARTTLS, AUTH,
 * ENHANCEDSTATUSCODES, ETRN, ATRN).
 *
 * usage   bh-smtpd [-s SERVER]     listen on the server's listen= addresses;
 *                                  session processes serve the connections
 *         bh-smtpd [-s SERVER] -i  one session on stdin/stdout (inetd style;
 *                                  the peer is $TCPREMOTEIP when not a socket)
 * reads   the SMTP session; spool/remote/{hold,retry}/ (ETRN, ATRN)
 * writes  spool/msg/ID (the message with our Received: line first) and
 *         spool/incoming/new/ID (its envelope), both fsync'ed before the 250;
 *         spool/remote/new/ (ETRN moves); log/track (received)
 * runs    protocol hooks (hooks=); bh-remote --turn after ATRN
 * config  cdb/servers.cdb "server:NAME" (default "default"), domains.cdb,
 *         directory.cdb, connectors.cdb, filters.cdb, settings.cdb
 *         (hostname, max-hops, postmaster, unresolved-host, log-level)
 * exit    0 after SIGTERM once every session ended; 100 bad usage or no such
 *         server; 111 cannot listen
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <udns.h>

#include "addr.h"
#include "attr.h"
#include "buf.h"
#include "conf.h"
#include "connector.h"
#include "content.h"
#include "directory.h"
#include "dns.h"
#include "envelope.h"
#include "hook.h"
#include "id.h"
#include "log.h"
#include "priv.h"
#include "loglevel.h"
#include "net.h"
#include "root.h"
#include "smtp.h"
#include "spare.h"
#include "spool.h"
#include "syncall.h"
#include "tls.h"
#include "track.h"

enum { TLS_OFF, TLS_OPTIONAL, TLS_REQUIRED };
enum { LINE_MAX_CMD = 4096, LISTEN_MAX = 16, DATA_LINE_MAX = 1000 };

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
};

/* The header facts we keep while the message streams by. */
struct header_scan {
	int is_done, at_bol, nreceived;
	size_t len;
	char line[1024];
	char msgid[256], subject[256];
};

struct session {
	struct server *srv;
	struct net *net;
	char peer[INET6_ADDRSTRLEN], rdns[256];
	int has_rdns;
	char helo[256];
	int is_ehlo, is_relay_client;
	char auth_user[256], auth_box[256];
	char tls_desc[160];
	SSL_CTX *tls_ctx;
	int nerrors, nauth_failures, is_closing;
	long long nmessages;
	unsigned long long nbytes;
	/* the mail transaction */
	int has_mail;
	struct smtp_mail_params mail;
	struct envelope env;
	/* the message being received */
	char id[ID_MAX];
	int fd, is_oversize, is_write_failed, has_bdat;
	unsigned long long msg_bytes, content_bytes;
	struct header_scan hdr;
};

static struct directory dir;
static struct connectors connectors;
static struct conf servers_cdb, filters_cdb;

/* ---- settings of a virtual server ---- */

static const char *
server_get(const struct server *srv, const char *name)
{
	const char *v = attrs_get(&srv->a, name);

	return v ? v : "";
}

/* The name this server gives itself: its hostname=, else settings. */
static const char *
server_host(const struct server *srv)
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
static int
list_has(const char *list, const char *word)
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
	const char *tls = server_get(srv, "tls");

	if (auth == NULL)
		auth = "anonymous,plain,login";
	srv->has_anonymous = list_has(auth, "anonymous");
	srv->has_plain = list_has(auth, "plain");
	srv->has_login = list_has(auth, "login");
	if (strcasecmp(tls, "required") == 0)
		srv->tls = TLS_REQUIRED;
	else if (strcasecmp(tls, "optional") == 0 || strcasecmp(tls, "yes") == 0)
		srv->tls = TLS_OPTIONAL;
	else if (*tls == '\0' && *server_get(srv, "cert") != '\0')
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
static int
server_load(struct server *srv, const char *name)
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
static int
reply_error(struct session *s, int code, const char *ecode, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
reply_error(struct session *s, int code, const char *ecode, const char *fmt,
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
		    "connection", server_host(s->srv));
		s->is_closing = 1;
	}
	return 0;
}

static int
reply_smtp_error(struct session *s, const struct smtp_error *err)
{
	return reply_error(s, err->code, err->ecode, "%s", err->text);
}

/* ---- the message header: hops, Message-ID, Subject ---- */

static void
header_field(struct header_scan *h)
{
	const char *v;
	char *dst = NULL;

	h->line[h->len] = '\0';
	if (strncasecmp(h->line, "Received:", 9) == 0)
		h->nreceived++;
	else if (strncasecmp(h->line, "Message-ID:", 11) == 0 && !h->msgid[0])
		dst = h->msgid;
	else if (strncasecmp(h->line, "Subject:", 8) == 0 && !h->subject[0])
		dst = h->subject;
	if (dst != NULL) {
		v = strchr(h->line, ':') + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		snprintf(dst, sizeof h->msgid, "%s", v);
	}
	h->len = 0;
}

/* Feeds message bytes; stops looking at the first empty line. */
static void
header_feed(struct header_scan *h, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && !h->is_done; i++) {
		char c = p[i];
		if (h->at_bol) {
			h->at_bol = 0;
			if (c == '\r' || c == '\n') {
				header_field(h);
				h->is_done = 1;
				break;
			}
			if (c != ' ' && c != '\t' && h->len > 0)
				header_field(h);
		}
		if (c == '\n')
			h->at_bol = 1;
		else if (c != '\r' && h->len + 1 < sizeof h->line)
			h->line[h->len++] = c == '\t' ? ' ' : c;
	}
}

/* ---- protocol hooks ---- */

static void
hook_env(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "%s=%s", name, value ? value : "");
	buf_addc(b, '\0');
}

/* The facts a hook sees, as a NUL-separated list in b; envp points in. */
static void
hook_facts(struct session *s, const char *event, const char *rcpt,
    struct buf *b, char **envp, size_t cap)
{
	struct buf rcpts = BUF_INIT;
	char size[32];
	size_t i, n = 0;

	for (i = 0; i < s->env.nrcpt; i++)
		buf_printf(&rcpts, "%s%s", i ? " " : "", s->env.rcpt[i].addr);
	snprintf(size, sizeof size, "%llu", s->content_bytes);
	hook_env(b, "PATH", "/usr/local/bin:/usr/bin:/bin");
	hook_env(b, "BH_ROOT", root_dir());
	hook_env(b, "BH_EVENT", event);
	hook_env(b, "BH_SERVER", s->srv->name);
	hook_env(b, "BH_PEER", s->peer);
	hook_env(b, "BH_HELO", s->helo);
	hook_env(b, "BH_TLS", s->tls_desc);
	hook_env(b, "BH_AUTH", s->auth_user);
	hook_env(b, "BH_SENDER", s->has_mail ? s->env.sender : "");
	hook_env(b, "BH_RCPT", rcpt);
	hook_env(b, "BH_RCPTS", rcpts.data);
	hook_env(b, "BH_ID", strcmp(event, "data") == 0 ? s->id : "");
	hook_env(b, "BH_SIZE", strcmp(event, "data") == 0 ? size : "");
	buf_free(&rcpts);
	for (i = 0; i < b->len && n + 1 < cap; i += strlen(b->data + i) + 1)
		envp[n++] = b->data + i;
	envp[n] = NULL;
}

/* A hook's answer as a reply: its own line when that is a reply of the
 * right class ("550 5.7.1 text"), else ours with its line as the text. */
static void
hook_reply(struct session *s, int rc, const char *line, const char *hook,
    const char *event)
{
	int is_perm = rc == 100;
	char cls = is_perm ? '5' : '4';

	log_event("hook", "hook=%s event=%s exit=%d line=%s", log_quote(hook),
	    event, rc, log_quote(line));
	if (strcmp(event, "connect") == 0) {
		/* greetings have their own codes: 554 or 421 */
		const char *text = line[0] == cls && line[3] == ' ' &&
		    strchr(line + 4, ' ') ? strchr(line + 4, ' ') + 1 : line;
		smtp_reply(s->net, is_perm ? 554 : 421, is_perm ? "5.7.1" : "4.7.0",
		    "%s %s", server_host(s->srv), *text ? text : is_perm ?
		    "Access denied" : "Try again later");
		return;
	}
	if (line[0] == cls && isdigit((unsigned char)line[1]) &&
	    isdigit((unsigned char)line[2]) && line[3] == ' ' && line[4] == cls &&
	    line[5] == '.') {
		const char *text = strchr(line + 4, ' ');
		char ecode[16];
		size_t elen = text ? (size_t)(text - line - 4) : 0;
		if (text && elen < sizeof ecode) {
			memcpy(ecode, line + 4, elen);
			ecode[elen] = '\0';
			reply_error(s, atoi(line), ecode, "%s", text + 1);
			return;
		}
	}
	if (rc == 100)
		reply_error(s, 550, "5.7.1", "%s", *line ? line : "Rejected by policy");
	else if (rc == 111)
		reply_error(s, 451, "4.7.1", "%s", *line ? line : "Try again later");
	else
		reply_error(s, 451, "4.3.0", "Temporary failure in a protocol hook");
}

/* Runs the server's hooks for an event in order. 0 every hook accepted;
 * -1 one refused and the reply was sent. */
static int
hooks_run(struct session *s, const char *event, const char *rcpt, int stdin_fd)
{
	const char *p = server_get(s->srv, "hooks");
	char hook[PATH_MAX], path[PATH_MAX], line[512], *envp[24];
	struct buf facts = BUF_INIT;
	int rc = 0;

	while (*p != '\0' && rc == 0) {
		size_t len = strcspn(p, ",");
		snprintf(hook, sizeof hook, "%.*s", (int)len, p);
		p += len + (p[len] == ',');
		if (hook[0] == '\0')
			continue;
		if (hook[0] == '/')
			snprintf(path, sizeof path, "%s", hook);
		else if (root_path(path, sizeof path, "%s", hook) < 0)
			continue;
		if (facts.len == 0)
			hook_facts(s, event, rcpt, &facts, envp, 24);
		if (stdin_fd >= 0)
			lseek(stdin_fd, 0, SEEK_SET);
		rc = hook_run(path, event, envp, stdin_fd, s->srv->hook_timeout,
		    line, sizeof line);
		if (rc != 0)
			hook_reply(s, rc, line, hook, event);
	}
	buf_free(&facts);
	return rc == 0 ? 0 : -1;
}

/* ---- the mail transaction and the message ---- */

static void
message_abort(struct session *s)
{
	if (s->fd >= 0)
		content_abort(s->fd, s->id);
	s->fd = -1;
	s->has_bdat = 0;
}

static void
transaction_reset(struct session *s)
{
	message_abort(s);
	envelope_free(&s->env);
	memset(&s->mail, 0, sizeof s->mail);
	s->has_mail = 0;
}

/* "with" of the Received: line, RFC 3848. */
static const char *
received_protocol(const struct session *s)
{
	static const char *names[] = { "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA",
	    "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA" };

	if (!s->is_ehlo)
		return "SMTP";
	return names[(s->auth_user[0] != '\0') + 2 * (s->tls_desc[0] != '\0') +
	    4 * (s->mail.has_smtputf8 != 0)];
}

static int
received_line(struct session *s, struct buf *b)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_printf(b, "Received: from %s (%s%s[%s])\r\n", s->helo,
	    s->rdns, s->rdns[0] ? " " : "", s->peer[0] ? s->peer : "unknown");
	buf_printf(b, "\tby %s (bridgehead %s) with %s id %s\r\n",
	    server_host(s->srv), s->srv->name, received_protocol(s), s->id);
	if (s->tls_desc[0] != '\0')
		buf_printf(b, "\t(using %s)\r\n", s->tls_desc);
	if (s->auth_user[0] != '\0')
		buf_printf(b, "\t(authenticated as %s)\r\n", s->auth_user);
	/* the date always follows on a continuation line of its own */
	if (s->env.nrcpt == 1)
		buf_printf(b, "\tfor <%s>", s->env.rcpt[0].addr);
	else
		buf_addc(b, '\t');
	return buf_printf(b, "; %s\r\n", date);
}

/* Creates spool/msg/ID with our Received: line. 0, or -1 with errno. */
static int
message_begin(struct session *s)
{
	struct buf b = BUF_INIT;
	int err;

	id_new(s->id, sizeof s->id);
	memset(&s->hdr, 0, sizeof s->hdr);
	s->hdr.at_bol = 1;
	s->msg_bytes = s->content_bytes = 0;
	s->is_oversize = s->is_write_failed = 0;
	if ((s->fd = content_create_over(s->id)) < 0)
		return -1;
	if (received_line(s, &b) < 0 || write_all(s->fd, b.data, b.len) < 0) {
		err = errno;
		buf_free(&b);
		message_abort(s);
		errno = err;
		return -1;
	}
	s->content_bytes = b.len;
	buf_free(&b);
	return 0;
}

/* The most a message may hold now: max-size, and what is left of
 * max-session-size. 0 = no limit. */
static unsigned long long
message_limit(const struct session *s)
{
	unsigned long long limit = s->srv->max_size, left;

	if (s->srv->max_session_size > 0) {
		left = (unsigned long long)s->srv->max_session_size > s->nbytes ?
		    s->srv->max_session_size - s->nbytes : 0;
		if (limit == 0 || left < limit)
			limit = left ? left : 1;
	}
	return limit;
}

/* Where DATA and BDAT bytes go: straight to the content file in the
 * pieces the reader hands over (no per-line system calls); past the size
 * limit or a write error the rest is read and dropped. */
static int
message_sink(void *arg, const char *p, size_t len)
{
	struct session *s = arg;
	unsigned long long limit = message_limit(s);

	header_feed(&s->hdr, p, len);
	s->msg_bytes += len;
	if (limit > 0 && s->msg_bytes > limit)
		s->is_oversize = 1;
	if (s->is_oversize || s->is_write_failed || s->fd < 0)
		return 0;
	if (write_all(s->fd, p, len) < 0) {
		log_event("warning", "msg=\"spool write failed\" id=%s error=%s",
		    s->id, log_quote(strerror(errno)));
		s->is_write_failed = 1;
	} else
		s->content_bytes += len;
	return 0;
}

static int
envelope_fields(struct session *s)
{
	char n[32];
	struct envelope *e = &s->env;
	int rc = 0;

	snprintf(n, sizeof n, "%lld", (long long)time(NULL));
	rc |= envelope_set(e, "arrived", n);
	snprintf(n, sizeof n, "%llu", s->content_bytes);
	rc |= envelope_set(e, "size", n);
	if (s->hdr.msgid[0])
		rc |= envelope_set(e, "msgid", s->hdr.msgid);
	if (s->hdr.subject[0])
		rc |= envelope_set(e, "subject", s->hdr.subject);
	if (s->mail.body[0])
		rc |= envelope_set(e, "body", s->mail.body);
	if (s->mail.ret[0])
		rc |= envelope_set(e, "ret", s->mail.ret);
	if (s->mail.envid[0])
		rc |= envelope_set(e, "envid", s->mail.envid);
	if (s->mail.has_smtputf8)
		rc |= envelope_set(e, "smtputf8", "yes");
	if (s->auth_user[0]) {
		rc |= envelope_set(e, "auth", s->auth_user);
		rc |= envelope_set(e, "submitter", s->auth_box);
	}
	rc |= envelope_set(e, "helo", s->helo);
	if (s->peer[0])
		rc |= envelope_set(e, "peer", s->peer);
	rc |= envelope_set(e, "server", s->srv->name);
	return rc;
}

static struct spool *
incoming_spool(void)
{
	static struct spool incoming;
	static int is_open;

	if (!is_open && spool_open(&incoming, "incoming") < 0)
		return NULL;
	is_open = 1;
	return &incoming;
}

/* The envelope's text into b. 0, or -1 (ENOMEM). */
static int
message_envelope(struct session *s, struct buf *b)
{
	if (envelope_fields(s) < 0 || envelope_format(&s->env, b) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* Hands the envelope to spool/incoming (fsync'ed). 0, or -1 with errno. */
static int
message_queue(struct session *s)
{
	struct spool *in = incoming_spool();
	struct buf b = BUF_INIT;
	int rc = -1, err;

	if (in != NULL && message_envelope(s, &b) == 0)
		rc = spool_handover(in, s->id, b.data, b.len);
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

/* The content (fd, still open) and its envelope made durable together:
 * the content, its entry in spool/msg and the envelope written into
 * incoming/tmp are fsync'ed at the same time (lib/syncall), then the
 * envelope is renamed into incoming/new and that directory fsync'ed. The
 * same guarantee as content_commit and message_queue one after the other,
 * with two flushes waited for instead of four. Closes fd. 0, or -1 with
 * errno (nothing handed over). */
static int
message_commit(struct session *s, int fd)
{
	struct spool *in = incoming_spool();
	struct buf b = BUF_INIT;
	int fds[3] = { fd, content_dirfd(), -1 }, rc = -1, err;

	if (in == NULL || fds[1] < 0 || message_envelope(s, &b) < 0)
		goto out;
	/* a reused file is written over and cut: emptying it first would
	 * free its block (and discard it) only to allocate one again */
	if ((fds[2] = spare_take_envelope(in->tmpfd, s->id, 1)) < 0)
		fds[2] = openat(in->tmpfd, s->id, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600);
	if (fds[2] < 0 || write_all(fds[2], b.data, b.len) < 0 ||
	    content_cut(fds[2]) < 0 || content_cut(fd) < 0 ||
	    syncall(fds, 3) < 0)
		goto out;
	err = close(fds[2]);
	fds[2] = -1;
	if (err < 0 || renameat(in->tmpfd, s->id, in->newfd, s->id) < 0)
		goto out;
	rc = spool_fsync_dir(in->newfd);
out:
	err = errno;
	close(fd);
	if (fds[2] >= 0)
		close(fds[2]);
	if (rc < 0 && in != NULL)
		unlinkat(in->tmpfd, s->id, 0);
	buf_free(&b);
	errno = err;
	return rc;
}

static void
message_accepted(struct session *s)
{
	size_t i;

	for (i = 0; i < s->env.nrcpt; i++)
		track("received", s->id, &s->env, &s->env.rcpt[i],
		    "250 2.6.0 Queued mail for delivery");
	log_event("received", "id=%s sender=%s nrcpt=%zu size=%llu peer=%s "
	    "server=%s", s->id, log_quote(*s->env.sender ? s->env.sender : "<>"),
	    s->env.nrcpt, s->content_bytes, log_quote(s->peer),
	    log_quote(s->srv->name));
	s->nmessages++;
	s->nbytes += s->msg_bytes;
	smtp_reply(s->net, 250, "2.6.0", "<%s> Queued mail for delivery", s->id);
}

/* Refusals that the whole message decides. 0 none, -1 one was sent. */
static int
message_check(struct session *s, const struct net_data *d)
{
	if (!s->hdr.is_done && s->hdr.len > 0)
		header_field(&s->hdr);	/* a message that is all header */
	if (d != NULL && d->has_bare)
		return reply_error(s, 554, "5.6.0", "Message refused: bare CR or "
		    "LF in data (lines must end in CRLF)"), -1;
	if (d != NULL && d->has_long_line)
		return reply_error(s, 554, "5.6.0", "Message refused: line longer "
		    "than %d octets", DATA_LINE_MAX), -1;
	if (s->is_oversize) {
		/* past max-session-size the session has had its share: the
		 * next MAIL is answered 421 */
		if (s->srv->max_session_size > 0 && s->nbytes + s->msg_bytes >
		    (unsigned long long)s->srv->max_session_size)
			s->nbytes = s->srv->max_session_size;
		return reply_error(s, 552, "5.3.4", "Message size exceeds fixed "
		    "maximum message size"), -1;
	}
	if (s->hdr.nreceived + 1 > s->srv->max_hops)
		return reply_error(s, 554, "5.4.6", "Too many hops (%d Received: "
		    "lines)", s->hdr.nreceived), -1;
	return 0;
}

/* Content to disk, the data hooks, the envelope to disk. 0 queued, or -1
 * refused (reply sent; the caller removes the content). */
/* A hand-over that failed: 452, and the message is not taken. -1. */
static int
message_unstored(struct session *s)
{
	log_event("warning", "msg=\"spool hand-over failed\" id=%s error=%s",
	    s->id, log_quote(strerror(errno)));
	reply_error(s, 452, "4.3.1", "Insufficient system storage");
	return -1;
}

/* With data hooks: the content is committed first (they read it), the
 * envelope handed over after they agreed. 0, or -1 (a reply was sent). */
static int
message_hooked(struct session *s, int fd)
{
	int rc;

	if (content_commit(fd) < 0)
		return message_unstored(s);
	fd = content_open(s->id);
	rc = hooks_run(s, "data", "", fd);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		return -1;
	return message_queue(s) < 0 ? message_unstored(s) : 0;
}

static int
message_store(struct session *s, const struct net_data *d)
{
	int fd = s->fd;

	if (message_check(s, d) < 0)
		return -1;
	s->fd = -1;
	if (s->is_write_failed) {	/* logged when it happened */
		close(fd);
		return reply_error(s, 452, "4.3.1", "Insufficient system "
		    "storage"), -1;
	}
	if (*server_get(s->srv, "hooks") != '\0')
		return message_hooked(s, fd);
	return message_commit(s, fd) < 0 ? message_unstored(s) : 0;
}

/* The message is all here: whatever happens, the transaction is over
 * afterwards, and a refused message leaves nothing behind. */
static void
message_finish(struct session *s, const struct net_data *d)
{
	if (message_store(s, d) == 0)
		message_accepted(s);
	else {
		message_abort(s);
		content_unlink(s->id);
	}
	transaction_reset(s);
}

/* ---- HELO, EHLO ---- */

static int
helo_valid(const char *arg)
{
	const char *p;

	if (*arg == '\0' || strlen(arg) > 255)
		return 0;
	for (p = arg; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p > 126)
			return 0;
	return 1;
}

static int
auth_offered(const struct session *s)
{
	return (s->srv->has_plain || s->srv->has_login) &&
	    (s->tls_desc[0] != '\0' || s->srv->is_plaintext_auth);
}

static int
tls_offered(const struct session *s)
{
	return s->srv->tls != TLS_OFF && s->tls_desc[0] == '\0' &&
	    *server_get(s->srv, "cert") != '\0';
}

static void
ehlo_reply(struct session *s)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s Hello %s [%s]\n", server_host(s->srv), s->helo,
	    s->peer[0] ? s->peer : "unknown");
	buf_printf(&b, "SIZE %lld\nPIPELINING\nDSN\nENHANCEDSTATUSCODES\n"
	    "8BITMIME\nBINARYMIME\nCHUNKING\nSMTPUTF8\n", s->srv->max_size);
	if (tls_offered(s))
		buf_adds(&b, "STARTTLS\n");
	if (auth_offered(s))
		buf_printf(&b, "AUTH%s%s\n", s->srv->has_plain ? " PLAIN" : "",
		    s->srv->has_login ? " LOGIN" : "");
	if (s->srv->is_etrn)
		buf_adds(&b, "ETRN\n");
	if (s->srv->is_atrn)
		buf_adds(&b, "ATRN\n");
	buf_adds(&b, "HELP");
	smtp_reply(s->net, 250, NULL, "%s", b.data ? b.data : "");
	buf_free(&b);
}

static int
helo_common(struct session *s, char *args, int is_ehlo)
{
	if (!helo_valid(args))
		return reply_error(s, 501, "5.5.4", "Syntax: %s hostname",
		    is_ehlo ? "EHLO" : "HELO");
	transaction_reset(s);
	snprintf(s->helo, sizeof s->helo, "%s", args);
	s->is_ehlo = is_ehlo;
	if (is_ehlo)
		ehlo_reply(s);
	else
		smtp_reply(s->net, 250, NULL, "%s Hello %s [%s]", server_host(s->srv),
		    s->helo, s->peer[0] ? s->peer : "unknown");
	return 0;
}

static int
cmd_ehlo(void *v, char *args)
{
	return helo_common(v, args, 1);
}

static int
cmd_helo(void *v, char *args)
{
	return helo_common(v, args, 0);
}

/* ---- MAIL ---- */

static int
sender_filtered(const char *sender)
{
	char key[ADDR_MAX + 16], *v;
	int rc;

	if (*sender == '\0' || conf_refresh(&filters_cdb) < 0)
		return 0;
	snprintf(key, sizeof key, "filter:");
	addr_key(sender, key + 7, sizeof key - 7);
	if ((rc = conf_get(&filters_cdb, key, &v, NULL)) == 1)
		free(v);
	if (rc == 1)
		return 1;
	snprintf(key, sizeof key, "filter:@");
	addr_key(addr_domain(sender), key + 8, sizeof key - 8);
	if ((rc = conf_get(&filters_cdb, key, &v, NULL)) == 1)
		free(v);
	return rc == 1;
}

/* Parses a path of MAIL or RCPT: UTF-8 only in a transaction that
 * declared SMTPUTF8 (553 5.6.7 otherwise, RFC 6531 §3.5). 0, or -1 with
 * the reply sent. */
static int
address_parse(struct session *s, const char *path, char *out, size_t cap,
    int flags, const char *ecode, const char *what)
{
	if (s->mail.has_smtputf8)
		flags |= ADDR_UTF8;
	if (addr_parse(path, out, cap, flags) == 0)
		return 0;
	if (!s->mail.has_smtputf8 && !addr_is_ascii(path) &&
	    addr_parse(path, out, cap, flags | ADDR_UTF8) == 0)
		return reply_error(s, 553, "5.6.7", "Non-ASCII %s address needs "
		    "SMTPUTF8", what), -1;
	return reply_error(s, 501, ecode, "Bad %s address syntax", what), -1;
}

/* Session-wide refusals of MAIL. 0 none, -1 one was sent. */
static int
mail_allowed(struct session *s)
{
	if (s->helo[0] == '\0')
		return reply_error(s, 503, "5.5.1", "Send HELO or EHLO first"), -1;
	if (s->has_mail)
		return reply_error(s, 503, "5.5.1", "Nested MAIL command"), -1;
	if (s->srv->tls == TLS_REQUIRED && s->tls_desc[0] == '\0')
		return reply_error(s, 530, "5.7.0", "Must issue a STARTTLS "
		    "command first"), -1;
	if (!s->srv->has_anonymous && s->auth_user[0] == '\0')
		return reply_error(s, 530, "5.7.0", "Authentication required"), -1;
	if ((s->srv->max_messages > 0 && s->nmessages >= s->srv->max_messages) ||
	    (s->srv->max_session_size > 0 &&
	    s->nbytes >= (unsigned long long)s->srv->max_session_size)) {
		smtp_reply(s->net, 421, "4.7.0", "%s Too much mail in this "
		    "session, closing connection", server_host(s->srv));
		s->is_closing = 1;
		return -1;
	}
	return 0;
}

/* Refusals that depend on the sender. 0 none, -1 one was sent. */
static int
mail_policy(struct session *s, const char *sender)
{
	unsigned long long limit = message_limit(s);

	if (limit > 0 && s->mail.size > limit)
		return reply_error(s, 552, "5.3.4", "Message size exceeds fixed "
		    "maximum message size"), -1;
	if (s->srv->is_filter && sender_filtered(sender))
		return reply_error(s, 550, "5.7.1", "<%s>: Sender address "
		    "rejected", sender), -1;
	if (s->srv->is_anti_spoof && *sender != '\0' && s->auth_user[0] == '\0' &&
	    directory_domain(&dir, addr_domain(sender)) == DIRECTORY_AUTHORITATIVE)
		return reply_error(s, 550, "5.7.1", "<%s>: Sender address "
		    "rejected: authentication required for this domain", sender), -1;
	return 0;
}

static int
cmd_mail(void *v, char *args)
{
	struct session *s = v;
	char path[ADDR_MAX + 1], sender[ADDR_MAX];
	const char *p = args;
	struct smtp_error err;

	if (mail_allowed(s) < 0)
		return 0;
	if (smtp_path(&p, "FROM", path, sizeof path) < 0)
		return reply_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	if (smtp_mail_parse(p, &s->mail, &err) < 0)
		return reply_smtp_error(s, &err);
	sender[0] = '\0';
	if (path[0] != '\0' && address_parse(s, path, sender, sizeof sender,
	    0, "5.1.7", "sender") < 0)
		return 0;
	directory_refresh(&dir);
	connectors_refresh(&connectors);
	if (mail_policy(s, sender) < 0)
		return 0;
	if (envelope_set_sender(&s->env, sender) < 0)
		return reply_error(s, 452, "4.3.1", "Out of memory");
	s->has_mail = 1;
	if (hooks_run(s, "mail", "", -1) < 0) {
		transaction_reset(s);
		return 0;
	}
	smtp_reply(s->net, 250, "2.1.0", "Sender <%s> OK", sender);
	return 0;
}

/* ---- RCPT ---- */

/* Do we take mail for domain from anyone? 1 authoritative, 2 shared or a
 * connector with relay=yes, 0 no. */
static int
domain_accepted(const char *domain)
{
	size_t i;
	int kind;

	if (*domain == '\0' || *domain == '[')
		return 0;
	if ((kind = directory_domain(&dir, domain)) == DIRECTORY_AUTHORITATIVE)
		return 1;
	if (kind == DIRECTORY_SHARED)
		return 2;
	for (i = 0; i < connectors.n; i++) {
		const char *relay = attrs_get(&connectors.v[i].attrs, "relay");
		if (relay && conf_parse_bool(relay) == 1 &&
		    connector_match(&connectors.v[i], domain) >= 0)
			return 2;
	}
	return 0;
}

static int
may_relay(const struct session *s)
{
	return s->is_relay_client ||
	    (s->auth_user[0] != '\0' && s->srv->is_relay_authenticated);
}

/* The relay and directory checks of RCPT. 0 accept, -1 refused (sent). */
static int
rcpt_policy(struct session *s, const char *rcpt)
{
	char kind[32], name[256], unresolved[256];
	int accepted = domain_accepted(addr_domain(rcpt));

	if (!may_relay(s) && (!accepted || addr_has_route(rcpt))) {
		log_event("relay-denied", "peer=%s rcpt=%s", log_quote(s->peer),
		    log_quote(rcpt));
		return reply_error(s, 550, "5.7.1", "<%s>: Unable to relay", rcpt), -1;
	}
	if (accepted != 1)
		return 0;
	if (directory_lookup(&dir, rcpt, kind, sizeof kind, name, sizeof name) != 0)
		return 0;	/* found, or a lookup error left to categorize */
	conf_setting("unresolved-host", "", unresolved, sizeof unresolved);
	if (unresolved[0] != '\0')
		return 0;
	return reply_error(s, 550, "5.1.1", "<%s>: Recipient address rejected: "
	    "User unknown", rcpt), -1;
}

static int
rcpt_add(struct session *s, const char *rcpt, const struct smtp_rcpt_params *rp)
{
	struct rcpt *r;
	size_t i;

	for (i = 0; i < s->env.nrcpt; i++)
		if (strcasecmp(s->env.rcpt[i].addr, rcpt) == 0)
			return 0;	/* once is enough */
	if ((r = envelope_add_rcpt(&s->env, rcpt)) == NULL ||
	    rcpt_set(r, "state", "new") < 0 ||
	    (rp->notify[0] && rcpt_set(r, "notify", rp->notify) < 0) ||
	    (rp->orcpt[0] && rcpt_set(r, "orcpt", rp->orcpt) < 0))
		return -1;
	return 0;
}

/* RFC 5321 §4.5.1: <postmaster> without a domain must work. */
static void
rcpt_postmaster(char *rcpt, size_t cap)
{
	char pm[ADDR_MAX];

	if (strchr(rcpt, '@') != NULL)
		return;
	if (conf_setting("postmaster", "", pm, sizeof pm) > 0 && strchr(pm, '@'))
		snprintf(rcpt, cap, "%s", pm);
	else
		snprintf(rcpt, cap, "postmaster@%s", conf_hostname());
}

static int
cmd_rcpt(void *v, char *args)
{
	struct session *s = v;
	char path[ADDR_MAX + 1], rcpt[ADDR_MAX];
	const char *p = args;
	struct smtp_rcpt_params rp;
	struct smtp_error err;

	if (!s->has_mail)
		return reply_error(s, 503, "5.5.1", "Need MAIL command first");
	if (s->has_bdat)
		return reply_error(s, 503, "5.5.1", "RCPT after BDAT");
	if (smtp_path(&p, "TO", path, sizeof path) < 0)
		return reply_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if (address_parse(s, path, rcpt, sizeof rcpt, ADDR_ALLOW_POSTMASTER,
	    "5.1.3", "recipient") < 0)
		return 0;
	if (smtp_rcpt_parse(p, &rp, &err) < 0)
		return reply_smtp_error(s, &err);
	if (s->env.nrcpt >= (size_t)s->srv->max_recipients)
		return smtp_reply(s->net, 452, "4.5.3", "Too many recipients"), 0;
	rcpt_postmaster(rcpt, sizeof rcpt);
	if (rcpt_policy(s, rcpt) < 0 || hooks_run(s, "rcpt", rcpt, -1) < 0)
		return 0;
	if (rcpt_add(s, rcpt, &rp) < 0)
		return reply_error(s, 452, "4.3.1", "Out of memory");
	if (loglevel_on("smtp", LOGLEVEL_MEDIUM))
		log_event("rcpt", "peer=%s sender=%s rcpt=%s", log_quote(s->peer),
		    log_quote(*s->env.sender ? s->env.sender : "<>"),
		    log_quote(rcpt));
	smtp_reply(s->net, 250, "2.1.5", "Recipient <%s> OK", rcpt);
	return 0;
}

/* ---- DATA, BDAT ---- */

static int
data_allowed(struct session *s, const char *args, int is_bdat)
{
	if (!s->has_mail)
		return reply_error(s, 503, "5.5.1", "Need MAIL command first"), -1;
	if (s->env.nrcpt == 0)
		return reply_error(s, 554, "5.5.1", "No valid recipients"), -1;
	if (!is_bdat && *args != '\0')
		return reply_error(s, 501, "5.5.4", "Syntax: DATA"), -1;
	if (!is_bdat && s->has_bdat)
		return reply_error(s, 503, "5.5.1", "DATA after BDAT"), -1;
	if (!is_bdat && strcmp(s->mail.body, "BINARYMIME") == 0)
		return reply_error(s, 503, "5.5.1", "BODY=BINARYMIME requires "
		    "BDAT"), -1;
	return 0;
}

/* The client went away or stalled in the middle of the data: nothing was
 * accepted, and the session ends. */
static int
data_lost(struct session *s)
{
	transaction_reset(s);
	smtp_reply(s->net, 421, "4.4.2", "%s Error: timeout or connection lost "
	    "during data", server_host(s->srv));
	return -1;
}

static int
cmd_data(void *v, char *args)
{
	struct session *s = v;
	struct net_data d = { .max_line = DATA_LINE_MAX };
	int rc;

	if (data_allowed(s, args, 0) < 0)
		return 0;
	if (message_begin(s) < 0) {
		log_event("warning", "msg=\"cannot create content\" error=%s",
		    log_quote(strerror(errno)));
		return reply_error(s, 452, "4.3.1", "Insufficient system storage");
	}
	smtp_reply(s->net, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	s->net->timeout_sec = s->srv->data_timeout;
	rc = net_data(s->net, &d, message_sink, s);
	s->net->timeout_sec = s->srv->command_timeout;
	if (rc < 0)
		return data_lost(s);
	message_finish(s, &d);
	return 0;
}

/* "SIZE [LAST]": 0 with *size and *is_last, or -1. */
static int
bdat_args(const char *args, unsigned long long *size, int *is_last)
{
	char *end;

	if (!isdigit((unsigned char)*args) || strspn(args, "0123456789") > 19)
		return -1;
	*size = strtoull(args, &end, 10);
	while (*end == ' ')
		end++;
	*is_last = strcasecmp(end, "LAST") == 0;
	return (*is_last || *end == '\0') ? 0 : -1;
}

static int
cmd_bdat(void *v, char *args)
{
	struct session *s = v;
	unsigned long long size;
	int is_last;

	if (bdat_args(args, &size, &is_last) < 0)
		return reply_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	s->net->timeout_sec = s->srv->data_timeout;
	/* the chunk is read whatever the answer: the session stays in step */
	if (s->has_mail && s->env.nrcpt > 0 && !s->has_bdat) {
		if (message_begin(s) < 0) {
			if (net_read_exact(s->net, size, NULL, NULL) < 0)
				return data_lost(s);
			transaction_reset(s);
			return reply_error(s, 452, "4.3.1", "Insufficient system "
			    "storage");
		}
		s->has_bdat = 1;
	}
	if (net_read_exact(s->net, size, s->has_bdat ? message_sink : NULL, s) < 0)
		return data_lost(s);
	s->net->timeout_sec = s->srv->command_timeout;
	if (!s->has_bdat) {
		data_allowed(s, args, 1);
		transaction_reset(s);
		return 0;
	}
	if (s->is_oversize) {
		message_finish(s, NULL);	/* 552, and the transaction ends */
		return 0;
	}
	if (is_last)
		message_finish(s, NULL);
	else
		smtp_reply(s->net, 250, "2.0.0", "%llu octets received", size);
	return 0;
}

/* ---- RSET NOOP QUIT HELP VRFY EXPN TURN ---- */

static int
cmd_rset(void *v, char *args)
{
	struct session *s = v;

	if (*args != '\0')
		return reply_error(s, 501, "5.5.4", "Syntax: RSET");
	transaction_reset(s);
	return smtp_reply(s->net, 250, "2.0.0", "OK"), 0;
}

static int
cmd_noop(void *v, char *args)
{
	struct session *s = v;

	return smtp_reply(s->net, 250, "2.0.0", "OK"), 0;
}

static int
cmd_quit(void *v, char *args)
{
	struct session *s = v;

	smtp_reply(s->net, 221, "2.0.0", "%s closing connection", server_host(s->srv));
	s->is_closing = 1;
	return 0;
}

static int
cmd_help(void *v, char *args)
{
	struct session *s = v;

	smtp_reply(s->net, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT HELP VRFY STARTTLS AUTH ETRN\n"
	    "See RFC 5321 and the README of bridgehead");
	return 0;
}

static int
cmd_vrfy(void *v, char *args)
{
	struct session *s = v;
	char path[ADDR_MAX + 1], addr[ADDR_MAX], kind[32], name[256];
	size_t len = strlen(args);

	if (len == 0 || len > ADDR_MAX)
		return reply_error(s, 501, "5.5.4", "Syntax: VRFY address");
	if (!s->srv->is_vrfy)
		return smtp_reply(s->net, 252, "2.5.2", "Cannot VRFY user, but will "
		    "accept message and attempt delivery"), 0;
	snprintf(path, sizeof path, "%.*s", (int)(args[0] == '<' &&
	    args[len - 1] == '>' ? len - 2 : len), args + (args[0] == '<'));
	if (addr_parse(path, addr, sizeof addr, 0) < 0)
		return reply_error(s, 501, "5.1.3", "Bad address syntax");
	directory_refresh(&dir);
	if (directory_lookup(&dir, addr, kind, sizeof kind, name, sizeof name) == 1)
		return smtp_reply(s->net, 250, "2.1.5", "<%s>", addr), 0;
	if (domain_accepted(addr_domain(addr)) != 1)
		return smtp_reply(s->net, 252, "2.5.2", "<%s>: not a local "
		    "address; will accept message and attempt delivery", addr), 0;
	return reply_error(s, 550, "5.1.1", "<%s>: User unknown", addr);
}

static int
cmd_not_implemented(void *v, char *args)
{
	struct session *s = v;

	return reply_error(s, 502, "5.5.1", "Command not implemented");
}

/* ---- STARTTLS (RFC 3207) ---- */

static int
cmd_starttls(void *v, char *args)
{
	struct session *s = v;
	SSL *ssl;

	if (s->tls_desc[0] != '\0')
		return reply_error(s, 503, "5.5.1", "TLS already active");
	if (!tls_offered(s))
		return reply_error(s, 502, "5.5.1", "STARTTLS not available");
	if (*args != '\0')
		return reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
	if (s->tls_ctx == NULL)
		s->tls_ctx = tls_server_context(server_get(s->srv, "cert"),
		    server_get(s->srv, "key"));
	if (s->tls_ctx == NULL || (ssl = tls_new(s->tls_ctx)) == NULL)
		return reply_error(s, 454, "4.7.0", "TLS not available due to "
		    "temporary reason");
	smtp_reply(s->net, 220, "2.0.0", "Ready to start TLS");
	/* anything the client sent after STARTTLS in plaintext is dropped
	 * with the buffer inside net_tls_accept: it must not count as
	 * having arrived under TLS */
	if (net_tls_accept(s->net, ssl) < 0) {
		log_event("tls-failed", "peer=%s error=%s", log_quote(s->peer),
		    log_quote(tls_error()));
		return -1;
	}
	tls_describe(s->net->ssl, s->tls_desc, sizeof s->tls_desc);
	log_event("tls", "peer=%s tls=%s", log_quote(s->peer), log_quote(s->tls_desc));
	/* RFC 3207 §4.2: forget what was said before */
	transaction_reset(s);
	s->helo[0] = s->auth_user[0] = s->auth_box[0] = '\0';
	s->is_ehlo = 0;
	return 0;
}

/* ---- AUTH PLAIN and LOGIN (RFC 4954) ---- */

/* Checks a password against the directory: user is an address of a
 * mailbox or its NAME. 1 good (box set), 0 bad. */
static int
auth_verify(const char *user, const char *password, char *box, size_t cap)
{
	static struct crypt_data cd;
	struct attrs a = ATTRS_INIT;
	char kind[32], name[256];
	const char *hash, *out;
	int ok = 0;

	directory_refresh(&dir);
	if (strchr(user, '@') != NULL) {
		if (directory_lookup(&dir, user, kind, sizeof kind, name,
		    sizeof name) != 1 || strcmp(kind, "mailbox") != 0)
			return 0;
	} else
		snprintf(name, sizeof name, "%s", user);
	if (directory_record(&dir, "mailbox", name, &a) == 1 &&
	    (hash = attrs_get(&a, "password")) != NULL && hash[0] == '$' &&
	    (out = crypt_r(password, hash, &cd)) != NULL &&
	    strlen(out) == strlen(hash) &&
	    CRYPTO_memcmp(out, hash, strlen(hash)) == 0) {
		snprintf(box, cap, "%s", name);
		ok = 1;
	}
	attrs_free(&a);
	return ok;
}

/* Reads one base64 line after a 334 challenge, decoded into out.
 * 1, 0 cancelled or bad (reply sent), -1 connection lost. */
static int
auth_response(struct session *s, const char *challenge, const char *initial,
    char *out, size_t cap, size_t *len)
{
	char line[LINE_MAX_CMD];
	const char *text = initial;
	ssize_t n;

	if (text == NULL) {
		smtp_reply(s->net, 334, NULL, "%s", challenge);
		if ((n = net_line(s->net, line, sizeof line)) == -1)
			return -1;
		if (n < 0)
			return reply_error(s, 500, "5.5.2", "Bad AUTH response "
			    "line"), 0;
		if (smtp_trace)
			smtp_trace(0, "***");
		text = line;
	}
	if (strcmp(text, "*") == 0)
		return reply_error(s, 501, "5.0.0", "Authentication cancelled"), 0;
	if (strcmp(text, "=") == 0) {
		*len = 0;
		out[0] = '\0';
		return 1;
	}
	if (smtp_base64_decode(text, (unsigned char *)out, cap - 1, len) < 0)
		return reply_error(s, 501, "5.5.2", "Bad base64 data"), 0;
	out[*len] = '\0';
	return 1;
}

static int
auth_result(struct session *s, const char *user, const char *password)
{
	unsigned delay;

	if (auth_verify(user, password, s->auth_box, sizeof s->auth_box)) {
		snprintf(s->auth_user, sizeof s->auth_user, "%s", user);
		log_event("auth", "peer=%s user=%s box=%s", log_quote(s->peer),
		    log_quote(user), log_quote(s->auth_box));
		smtp_reply(s->net, 235, "2.7.0", "Authentication successful");
		return 0;
	}
	s->nauth_failures++;
	log_event("auth-failed", "peer=%s user=%s failures=%d", log_quote(s->peer),
	    log_quote(user), s->nauth_failures);
	/* a guesser pays time for every try */
	delay = s->nauth_failures < 5 ? s->nauth_failures : 5;
	net_flush(s->net);
	sleep(delay);
	reply_error(s, 535, "5.7.8", "Authentication credentials invalid");
	if (s->nauth_failures >= 3 && !s->is_closing) {
		smtp_reply(s->net, 421, "4.7.0", "%s Too many authentication "
		    "failures", server_host(s->srv));
		s->is_closing = 1;
	}
	return 0;
}

static int
auth_plain(struct session *s, const char *initial)
{
	char buf[1024];
	const char *authz, *user, *pass;
	size_t len;
	int rc;

	if ((rc = auth_response(s, "", initial, buf, sizeof buf, &len)) <= 0)
		return rc;
	authz = buf;
	user = memchr(buf, '\0', len);
	pass = user ? memchr(user + 1, '\0', len - (user + 1 - buf)) : NULL;
	if (user == NULL || pass == NULL || memchr(pass + 1, '\0',
	    len - (pass + 1 - buf)) != NULL)
		return reply_error(s, 501, "5.5.2", "Bad AUTH PLAIN response");
	user++;
	pass++;
	if (*authz != '\0' && strcmp(authz, user) != 0)
		return reply_error(s, 535, "5.7.8", "Authorization identity "
		    "differs from authentication identity");
	return auth_result(s, user, pass);
}

static int
auth_login(struct session *s, const char *initial)
{
	char user[512], pass[512];
	size_t len;
	int rc;

	/* "Username:" and "Password:" */
	if ((rc = auth_response(s, "VXNlcm5hbWU6", initial, user, sizeof user,
	    &len)) <= 0)
		return rc;
	if ((rc = auth_response(s, "UGFzc3dvcmQ6", NULL, pass, sizeof pass,
	    &len)) <= 0)
		return rc;
	return auth_result(s, user, pass);
}

static int
cmd_auth(void *v, char *args)
{
	struct session *s = v;
	char *initial = strchr(args, ' ');

	if (s->helo[0] == '\0' || s->auth_user[0] != '\0' || s->has_mail)
		return reply_error(s, 503, "5.5.1", s->helo[0] == '\0' ?
		    "Send EHLO first" : s->has_mail ? "MAIL transaction in "
		    "progress" : "Already authenticated");
	if (!auth_offered(s))
		return reply_error(s, s->srv->has_plain || s->srv->has_login ?
		    538 : 503, s->srv->has_plain || s->srv->has_login ?
		    "5.7.11" : "5.5.1", s->srv->has_plain || s->srv->has_login ?
		    "Encryption required for requested authentication mechanism" :
		    "AUTH not available");
	if (initial != NULL)
		*initial++ = '\0';
	if (strcasecmp(args, "PLAIN") == 0 && s->srv->has_plain)
		return auth_plain(s, initial);
	if (strcasecmp(args, "LOGIN") == 0 && s->srv->has_login)
		return auth_login(s, initial);
	return reply_error(s, 504, "5.5.4", "Unrecognized authentication type");
}

/* ---- ETRN (RFC 1985) ---- */

enum { ETRN_DOMAIN, ETRN_SUBDOMAINS, ETRN_QUEUE };

static int
etrn_match_one(const char *domain, const char *node, int mode)
{
	if (mode == ETRN_SUBDOMAINS)
		return addr_domain_in(domain, node);
	return strcasecmp(domain, node) == 0;
}

static int
etrn_matches(const struct envelope *e, const char *node, int mode)
{
	const char *dest = envelope_get(e, "dest");
	size_t i;

	if (mode == ETRN_QUEUE || (dest && etrn_match_one(dest, node, mode)))
		return dest && etrn_match_one(dest, node, mode);
	for (i = 0; i < e->nrcpt; i++)
		if (etrn_match_one(addr_domain(e->rcpt[i].addr), node, mode))
			return 1;
	return 0;
}

/* One ETRN request as it walks the queues. */
struct etrn {
	const struct session *s;
	const char *node;
	int mode, newfd, nmoved, ndenied;
};

/* Connectors with trigger-accounts= release their mail only to those
 * accounts (an authenticated user or its mailbox); others to anyone, as
 * ETRN has no authentication of its own (RFC 1985). */
static int
etrn_permitted(const struct etrn *t, const struct envelope *e)
{
	const char *name = envelope_get(e, "connector");
	const struct connector *c = name ? connectors_find(&connectors, name) : NULL;
	const char *list = c ? attrs_get(&c->attrs, "trigger-accounts") : NULL;

	if (list == NULL || *list == '\0')
		return 1;
	return t->s->auth_user[0] != '\0' && (list_has(list, t->s->auth_user) ||
	    list_has(list, t->s->auth_box));
}

/* Moves the envelopes of spool/remote/SUB for the node into new/. 0 or -1. */
static int
etrn_move(struct etrn *t, const char *sub)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	if (root_path(path, sizeof path, "spool/remote/%s", sub) < 0)
		return -1;
	if ((dp = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((d = readdir(dp)) != NULL) {
		struct envelope e = ENVELOPE_INIT;
		if (d->d_name[0] == '.')
			continue;
		if (envelope_read(&e, dirfd(dp), d->d_name) == 0 &&
		    etrn_matches(&e, t->node, t->mode)) {
			if (!etrn_permitted(t, &e))
				t->ndenied++;
			else if (renameat(dirfd(dp), d->d_name, t->newfd,
			    d->d_name) == 0)
				n++;
		}
		envelope_free(&e);
	}
	if (n > 0)
		spool_fsync_dir(dirfd(dp));
	closedir(dp);
	t->nmoved += n;
	return 0;
}

static int
etrn_run(struct etrn *t)
{
	char path[PATH_MAX];
	int rc;

	if (root_path(path, sizeof path, "spool/remote/new") < 0 ||
	    (t->newfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	connectors_refresh(&connectors);
	rc = etrn_move(t, "hold") | etrn_move(t, "retry");
	if (t->nmoved > 0 && spool_fsync_dir(t->newfd) < 0)
		rc = -1;
	close(t->newfd);
	return rc;
}

static int
cmd_etrn(void *v, char *args)
{
	struct session *s = v;
	int mode = args[0] == '@' ? ETRN_SUBDOMAINS : args[0] == '#' ?
	    ETRN_QUEUE : ETRN_DOMAIN;
	const char *node = args + (mode != ETRN_DOMAIN);
	char check[ADDR_MAX], parsed[ADDR_MAX];
	struct etrn t = { 0 };

	if (!s->srv->is_etrn)
		return reply_error(s, 502, "5.5.1", "ETRN not available");
	if (s->helo[0] == '\0' || s->has_mail)
		return reply_error(s, 503, "5.5.1", s->has_mail ? "ETRN not "
		    "allowed in a mail transaction" : "Send HELO or EHLO first");
	snprintf(check, sizeof check, "x@%s", node);
	if (*node == '\0' || (mode != ETRN_QUEUE &&
	    addr_parse(check, parsed, sizeof parsed, 0) < 0) || strchr(node, '/') ||
	    strchr(node, ' '))
		return reply_error(s, 501, "5.5.4", "Syntax: ETRN domain");
	directory_refresh(&dir);
	if (mode != ETRN_QUEUE && domain_accepted(node) == 1)
		return reply_error(s, 459, "4.7.1", "%s: node not allowed: a "
		    "local domain", node);
	t.s = s;
	t.node = node;
	t.mode = mode;
	if (etrn_run(&t) < 0)
		return reply_error(s, 458, "4.3.0", "Unable to queue messages for "
		    "node %s", node);
	log_event("etrn", "peer=%s node=%s moved=%d denied=%d",
	    log_quote(s->peer), log_quote(args), t.nmoved, t.ndenied);
	if (t.nmoved == 0 && t.ndenied > 0)
		return reply_error(s, 459, "4.7.1", "%s: node not allowed: "
		    "authenticate as a trigger account", node);
	if (t.nmoved == 0)
		return smtp_reply(s->net, 251, "2.0.0", "OK, no messages waiting "
		    "for node %s", node), 0;
	return smtp_reply(s->net, 250, "2.0.0", "Queuing for node %s started",
	    node), 0;
}

/* ---- ATRN (RFC 2645, On-Demand Mail Relay) ---- */

/* Is c a held connector (hold=yes) that this session's account may turn
 * (one of its trigger-accounts)? */
static int
atrn_connector_ok(const struct session *s, const struct connector *c)
{
	const char *hold = attrs_get(&c->attrs, "hold");
	const char *list = attrs_get(&c->attrs, "trigger-accounts");

	return hold && conf_parse_bool(hold) == 1 && list &&
	    (list_has(list, s->auth_user) || list_has(list, s->auth_box));
}

/* Does c serve one of the comma-separated domains ("" = any)? */
static int
atrn_wants(const struct connector *c, const char *domains)
{
	char domain[ADDR_MAX];
	const char *p = domains;

	if (*p == '\0')
		return 1;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		snprintf(domain, sizeof domain, "%.*s", (int)len, p);
		p += len + (p[len] == ',');
		if (connector_match(c, domain) >= 0)
			return 1;
	}
	return 0;
}

/* The destinations to turn, "C1,C2", into dests. 0, or -1 with bad set to
 * a requested domain that no connector of this account serves. */
static int
atrn_dests(const struct session *s, const char *domains, struct buf *dests,
    char *bad, size_t cap)
{
	char domain[ADDR_MAX];
	const char *p = domains;
	size_t i;

	while (*p != '\0') {
		size_t len = strcspn(p, ","), ok = 0;
		snprintf(domain, sizeof domain, "%.*s", (int)len, p);
		p += len + (p[len] == ',');
		for (i = 0; i < connectors.n && !ok; i++)
			ok = atrn_connector_ok(s, &connectors.v[i]) &&
			    atrn_wants(&connectors.v[i], domain);
		if (!ok) {
			snprintf(bad, cap, "%s", domain);
			return -1;
		}
	}
	for (i = 0; i < connectors.n; i++)
		if (atrn_connector_ok(s, &connectors.v[i]) &&
		    atrn_wants(&connectors.v[i], domains))
			buf_printf(dests, "%s%s", dests->len ? "," : "",
			    connectors.v[i].name);
	return 0;
}

/* How many envelopes in spool/remote/hold/ are for one of dests, or -1. */
static int
atrn_count(const char *dests)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	if (root_path(path, sizeof path, "spool/remote/hold") < 0)
		return -1;
	if ((dp = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((d = readdir(dp)) != NULL) {
		struct envelope e = ENVELOPE_INIT;
		const char *dest;
		if (d->d_name[0] != '.' && envelope_read(&e, dirfd(dp),
		    d->d_name) == 0 && (dest = envelope_get(&e, "dest")) != NULL &&
		    list_has(dests, dest))
			n++;
		envelope_free(&e);
	}
	closedir(dp);
	return n;
}

/* The role reversal: bh-remote --turn delivers the held mail over this
 * connection, talking through a socket pair that we relay to the client
 * (so TLS and inetd sessions work alike). Its exit code, or -1. */
static int
atrn_turn(struct session *s, const char *dests)
{
	char prog[PATH_MAX];
	int sp[2], status = 0, rc;
	pid_t pid;

	if (root_prog(prog, sizeof prog, "bh-remote") < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	if ((pid = fork()) == 0) {
		char *argv[] = { "bh-remote", "--turn", (char *)dests,
		    s->helo[0] ? s->helo : "atrn-client", NULL };
		int null = open("/dev/null", O_WRONLY);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		if (dup2(sp[1], 0) < 0 || null < 0 || dup2(null, 1) < 0)
			_exit(EXIT_TEMP);
		execv(prog, argv);
		_exit(EXIT_TEMP);
	}
	close(sp[1]);
	rc = pid < 0 ? -1 : net_relay(s->net, sp[0], s->srv->command_timeout);
	close(sp[0]);
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	log_event("atrn", "peer=%s user=%s dests=%s relay=%d exit=%d",
	    log_quote(s->peer), log_quote(s->auth_user), log_quote(dests), rc,
	    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return pid < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Refusals of ATRN before any queue is looked at. 0 none, -1 sent. */
static int
atrn_allowed(struct session *s, const char *args)
{
	if (!s->srv->is_atrn)
		return reply_error(s, 502, "5.5.1", "Command not implemented"), -1;
	if (s->helo[0] == '\0' || s->has_mail)
		return reply_error(s, 503, "5.5.1", s->has_mail ? "ATRN not "
		    "allowed in a mail transaction" : "Send EHLO first"), -1;
	if (s->auth_user[0] == '\0')
		return reply_error(s, 530, "5.7.0", "Authentication required"), -1;
	if (strchr(args, ' ') != NULL || strlen(args) > 1000)
		return reply_error(s, 501, "5.5.4", "Syntax: ATRN [domain[,domain]]"),
		    -1;
	return 0;
}

static int
cmd_atrn(void *v, char *args)
{
	struct session *s = v;
	struct buf dests = BUF_INIT;
	char bad[ADDR_MAX];
	int n;

	if (atrn_allowed(s, args) < 0)
		return 0;
	connectors_refresh(&connectors);
	if ((n = atrn_dests(s, args, &dests, bad, sizeof bad)) < 0 ||
	    dests.len == 0) {
		reply_error(s, 450, "4.7.1", "ATRN request refused%s%s",
		    n < 0 ? ": " : "", n < 0 ? bad : "");
		return buf_free(&dests), 0;
	}
	if ((n = atrn_count(dests.data)) <= 0) {
		if (n < 0)
			reply_error(s, 451, "4.3.0", "Unable to process ATRN request "
			    "now");
		else
			smtp_reply(s->net, 453, "4.3.0", "You have no mail");
		return buf_free(&dests), 0;
	}
	smtp_reply(s->net, 250, "2.0.0", "OK now reversing the connection");
	atrn_turn(s, dests.data);
	buf_free(&dests);
	s->is_closing = 1;	/* the session belonged to the turn */
	return -1;
}

/* ---- the session ---- */

/* SIGTERM in a session: a session waiting for its next command closes
 * with 421 4.3.2; one in the middle of a mail transaction finishes it
 * first. SIGTERM stays blocked except while waiting for input. */
static volatile sig_atomic_t session_stopping;

static void
on_session_stop(int sig)
{
	(void)sig;
	session_stopping = 1;
}

static void
session_signals(void)
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

static const struct smtp_command commands[] = {
	{ "EHLO", cmd_ehlo }, { "HELO", cmd_helo }, { "MAIL", cmd_mail },
	{ "RCPT", cmd_rcpt }, { "DATA", cmd_data }, { "BDAT", cmd_bdat },
	{ "RSET", cmd_rset }, { "NOOP", cmd_noop }, { "QUIT", cmd_quit },
	{ "HELP", cmd_help }, { "VRFY", cmd_vrfy }, { "STARTTLS", cmd_starttls },
	{ "AUTH", cmd_auth }, { "ETRN", cmd_etrn },
	/* EXPN gives away lists, TURN hands mail to whoever asks */
	{ "ATRN", cmd_atrn },
	{ "EXPN", cmd_not_implemented }, { "TURN", cmd_not_implemented },
	{ NULL, NULL }
};

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

	conf_mark();	/* a rebuilt .cdb applies from the next command on */
	if (n == NET_TOOLONG)
		return reply_error(s, 500, "5.5.2", "Line too long");
	if (n == NET_BARE)
		return reply_error(s, 500, "5.5.2", "Bare CR or LF not allowed; "
		    "lines end in CRLF");
	if ((cmd = smtp_command_find(commands, line, &args)) == NULL)
		return reply_error(s, 500, "5.5.2", "Command unrecognized");
	return cmd->run(s, args);
}

static void
session_loop(struct session *s)
{
	char line[LINE_MAX_CMD];
	ssize_t n;

	while (!s->is_closing) {
		s->net->timeout_sec = s->srv->command_timeout;
		s->net->stop = s->has_mail ? NULL : &session_stopping;
		if ((session_stopping && !s->has_mail) ||
		    (n = net_line(s->net, line, sizeof line)) == -1) {
			if (session_stopping && !s->has_mail)
				smtp_reply(s->net, 421, "4.3.2", "%s Service shutting "
				    "down, closing connection", server_host(s->srv));
			else
				smtp_reply(s->net, 421, "4.4.2", "%s Error: timeout "
				    "or connection lost", server_host(s->srv));
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
			    server_host(s->srv));
			return;
		}
		smtp_reply(s->net, 503, "5.7.1", "Connection refused; send QUIT");
	}
}

/* Connection control: 0 serve, -1 refused (sent). */
static int
session_admit(struct session *s)
{
	const char *allow = server_get(s->srv, "allow-from");
	const char *deny = server_get(s->srv, "deny-from");

	if ((*allow && !access_match(s, allow)) || (*deny && access_match(s, deny))) {
		log_event("refused", "peer=%s server=%s", log_quote(s->peer),
		    log_quote(s->srv->name));
		smtp_reply(s->net, 554, "5.7.1", "%s Access denied",
		    server_host(s->srv));
		session_quit_only(s);
		return -1;
	}
	if (hooks_run(s, "connect", "", -1) < 0) {
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

	if (is_dir_open && directory_refresh(&dir) < 0) {
		directory_close(&dir);
		is_dir_open = 0;
	}
	if (!is_dir_open && !(is_dir_open = directory_open(&dir) == 0))
		log_event("warning", "msg=\"directory unavailable\" error=%s",
		    log_quote(strerror(errno)));
	if (is_connectors_open && connectors_refresh(&connectors) < 0) {
		connectors_free(&connectors);
		is_connectors_open = 0;
	}
	if (!is_connectors_open &&
	    !(is_connectors_open = connectors_open(&connectors) == 0))
		log_event("warning", "msg=\"connectors unavailable\"");
	if (is_filters_open)
		conf_refresh(&filters_cdb);
	else
		is_filters_open = conf_open(&filters_cdb, "filters") == 0;
	trace_setup();
}

static void
session_run(struct server *srv, int rfd, int wfd, const char *peer)
{
	static struct net net;
	static struct session s;
	const char *banner = server_get(srv, "banner");

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
	s.is_relay_client = access_match(&s, server_get(srv, "relay-from"));
	if (session_admit(&s) == 0) {
		smtp_reply(&net, 220, NULL, "%s ESMTP %s", server_host(srv),
		    *banner ? banner : "bridgehead");
		session_loop(&s);
	}
	transaction_reset(&s);
	net_flush(&net);
	net_tls_end(&net);
	if (loglevel_on("smtp", LOGLEVEL_MEDIUM))
		log_event("disconnect", "peer=%s messages=%lld", log_quote(peer),
		    s.nmessages);
}

/* ---- listening: session processes that serve connections in turn ----
 *
 * The listener accepts, applies the connection limits and hands each
 * connection to a session process: an idle one when there is one (the
 * descriptor goes over the process's control socket), else a new fork.
 * A session process that has finished a connection says so with one byte
 * and waits for the next. Only the listener ends an idle process (it
 * closes the control socket), so a connection is never handed to a
 * process on its way out: after PROC_IDLE_SEC without work, on SIGHUP and
 * at a stop. A process serves at most PROC_USES connections, then exits.
 * A fork and an exit per connection were half of bh-smtpd's cost per
 * message (bench/results.md); Postfix's smtpd processes live the same way. */
enum { PROC_USES = 100, PROC_IDLE_SEC = 30 };

struct child {
	pid_t pid;
	int ctl;		/* our end of its control socket; -1 none */
	int is_idle;		/* waiting for a connection */
	int is_leaving;		/* told to go (or went): serves nothing more */
	time_t idle_since;
	char ip[INET6_ADDRSTRLEN];	/* the peer it serves */
};

static struct child *children;
static size_t nchildren, children_cap;
static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t is_stopping, is_reload;

/* In a session process, between connections: waits for the next one.
 * Its descriptor (the peer's address in ip), or -1: the listener closed
 * the control socket, or a stop was requested. */
static int
proc_next(int ctl, char *ip, size_t cap)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	char data[INET6_ADDRSTRLEN];
	struct iovec iov = { data, sizeof data - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct pollfd p = { ctl, POLLIN, 0 };
	struct cmsghdr *c;
	sigset_t none;
	ssize_t n;
	int fd = -1;

	sigemptyset(&none);	/* SIGTERM may end the wait */
	while (ppoll(&p, 1, NULL, &none) < 0)
		if (errno != EINTR || session_stopping)
			return -1;
	if (session_stopping || (n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC)) <= 0)
		return -1;
	data[n] = '\0';
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof fd))
			memcpy(&fd, CMSG_DATA(c), sizeof fd);
	snprintf(ip, cap, "%s", data);
	return fd;
}

/* A session process's life: the connection it was forked for, then the
 * ones the listener hands it, with servers.cdb read again for each. */
static _Noreturn void
proc_serve(struct server *srv, int fd, const char *ip, int ctl)
{
	char next[INET6_ADDRSTRLEN];
	int uses;

	for (uses = 1;; uses++) {
		session_run(srv, fd, fd, ip);
		/* free before the peer sees the close: a client that connects
		 * again at once finds this process idle */
		if (uses >= PROC_USES || session_stopping || ctl < 0 ||
		    write(ctl, "i", 1) != 1) {
			close(fd);
			break;
		}
		close(fd);
		if ((fd = proc_next(ctl, next, sizeof next)) < 0)
			break;
		ip = next;
		conf_mark();	/* every file as it is now */
		server_load(srv, srv->name);
	}
	exit(EXIT_DONE);
}

/* Hands connection fd to an idle session process. 0, or -1 (it is gone). */
static int
proc_send(int ctl, int fd, const char *ip)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct iovec iov = { (void *)ip, strlen(ip) + 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *c;

	memset(&u, 0, sizeof u);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof fd);
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(ctl, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Ends an idle process (it sees the control socket close and exits), or
 * forgets the control socket of one that is leaving anyway. */
static void
child_leave(struct child *c)
{
	if (c->ctl >= 0)
		close(c->ctl);
	c->ctl = -1;
	c->is_idle = 0;
	c->is_leaving = 1;
	c->ip[0] = '\0';
}

/* Ends the idle processes: all of them, or those idle since before t. */
static void
proc_trim(time_t t, int all)
{
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].is_idle && (all || children[i].idle_since <= t))
			child_leave(&children[i]);
}

/* The most recently idle process (its pages are the warmest), or NULL. */
static struct child *
proc_idle(void)
{
	struct child *best = NULL;
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].is_idle && (best == NULL ||
		    children[i].idle_since >= best->idle_since))
			best = &children[i];
	return best;
}

/* A control socket is readable: its process is idle now, or leaving. */
static void
proc_message(struct child *c)
{
	char b;
	ssize_t n = recv(c->ctl, &b, 1, MSG_DONTWAIT);

	if (n == 1) {
		c->is_idle = 1;
		c->idle_since = time(NULL);
		c->ip[0] = '\0';
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		child_leave(c);
}

/* Milliseconds until the oldest idle process is due to end; -1 none. */
static int
proc_timeout(void)
{
	time_t now = time(NULL), due = 0;
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].is_idle && (due == 0 ||
		    children[i].idle_since + PROC_IDLE_SEC < due))
			due = children[i].idle_since + PROC_IDLE_SEC;
	if (due == 0)
		return -1;
	return due > now ? (int)(due - now) * 1000 : 0;
}

static void
on_signal(int sig)
{
	int err = errno;

	if (sig == SIGTERM || sig == SIGINT)
		is_stopping = 1;
	if (sig == SIGHUP)
		is_reload = 1;
	(void)!write(wake_pipe[1], "x", 1);
	errno = err;
}

static void
children_reap(void)
{
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (i = 0; i < nchildren; i++)
			if (children[i].pid == pid) {
				if (children[i].ctl >= 0)
					close(children[i].ctl);
				children[i] = children[--nchildren];
				break;
			}
}

/* Connections being served: in all, or from ip. */
static size_t
children_busy(const char *ip)
{
	size_t i, n = 0;

	for (i = 0; i < nchildren; i++)
		n += !children[i].is_idle && !children[i].is_leaving &&
		    (ip == NULL || strcmp(children[i].ip, ip) == 0);
	return n;
}

/* The bound listen= addresses; SIGHUP brings them in line with the record:
 * kept addresses keep their socket, new ones are bound, gone ones closed.
 * Sessions run in their own processes and are never touched. */
struct listener {
	char addr[160];
	int fd;
};

static struct listener listeners[LISTEN_MAX];
static size_t nlisteners;

static int
listener_take(const char *addr)
{
	size_t i;
	int fd;

	for (i = 0; i < nlisteners; i++)
		if (listeners[i].fd >= 0 && strcmp(listeners[i].addr, addr) == 0) {
			fd = listeners[i].fd;
			listeners[i].fd = -1;
			return fd;
		}
	if ((fd = net_listen(addr)) >= 0)
		log_event("listening", "address=%s", log_quote(addr));
	return fd;
}

/* Binds the record's listen= list. At start a failure is fatal; on a
 * reload the address is left out and logged. */
static void
listen_update(const struct server *srv, int is_start)
{
	struct listener next[LISTEN_MAX];
	const char *p = server_get(srv, "listen");
	char addr[sizeof next[0].addr];
	size_t n = 0, i;
	int fd;

	if (*p == '\0')
		die(EXIT_PERM, 0, "server %s has no listen= address", srv->name);
	while (*p != '\0' && n < LISTEN_MAX) {
		size_t len = strcspn(p, ", ");
		snprintf(addr, sizeof addr, "%.*s", (int)len, p);
		p += len;
		while (*p == ',' || *p == ' ')
			p++;
		if (addr[0] == '\0')
			continue;
		if ((fd = listener_take(addr)) >= 0) {
			memcpy(next[n].addr, addr, sizeof addr);
			next[n++].fd = fd;
		} else if (is_start)
			die(EXIT_TEMP, errno, "unable to listen on %s", addr);
		else
			log_event("warning", "msg=\"unable to listen\" address=%s "
			    "error=%s", log_quote(addr), log_quote(strerror(errno)));
	}
	for (i = 0; i < nlisteners; i++)
		if (listeners[i].fd >= 0)
			close(listeners[i].fd);
	memcpy(listeners, next, n * sizeof next[0]);
	nlisteners = n;
}

/* Over the limits: one line, no process. */
static void
refuse_busy(const struct server *srv, int fd, const char *ip, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof line, "421 4.7.0 %s Error: too many "
	    "connections%s\r\n", server_host(srv), why);

	(void)!write(fd, line, n);
	log_event("busy", "peer=%s reason=%s", log_quote(ip),
	    log_quote(*why ? "per-ip" : "total"));
	close(fd);
}

/* Room for one more child in the table. 0, or -1. */
static int
children_room(void)
{
	struct child *c;
	size_t cap = children_cap ? children_cap * 2 : 64;

	if (nchildren < children_cap)
		return 0;
	if ((c = realloc(children, cap * sizeof *c)) == NULL)
		return -1;
	children = c;
	children_cap = cap;
	return 0;
}

/* In the new process: nothing of the listener's stays open. */
static void
child_setup(int ctl_other)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	for (i = 0; i < nchildren; i++)
		if (children[i].ctl >= 0)
			close(children[i].ctl);
	if (ctl_other >= 0)
		close(ctl_other);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	session_signals();
}

static void
child_start(struct server *srv, int fd, const char *ip)
{
	int sv[2] = { -1, -1 };
	pid_t pid;

	/* without a control socket the process serves this one connection */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		sv[0] = sv[1] = -1;
	if (children_room() < 0 || (pid = fork()) < 0) {
		if (sv[0] >= 0) {
			close(sv[0]);
			close(sv[1]);
		}
		refuse_busy(srv, fd, ip, "");
		return;
	}
	if (pid == 0) {
		child_setup(sv[0]);
		proc_serve(srv, fd, ip, sv[1]);
	}
	if (sv[1] >= 0)
		close(sv[1]);
	children[nchildren] = (struct child){ .pid = pid, .ctl = sv[0] };
	snprintf(children[nchildren].ip, sizeof children[0].ip, "%s", ip);
	nchildren++;
	close(fd);
}

/* An idle process takes the connection, else a new one is forked. */
static void
child_assign(struct server *srv, int fd, const char *ip)
{
	struct child *c;

	while ((c = proc_idle()) != NULL) {
		if (proc_send(c->ctl, fd, ip) == 0) {
			c->is_idle = 0;
			snprintf(c->ip, sizeof c->ip, "%s", ip);
			close(fd);
			return;
		}
		child_leave(c);
	}
	child_start(srv, fd, ip);
}

static void
accept_one(struct server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN];
	int fd;

	if ((fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC)) < 0) {
		/* out of descriptors: the connection stays queued, and without
		 * a pause poll would report it again at once */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_event("warning", "msg=\"accept failed\" error=%s",
			    log_quote(strerror(errno)));
			nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
		}
		return;
	}
	net_peer_text(&ss, ip, sizeof ip);
	children_reap();
	server_load(srv, srv->name);	/* limits as configured now */
	if (children_busy(NULL) >= (size_t)srv->max_connections)
		refuse_busy(srv, fd, ip, "");
	else if (children_busy(ip) >= (size_t)srv->max_per_ip)
		refuse_busy(srv, fd, ip, " from your address");
	else
		child_assign(srv, fd, ip);
}

static void
signals_setup(void)
{
	struct sigaction sa;

	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		die(EXIT_TEMP, errno, "pipe");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* The poll set: listeners, the wake pipe, then every control socket (its
 * child's index in who[]). The number of entries. */
static size_t
poll_set(struct pollfd **p, size_t **who, size_t *cap)
{
	size_t n, i, need = nlisteners + 1 + nchildren;

	if (need > *cap || *p == NULL || *who == NULL) {
		struct pollfd *np = realloc(*p, (need + 1) * sizeof **p);
		size_t *nw;

		if (np == NULL)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		*p = np;
		if ((nw = realloc(*who, (need + 1) * sizeof **who)) == NULL)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		*who = nw;
		*cap = need;
	}
	for (n = 0; n < nlisteners; n++)
		(*p)[n] = (struct pollfd){ listeners[n].fd, POLLIN, 0 };
	(*p)[n++] = (struct pollfd){ wake_pipe[0], POLLIN, 0 };
	for (i = 0; i < nchildren; i++)
		if (children[i].ctl >= 0) {
			(*who)[n] = i;
			(*p)[n++] = (struct pollfd){ children[i].ctl, POLLIN, 0 };
		}
	return n;
}

/* Lets the sessions in progress finish; idle processes just end. */
static void
serve_stop(const struct server *srv)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	children_reap();
	proc_trim(0, 1);
	log_event("stopping", "server=%s sessions=%zu", log_quote(srv->name),
	    children_busy(NULL));
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGTERM);	/* end at their next idle point */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
}

/* Accepts until SIGTERM, then lets the sessions in progress finish. */
static void
serve(struct server *srv)
{
	static struct pollfd *p;
	static size_t *who, cap;
	size_t n, i;
	char drain[64];

	listen_update(srv, 1);
	priv_drop();	/* the ports are bound: nothing else needs root */
	while (!is_stopping) {
		n = poll_set(&p, &who, &cap);
		if (poll(p, n, proc_timeout()) < 0 && errno != EINTR)
			die(EXIT_TEMP, errno, "poll");
		if (p[nlisteners].revents)
			while (read(wake_pipe[0], drain, sizeof drain) > 0)
				;
		for (i = nlisteners + 1; i < n; i++)
			if (p[i].revents && children[who[i]].ctl == p[i].fd)
				proc_message(&children[who[i]]);
		children_reap();
		proc_trim(time(NULL) - PROC_IDLE_SEC, 0);
		for (i = 0; i < nlisteners && !is_stopping && !is_reload; i++)
			if (p[i].revents & POLLIN)
				accept_one(srv, listeners[i].fd);
		if (is_reload && !is_stopping) {
			is_reload = 0;
			proc_trim(0, 1);	/* new sessions start from the new files */
			if (server_load(srv, srv->name) == 1)
				listen_update(srv, 0);
		}
	}
	serve_stop(srv);
}

/* inetd style: the peer from the socket, else $TCPREMOTEIP (ucspi-tcp). */
static void
serve_inetd(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "";
	const char *env = getenv("TCPREMOTEIP");

	if (getpeername(0, (struct sockaddr *)&ss, &len) == 0)
		net_peer_text(&ss, ip, sizeof ip);
	else if (env != NULL)
		snprintf(ip, sizeof ip, "%s", env);
	priv_drop();
	session_signals();
	session_run(srv, 0, 1, ip);
}

int
main(int argc, char **argv)
{
	static struct server srv;
	const char *name = "default";
	int opt, is_inetd = 0, rc;

	log_init("smtpd");
	while ((opt = getopt(argc, argv, "is:")) != -1) {
		if (opt == 'i')
			is_inetd = 1;
		else if (opt == 's')
			name = optarg;
		else
			die(EXIT_PERM, 0, "usage: bh-smtpd [-s SERVER] [-i]");
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* a file size limit is a write error */
	if (conf_open(&servers_cdb, "servers") < 0 ||
	    (rc = server_load(&srv, name)) < 0)
		die(EXIT_TEMP, errno, "unable to read servers.cdb");
	if (rc == 0 && !is_inetd)
		die(EXIT_PERM, 0, "no server %s in servers.cdb", name);
	if (is_inetd)
		serve_inetd(&srv);
	else {
		signals_setup();
		serve(&srv);
	}
	return EXIT_DONE;
}
