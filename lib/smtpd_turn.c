/*
 * smtpd_turn: bh-smtpd's ETRN (RFC 1985: held and waiting mail moved to
 * spool/remote/new) and ATRN (RFC 2645: the connection turned around).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "attr.h"
#include "buf.h"
#include "conf.h"
#include "connector.h"
#include "directory.h"
#include "envelope.h"
#include "log.h"
#include "net.h"
#include "root.h"
#include "smtp.h"
#include "smtpd_commands.h"
#include "smtpd_session.h"
#include "smtpd_turn.h"
#include "spool.h"

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
	const struct connector *c = name ? connectors_find(&smtpd_connectors, name) : NULL;
	const char *list = c ? attrs_get(&c->attrs, "trigger-accounts") : NULL;

	if (list == NULL || *list == '\0')
		return 1;
	return t->s->auth_user[0] != '\0' && (smtpd_list_has(list, t->s->auth_user) ||
	    smtpd_list_has(list, t->s->auth_box));
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
	connectors_refresh(&smtpd_connectors);
	rc = etrn_move(t, "hold") | etrn_move(t, "retry");
	if (t->nmoved > 0 && spool_fsync_dir(t->newfd) < 0)
		rc = -1;
	close(t->newfd);
	return rc;
}

int
smtpd_cmd_etrn(void *v, char *args)
{
	struct session *s = v;
	int mode = args[0] == '@' ? ETRN_SUBDOMAINS : args[0] == '#' ?
	    ETRN_QUEUE : ETRN_DOMAIN;
	const char *node = args + (mode != ETRN_DOMAIN);
	char check[ADDR_MAX], parsed[ADDR_MAX];
	struct etrn t = { 0 };

	if (!s->srv->is_etrn)
		return smtpd_reply_error(s, 502, "5.5.1", "ETRN not available");
	if (s->helo[0] == '\0' || s->has_mail)
		return smtpd_reply_error(s, 503, "5.5.1", s->has_mail ? "ETRN not "
		    "allowed in a mail transaction" : "Send HELO or EHLO first");
	snprintf(check, sizeof check, "x@%s", node);
	if (*node == '\0' || (mode != ETRN_QUEUE &&
	    addr_parse(check, parsed, sizeof parsed, 0) < 0) || strchr(node, '/') ||
	    strchr(node, ' '))
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: ETRN domain");
	directory_refresh(&smtpd_dir);
	if (mode != ETRN_QUEUE && smtpd_domain_accepted(node) == 1)
		return smtpd_reply_error(s, 459, "4.7.1", "%s: node not allowed: a "
		    "local domain", node);
	t.s = s;
	t.node = node;
	t.mode = mode;
	if (etrn_run(&t) < 0)
		return smtpd_reply_error(s, 458, "4.3.0", "Unable to queue messages for "
		    "node %s", node);
	log_event("etrn", "peer=%s node=%s moved=%d denied=%d",
	    log_quote(s->peer), log_quote(args), t.nmoved, t.ndenied);
	if (t.nmoved == 0 && t.ndenied > 0)
		return smtpd_reply_error(s, 459, "4.7.1", "%s: node not allowed: "
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
	    (smtpd_list_has(list, s->auth_user) || smtpd_list_has(list, s->auth_box));
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
		for (i = 0; i < smtpd_connectors.n && !ok; i++)
			ok = atrn_connector_ok(s, &smtpd_connectors.v[i]) &&
			    atrn_wants(&smtpd_connectors.v[i], domain);
		if (!ok) {
			snprintf(bad, cap, "%s", domain);
			return -1;
		}
	}
	for (i = 0; i < smtpd_connectors.n; i++)
		if (atrn_connector_ok(s, &smtpd_connectors.v[i]) &&
		    atrn_wants(&smtpd_connectors.v[i], domains))
			buf_printf(dests, "%s%s", dests->len ? "," : "",
			    smtpd_connectors.v[i].name);
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
		    smtpd_list_has(dests, dest))
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
		return smtpd_reply_error(s, 502, "5.5.1", "Command not implemented"), -1;
	if (s->helo[0] == '\0' || s->has_mail)
		return smtpd_reply_error(s, 503, "5.5.1", s->has_mail ? "ATRN not "
		    "allowed in a mail transaction" : "Send EHLO first"), -1;
	if (s->auth_user[0] == '\0')
		return smtpd_reply_error(s, 530, "5.7.0", "Authentication required"), -1;
	if (strchr(args, ' ') != NULL || strlen(args) > 1000)
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: ATRN [domain[,domain]]"),
		    -1;
	return 0;
}

int
smtpd_cmd_atrn(void *v, char *args)
{
	struct session *s = v;
	struct buf dests = BUF_INIT;
	char bad[ADDR_MAX];
	int n;

	if (atrn_allowed(s, args) < 0)
		return 0;
	connectors_refresh(&smtpd_connectors);
	if ((n = atrn_dests(s, args, &dests, bad, sizeof bad)) < 0 ||
	    dests.len == 0) {
		smtpd_reply_error(s, 450, "4.7.1", "ATRN request refused%s%s",
		    n < 0 ? ": " : "", n < 0 ? bad : "");
		return buf_free(&dests), 0;
	}
	if ((n = atrn_count(dests.data)) <= 0) {
		if (n < 0)
			smtpd_reply_error(s, 451, "4.3.0", "Unable to process ATRN request "
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
