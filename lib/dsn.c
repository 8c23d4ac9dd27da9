#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "spool.h"

int
dsn_xtext_encode(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (*p < '!' || *p > '~' || *p == '+' || *p == '=') {
			if (buf_printf(b, "+%02X", *p) < 0)
				return -1;
		} else if (buf_addc(b, *p) < 0)
			return -1;
	}
	return 0;
}

static int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')	/* not RFC 3461, but harmless */
		return c - 'a' + 10;
	return -1;
}

int
dsn_xtext_decode(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	int hi, lo;

	for (; *in != '\0'; in++) {
		int c = (unsigned char)*in;
		if (c == '+') {
			if ((hi = hex_value(in[1])) < 0 || (lo = hex_value(in[2])) < 0)
				return -1;
			c = hi << 4 | lo;
			in += 2;
		}
		if (c == 0 || n + 1 >= cap)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

void
dsn_date(time_t t, char *out, size_t cap)
{
	static const char days[][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, cap, "%s, %d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "550 5.1.1 ..." or "550-..." or "550": a reply some SMTP server gave. */
static int
is_smtp_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) &&
	    (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

int
dsn_diagnostic(struct buf *b, const char *reason)
{
	if (buf_adds(b, is_smtp_reply(reason) ? "smtp; " : "X-bridgehead; ") < 0)
		return -1;
	return buf_adds(b, reason);
}

/* Copies s into b as 7-bit printable text on one line. */
static int
add_printable(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++)
		if (buf_addc(b, *p < ' ' || *p > '~' ? (*p == '\t' ? ' ' : '?') :
		    *p) < 0)
			return -1;
	return 0;
}

/* Appends text (one line, printable) broken at spaces so that lines stay
 * within width columns; col is the column the first line starts at, and
 * brk is written at each break (CRLF plus the next line's indent). */
static int
add_wrapped(struct buf *b, const char *text, size_t col, size_t width,
    const char *brk, size_t brk_col)
{
	const char *p = text, *sp;
	size_t wlen;
	int first = 1;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		sp = strchr(p, ' ');
		wlen = sp ? (size_t)(sp - p) : strlen(p);
		if (!first && col + 1 + wlen > width) {
			if (buf_adds(b, brk) < 0)
				return -1;
			col = brk_col;
		} else if (!first) {
			if (buf_addc(b, ' ') < 0)
				return -1;
			col++;
		}
		if (buf_add(b, p, wlen) < 0)
			return -1;
		col += wlen;
		first = 0;
		p += wlen;
	}
	return 0;
}

int
dsn_header(struct buf *b, const char *name, const char *value)
{
	struct buf clean = BUF_INIT;
	int rc = -1;

	if (add_printable(&clean, value) < 0 || buf_adds(&clean, "") < 0)
		goto out;
	if (buf_printf(b, "%s: ", name) < 0 ||
	    add_wrapped(b, clean.data, strlen(name) + 2, 78, "\r\n ", 1) < 0 ||
	    buf_adds(b, "\r\n") < 0)
		goto out;
	rc = 0;
out:
	buf_free(&clean);
	return rc;
}

enum { HEADERS_MAX = 256 << 10, CHUNK = 64 << 10 };

/* Reads the header section of the message in fd (from offset 0) into b:
 * every header line with its line end, without the blank line after it.
 * At most HEADERS_MAX bytes, cut after the last whole line. 0 or -1. */
static int
read_headers(int fd, struct buf *b)
{
	char chunk[4096];
	ssize_t n;
	size_t i;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while (b->len < HEADERS_MAX && (n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (buf_add(b, chunk, n) < 0)
			return -1;
	}
	for (i = 0; i < b->len; i++) {
		int at_start = i == 0 || b->data[i - 1] == '\n';
		if (at_start && (b->data[i] == '\n' || (b->data[i] == '\r' &&
		    i + 1 < b->len && b->data[i + 1] == '\n')))
			break;
	}
	if (i == b->len && b->len >= HEADERS_MAX)	/* cut at a line end */
		while (i > 0 && b->data[i - 1] != '\n')
			i--;
	b->len = i;
	return 0;
}

static int
has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] > 127)
			return 1;
	return 0;
}

int
dsn_scan_8bit(int fd, enum dsn_return ret)
{
	struct buf b = BUF_INIT;
	char chunk[CHUNK];
	ssize_t n;
	int found;

	if (ret == DSN_RETURN_NONE)
		return 0;
	if (ret == DSN_RETURN_HEADERS) {
		found = read_headers(fd, &b) < 0 ? -1 : has_8bit(b.data, b.len);
		buf_free(&b);
		return found;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (has_8bit(chunk, n))
			return 1;
	}
	return 0;
}

/* Copies all of fd (from offset 0) to out. */
static int
copy_all(int out, int fd)
{
	char chunk[CHUNK];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_all(out, chunk, n) < 0)
			return -1;
	}
	return 0;
}

static const char *
intro_text(const char *kind)
{
	if (strcmp(kind, "delay") == 0)
		return "Your message has not yet been delivered to the "
		    "recipients below. The mail system keeps trying; you need "
		    "not send it again. You will be told if it fails for good.";
	if (strcmp(kind, "success") == 0)
		return "Your message was handled for the recipients below, as "
		    "you asked to be told.";
	return "Your message could not be delivered to the recipients below. "
	    "This is a permanent failure: the mail system will not try again.";
}

/* What a positive action means, for the readable part. */
static const char *
action_text(const char *action)
{
	if (strcmp(action, "relayed") == 0)
		return "It was passed on to a mail system that does not send "
		    "delivery notices; no further notice will come.";
	if (strcmp(action, "expanded") == 0)
		return "It was delivered to a list or alias, which passed it on "
		    "to its members.";
	return "It was delivered to the recipient's mailbox.";
}

/* One paragraph of text, wrapped at 72 columns, indented by indent. */
static int
add_paragraph(struct buf *b, const char *indent, const char *text)
{
	struct buf clean = BUF_INIT, brk = BUF_INIT;
	int rc = -1;

	if (add_printable(&clean, text) < 0 || buf_adds(&clean, "") < 0 ||
	    buf_printf(&brk, "\r\n%s", indent) < 0)
		goto out;
	if (buf_adds(b, indent) < 0 || add_wrapped(b, clean.data,
	    strlen(indent), 72, brk.data, strlen(indent)) < 0 ||
	    buf_adds(b, "\r\n") < 0)
		goto out;
	rc = 0;
out:
	buf_free(&clean);
	buf_free(&brk);
	return rc;
}

/* The readable explanation for one recipient: the address, then the
 * reporting server before the code, as Exchange writes "<HOST #5.1.1>". */
static int
text_rcpt(struct buf *b, const struct dsn_report *r, const struct dsn_rcpt *rc)
{
	const struct dsn_code *code = dsn_code_find(rc->status);
	const char *host = rc->remote_mta ? rc->remote_mta : r->hostname;
	struct buf line = BUF_INIT;
	int ok;

	ok = buf_adds(b, "  ") == 0 && add_printable(b, rc->addr) == 0 &&
	    buf_adds(b, "\r\n") == 0 &&
	    buf_printf(&line, "<%s #%s>%s%s", host, rc->status,
	    rc->reason ? " " : "", rc->reason ? rc->reason : "") == 0 &&
	    add_paragraph(b, "    ", line.data) == 0;
	if (ok && rc->status[0] == '2')
		ok = add_paragraph(b, "    ", action_text(rc->action)) == 0;
	else if (ok) {
		buf_reset(&line);
		ok = buf_printf(&line, "What happened: %s", code->meaning) == 0 &&
		    add_paragraph(b, "    ", line.data) == 0;
		buf_reset(&line);
		ok = ok && buf_printf(&line, "What you can do: %s",
		    code->fix) == 0 && add_paragraph(b, "    ", line.data) == 0;
	}
	buf_free(&line);
	return ok && buf_adds(b, "\r\n") == 0 ? 0 : -1;
}

static int
text_part(struct buf *b, const struct dsn_report *r)
{
	char date[64];
	size_t i;

	if (buf_printf(b, "This is the mail system at %s.\r\n\r\n",
	    r->hostname) < 0)
		return -1;
	if (add_paragraph(b, "", r->note ? r->note : intro_text(r->kind)) < 0 ||
	    buf_adds(b, "\r\n") < 0)
		return -1;
	if (r->orig_subject && (buf_adds(b, "  Subject: ") < 0 ||
	    add_printable(b, r->orig_subject) < 0 || buf_adds(b, "\r\n") < 0))
		return -1;
	dsn_date(r->arrived, date, sizeof date);
	if (buf_printf(b, "  Received: %s\r\n", date) < 0)
		return -1;
	if (r->retry_until != 0) {
		dsn_date(r->retry_until, date, sizeof date);
		if (buf_printf(b, "  Trying until: %s\r\n", date) < 0)
			return -1;
	}
	if (buf_adds(b, "\r\n") < 0)
		return -1;
	for (i = 0; i < r->nrcpt; i++)
		if (text_rcpt(b, r, &r->rcpt[i]) < 0)
			return -1;
	return 0;
}

/* An xtext value decoded for display; the xtext itself when the decoded
 * form would not be printable ASCII. */
static int
status_xtext(struct buf *b, const char *name, const char *xtext)
{
	char decoded[1024];
	const unsigned char *p;

	if (dsn_xtext_decode(xtext, decoded, sizeof decoded) < 0)
		return dsn_header(b, name, xtext);
	for (p = (const unsigned char *)decoded; *p != '\0'; p++)
		if (*p < ' ' || *p > '~')
			return dsn_header(b, name, xtext);
	return dsn_header(b, name, decoded);
}

static int
status_rcpt(struct buf *b, const struct dsn_report *r, const struct dsn_rcpt *rc)
{
	struct buf v = BUF_INIT;
	char date[64];
	int ok = 1;

	if (rc->orcpt)
		ok = status_xtext(b, "Original-Recipient", rc->orcpt) == 0;
	ok = ok && buf_printf(&v, "rfc822; %s", rc->addr) == 0 &&
	    dsn_header(b, "Final-Recipient", v.data) == 0 &&
	    dsn_header(b, "Action", rc->action) == 0 &&
	    dsn_header(b, "Status", rc->status) == 0;
	buf_reset(&v);
	if (ok && rc->remote_mta)
		ok = buf_printf(&v, "dns; %s", rc->remote_mta) == 0 &&
		    dsn_header(b, "Remote-MTA", v.data) == 0;
	buf_reset(&v);
	if (ok && rc->reason)
		ok = dsn_diagnostic(&v, rc->reason) == 0 &&
		    dsn_header(b, "Diagnostic-Code", v.data) == 0;
	if (ok && rc->last_attempt != 0) {
		dsn_date(rc->last_attempt, date, sizeof date);
		ok = dsn_header(b, "Last-Attempt-Date", date) == 0;
	}
	if (ok && r->retry_until != 0 && strcmp(rc->action, "delayed") == 0) {
		dsn_date(r->retry_until, date, sizeof date);
		ok = dsn_header(b, "Will-Retry-Until", date) == 0;
	}
	buf_free(&v);
	return ok ? 0 : -1;
}

static int
status_part(struct buf *b, const struct dsn_report *r)
{
	struct buf v = BUF_INIT;
	char date[64];
	size_t i;
	int ok;

	ok = buf_printf(&v, "dns; %s", r->hostname) == 0 &&
	    dsn_header(b, "Reporting-MTA", v.data) == 0;
	if (ok && r->envid)
		ok = status_xtext(b, "Original-Envelope-Id", r->envid) == 0;
	dsn_date(r->arrived, date, sizeof date);
	ok = ok && dsn_header(b, "Arrival-Date", date) == 0;
	for (i = 0; ok && i < r->nrcpt; i++)
		ok = buf_adds(b, "\r\n") == 0 && status_rcpt(b, r, &r->rcpt[i]) == 0;
	buf_free(&v);
	return ok ? 0 : -1;
}

/* A Message-ID worth referring to: "<...>" without spaces or controls. */
static int
is_msgid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	const unsigned char *p;

	if (n < 3 || n > 900 || s[0] != '<' || s[n - 1] != '>')
		return 0;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~')
			return 0;
	return 1;
}

static int
top_headers(struct buf *b, const struct dsn_report *r)
{
	struct buf v = BUF_INIT;
	char date[64];
	int ok;

	dsn_date(r->now, date, sizeof date);
	ok = buf_printf(&v, "Mail Delivery System <MAILER-DAEMON@%s>",
	    r->hostname) == 0 && dsn_header(b, "From", v.data) == 0;
	buf_reset(&v);
	ok = ok && buf_printf(&v, "<%s>", r->to) == 0 &&
	    dsn_header(b, "To", v.data) == 0 &&
	    dsn_header(b, "Subject", r->subject) == 0 &&
	    dsn_header(b, "Date", date) == 0 &&
	    dsn_header(b, "Message-ID", r->msgid) == 0;
	if (ok && is_msgid(r->orig_msgid))
		ok = dsn_header(b, "In-Reply-To", r->orig_msgid) == 0 &&
		    dsn_header(b, "References", r->orig_msgid) == 0;
	buf_reset(&v);
	ok = ok && dsn_header(b, "Auto-Submitted", "auto-replied") == 0 &&
	    dsn_header(b, "MIME-Version", "1.0") == 0 &&
	    buf_printf(&v, "multipart/report; report-type=delivery-status; "
	    "boundary=\"%s\"", r->boundary) == 0 &&
	    dsn_header(b, "Content-Type", v.data) == 0;
	if (ok && r->is_8bit)
		ok = dsn_header(b, "Content-Transfer-Encoding", "8bit") == 0;
	buf_free(&v);
	return ok ? 0 : -1;
}

/* Everything before the returned message's bytes. */
static int
report_head(struct buf *b, const struct dsn_report *r)
{
	static const char *returned[] = { NULL, "text/rfc822-headers",
	    "message/rfc822" };

	if (top_headers(b, r) < 0 ||
	    buf_adds(b, "\r\nThis is a MIME-encapsulated message.\r\n") < 0 ||
	    buf_printf(b, "\r\n--%s\r\n", r->boundary) < 0 ||
	    dsn_header(b, "Content-Type", "text/plain; charset=us-ascii") < 0 ||
	    dsn_header(b, "Content-Description", "Notification") < 0 ||
	    buf_adds(b, "\r\n") < 0 || text_part(b, r) < 0 ||
	    buf_printf(b, "\r\n--%s\r\n", r->boundary) < 0 ||
	    dsn_header(b, "Content-Type", "message/delivery-status") < 0 ||
	    dsn_header(b, "Content-Description", "Delivery report") < 0 ||
	    buf_adds(b, "\r\n") < 0 || status_part(b, r) < 0)
		return -1;
	if (r->ret == DSN_RETURN_NONE || r->content_fd < 0)
		return 0;
	if (buf_printf(b, "\r\n--%s\r\n", r->boundary) < 0 ||
	    dsn_header(b, "Content-Type", returned[r->ret]) < 0 ||
	    (r->is_8bit && dsn_header(b, "Content-Transfer-Encoding",
	    "8bit") < 0) ||
	    dsn_header(b, "Content-Description", r->ret == DSN_RETURN_FULL ?
	    "The original message" : "The original message's headers") < 0)
		return -1;
	return buf_adds(b, "\r\n");
}

int
dsn_write(int out, const struct dsn_report *r)
{
	struct buf b = BUF_INIT;
	int rc = -1, err;

	if (report_head(&b, r) < 0 || write_all(out, b.data, b.len) < 0)
		goto out;
	buf_reset(&b);
	if (r->ret == DSN_RETURN_FULL && r->content_fd >= 0) {
		if (copy_all(out, r->content_fd) < 0)
			goto out;
	} else if (r->ret == DSN_RETURN_HEADERS && r->content_fd >= 0) {
		if (read_headers(r->content_fd, &b) < 0 ||
		    write_all(out, b.data, b.len) < 0)
			goto out;
		buf_reset(&b);
	}
	if (buf_printf(&b, "\r\n--%s--\r\n", r->boundary) < 0 ||
	    write_all(out, b.data, b.len) < 0)
		goto out;
	rc = 0;
out:
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}
