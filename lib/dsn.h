#ifndef BH_DSN_H
#define BH_DSN_H
/*
 * dsn: delivery status notifications (RFC 3464 inside an RFC 6522
 * multipart/report) and the xtext encoding of ENVID and ORCPT (RFC 3461);
 * the table of enhanced status codes they quote is dsncode.h. bh-ndr
 * decides who gets a report; this module only writes it.
 */
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "dsncode.h"

/* Appends s to b as xtext: '+', '=' and bytes outside '!'..'~' as "+HH". */
int dsn_xtext_encode(struct buf *b, const char *s);

/* Decodes xtext into out[cap]. 0, or -1 on a bad "+HH", a NUL byte or
 * when it does not fit. */
int dsn_xtext_decode(const char *in, char *out, size_t cap);

/* Formats t as an RFC 5322 date in UTC ("Sat, 28 Nov 2026 11:22:33 +0000"),
 * independent of the locale. */
void dsn_date(time_t t, char *out, size_t cap);

/* Appends the Diagnostic-Code value for a reason text: "smtp; REPLY" when
 * the reason is an SMTP reply ("550 5.1.1 ..."), else "X-bridgehead; TEXT". */
int dsn_diagnostic(struct buf *b, const char *reason);

/* Appends "Name: value" CRLF with value made 7-bit printable (control and
 * 8-bit bytes become '?') and folded at spaces before 78 columns. */
int dsn_header(struct buf *b, const char *name, const char *value);

/* One recipient of a report. */
struct dsn_rcpt {
	const char *addr;
	const char *orcpt;	/* the ORCPT value "type;xtext", or NULL */
	const char *action;	/* failed delayed delivered relayed expanded */
	const char *status;	/* enhanced status code */
	const char *remote_mta;	/* the server that answered, or NULL */
	const char *reason;	/* the reply or explanation, or NULL */
	time_t last_attempt;	/* 0: not known */
};

enum dsn_return { DSN_RETURN_NONE, DSN_RETURN_HEADERS, DSN_RETURN_FULL };

/* Everything a report says. The strings are borrowed. */
struct dsn_report {
	const char *kind;	/* failure, delay or success: the wording */
	const char *hostname;	/* Reporting-MTA and MAILER-DAEMON@hostname */
	const char *to;		/* the original envelope sender */
	const char *subject;	/* the report's whole Subject */
	const char *msgid;	/* the report's own Message-ID, "<...>" */
	const char *orig_msgid;	/* the original Message-ID, or NULL */
	const char *orig_subject; /* or NULL */
	const char *envid;	/* ENVID as xtext, or NULL */
	const char *note;	/* the first paragraph of the text, in place of
				 * the kind's own; or NULL */
	const char *boundary;	/* unique; never found in the original */
	time_t arrived, now;
	time_t retry_until;	/* delays: when we give up; 0 none */
	const struct dsn_rcpt *rcpt;
	size_t nrcpt;
	int content_fd;		/* the original message, or -1 */
	enum dsn_return ret;
	int is_8bit;		/* the returned part holds 8-bit bytes */
};

/* 1 when the part of the message in fd that `ret` returns holds a byte
 * above 127, 0 when not, -1 on a read error. Reads from offset 0. */
int dsn_scan_8bit(int fd, enum dsn_return ret);

/* Writes the whole report to out: headers, the readable text, the
 * message/delivery-status part and the returned message (read from
 * content_fd at offset 0). CRLF line ends. 0, or -1 with errno. */
int dsn_write(int out, const struct dsn_report *r);

#endif
