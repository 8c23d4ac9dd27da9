/*
 * smtpd_message: bh-smtpd's mail transaction and message: DATA and BDAT,
 * the content and its envelope made durable, the hand-over to
 * spool/incoming before the 250.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "content.h"
#include "envelope.h"
#include "id.h"
#include "log.h"
#include "net.h"
#include "smtp.h"
#include "smtpd_header.h"
#include "smtpd_hooks.h"
#include "smtpd_message.h"
#include "smtpd_session.h"
#include "spare.h"
#include "spool.h"
#include "syncall.h"
#include "track.h"

enum { DATA_LINE_MAX = 1000 };

/* ---- the mail transaction and the message ---- */

static void
message_abort(struct session *s)
{
	if (s->fd >= 0)
		content_abort(s->fd, s->id);
	s->fd = -1;
	s->has_bdat = 0;
}

void
smtpd_transaction_reset(struct session *s)
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
	    smtpd_server_host(s->srv), s->srv->name, received_protocol(s), s->id);
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
unsigned long long
smtpd_message_limit(const struct session *s)
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
	unsigned long long limit = smtpd_message_limit(s);

	smtpd_header_feed(&s->hdr, p, len);
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
		smtpd_header_field(&s->hdr);	/* a message that is all header */
	if (d != NULL && d->has_bare)
		return smtpd_reply_error(s, 554, "5.6.0", "Message refused: bare CR or "
		    "LF in data (lines must end in CRLF)"), -1;
	if (d != NULL && d->has_long_line)
		return smtpd_reply_error(s, 554, "5.6.0", "Message refused: line longer "
		    "than %d octets", DATA_LINE_MAX), -1;
	if (s->is_oversize) {
		/* past max-session-size the session has had its share: the
		 * next MAIL is answered 421 */
		if (s->srv->max_session_size > 0 && s->nbytes + s->msg_bytes >
		    (unsigned long long)s->srv->max_session_size)
			s->nbytes = s->srv->max_session_size;
		return smtpd_reply_error(s, 552, "5.3.4", "Message size exceeds fixed "
		    "maximum message size"), -1;
	}
	if (s->hdr.nreceived + 1 > s->srv->max_hops)
		return smtpd_reply_error(s, 554, "5.4.6", "Too many hops (%d Received: "
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
	smtpd_reply_error(s, 452, "4.3.1", "Insufficient system storage");
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
	rc = smtpd_hooks_run(s, "data", "", fd);
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
		return smtpd_reply_error(s, 452, "4.3.1", "Insufficient system "
		    "storage"), -1;
	}
	if (*smtpd_server_get(s->srv, "hooks") != '\0')
		return message_hooked(s, fd);
	return message_commit(s, fd) < 0 ? message_unstored(s) : 0;
}

/* The message is all here: whatever happens, the transaction is over
 * afterwards, and a refused message leaves nothing behind. */
static void
message_finish(struct session *s, const struct net_data *d)
{
	struct spool *in;

	if (message_store(s, d) == 0)
		message_accepted(s);
	else {
		message_abort(s);
		/* a hand-over that failed only after the envelope reached
		 * incoming/new (its directory's fsync) leaves a queued
		 * message: the client was told 452 and may send it again, at
		 * worst it is delivered twice; its content must stay */
		in = incoming_spool();
		if (in == NULL || faccessat(in->newfd, s->id, F_OK,
		    AT_SYMLINK_NOFOLLOW) < 0)
			content_unlink(s->id);
		else
			log_event("warning", "id=%s msg=\"queued although the "
			    "client was told 452\"", s->id);
	}
	smtpd_transaction_reset(s);
}

/* ---- DATA, BDAT ---- */

static int
data_allowed(struct session *s, const char *args, int is_bdat)
{
	if (!s->has_mail)
		return smtpd_reply_error(s, 503, "5.5.1", "Need MAIL command first"), -1;
	if (s->env.nrcpt == 0)
		return smtpd_reply_error(s, 554, "5.5.1", "No valid recipients"), -1;
	if (!is_bdat && *args != '\0')
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: DATA"), -1;
	if (!is_bdat && s->has_bdat)
		return smtpd_reply_error(s, 503, "5.5.1", "DATA after BDAT"), -1;
	if (!is_bdat && strcmp(s->mail.body, "BINARYMIME") == 0)
		return smtpd_reply_error(s, 503, "5.5.1", "BODY=BINARYMIME requires "
		    "BDAT"), -1;
	return 0;
}

/* The client went away or stalled in the middle of the data: nothing was
 * accepted, and the session ends. */
static int
data_lost(struct session *s)
{
	smtpd_transaction_reset(s);
	smtp_reply(s->net, 421, "4.4.2", "%s Error: timeout or connection lost "
	    "during data", smtpd_server_host(s->srv));
	return -1;
}

int
smtpd_cmd_data(void *v, char *args)
{
	struct session *s = v;
	struct net_data d = { .max_line = DATA_LINE_MAX };
	int rc;

	if (data_allowed(s, args, 0) < 0)
		return 0;
	if (message_begin(s) < 0) {
		log_event("warning", "msg=\"cannot create content\" error=%s",
		    log_quote(strerror(errno)));
		return smtpd_reply_error(s, 452, "4.3.1", "Insufficient system storage");
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

int
smtpd_cmd_bdat(void *v, char *args)
{
	struct session *s = v;
	unsigned long long size;
	int is_last;

	if (bdat_args(args, &size, &is_last) < 0)
		return smtpd_reply_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	s->net->timeout_sec = s->srv->data_timeout;
	/* the chunk is read whatever the answer: the session stays in step */
	if (s->has_mail && s->env.nrcpt > 0 && !s->has_bdat) {
		if (message_begin(s) < 0) {
			if (net_read_exact(s->net, size, NULL, NULL) < 0)
				return data_lost(s);
			smtpd_transaction_reset(s);
			return smtpd_reply_error(s, 452, "4.3.1", "Insufficient system "
			    "storage");
		}
		s->has_bdat = 1;
	}
	if (net_read_exact(s->net, size, s->has_bdat ? message_sink : NULL, s) < 0)
		return data_lost(s);
	s->net->timeout_sec = s->srv->command_timeout;
	if (!s->has_bdat) {
		data_allowed(s, args, 1);
		smtpd_transaction_reset(s);
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
