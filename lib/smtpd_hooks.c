/*
 * smtpd_hooks: bh-smtpd's protocol hooks (hooks=): the facts each one
 * sees, and its answer turned into a reply.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "hook.h"
#include "log.h"
#include "root.h"
#include "smtp.h"
#include "smtpd_hooks.h"
#include "smtpd_session.h"

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
		    "%s %s", smtpd_server_host(s->srv), *text ? text : is_perm ?
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
			smtpd_reply_error(s, atoi(line), ecode, "%s", text + 1);
			return;
		}
	}
	if (rc == 100)
		smtpd_reply_error(s, 550, "5.7.1", "%s", *line ? line : "Rejected by policy");
	else if (rc == 111)
		smtpd_reply_error(s, 451, "4.7.1", "%s", *line ? line : "Try again later");
	else
		smtpd_reply_error(s, 451, "4.3.0", "Temporary failure in a protocol hook");
}

/* Runs the server's hooks for an event in order. 0 every hook accepted;
 * -1 one refused and the reply was sent. */
int
smtpd_hooks_run(struct session *s, const char *event, const char *rcpt, int stdin_fd)
{
	const char *p = smtpd_server_get(s->srv, "hooks");
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
