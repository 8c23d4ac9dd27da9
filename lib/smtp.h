#ifndef BH_SMTP_H
#define BH_SMTP_H
/*
 * smtp: the server side of the protocol's text: replies with enhanced status
 * codes (RFC 2034/3463), the command table, and the MAIL and RCPT parameters
 * of the extensions we offer (SIZE RFC 1870, BODY RFC 6152/3030, DSN RFC
 * 3461: RET ENVID NOTIFY ORCPT, AUTH RFC 4954).
 */
#include <stddef.h>

#include "net.h"

/* Called with every line sent (is_reply 1) or received (0) when set: the
 * protocol log. Secrets never pass through it. */
extern void (*smtp_trace)(int is_reply, const char *line);

/* Sends a reply: "CODE ECODE TEXT" (ECODE may be NULL). A text holding
 * '\n' becomes a multi-line reply, each line with the code and "-" but the
 * last. Buffered: it leaves with the next read or net_flush. 0 or -1. */
int smtp_reply(struct net *n, int code, const char *ecode, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One entry of a command table, ended by a NULL name. */
struct smtp_command {
	const char *name;
	int (*run)(void *session, char *args);
};

/* Finds the command that line starts with (case-insensitive, then end or a
 * space); *args points after the name and its spaces. NULL when none. */
const struct smtp_command *smtp_command_find(const struct smtp_command *table,
    char *line, char **args);

/* A refusal: code, enhanced code, text. */
struct smtp_error {
	int code;
	const char *ecode;
	const char *text;
};

/* "FROM:<path>" (keyword "FROM") or "TO:<path>": copies the inside of the
 * angle brackets into path and advances *p past '>'. Spaces after the
 * colon are tolerated. 0, or -1 on bad syntax. */
int smtp_path(const char **p, const char *keyword, char *path, size_t cap);

/* MAIL parameters, validated. Strings are "" when absent. */
struct smtp_mail_params {
	unsigned long long size;	/* declared SIZE, 0 = none */
	char body[16];			/* 7BIT 8BITMIME BINARYMIME */
	char ret[8];			/* FULL HDRS */
	char envid[104];		/* xtext, as received */
	char auth[520];			/* AUTH=, decoded mailbox or "<>" */
	int has_smtputf8;
};

struct smtp_rcpt_params {
	char notify[48];		/* NEVER or SUCCESS,FAILURE,DELAY */
	char orcpt[520];		/* addr-type;xtext as received */
};

/* Parse what follows the path. 0, or -1 with err set (555 5.5.4 unknown
 * parameter, 501 5.5.4 bad value or repeated). */
int smtp_mail_parse(const char *p, struct smtp_mail_params *m,
    struct smtp_error *err);
int smtp_rcpt_parse(const char *p, struct smtp_rcpt_params *r,
    struct smtp_error *err);

/* xtext (RFC 3461 §4): 1 valid, 0 not. */
int smtp_xtext_valid(const char *s);

/* Decodes xtext into out. 0, or -1 when invalid or too long. */
int smtp_xtext_decode(const char *s, char *out, size_t cap);

/* Decodes base64 (RFC 4648, padding required) into out; *len set.
 * 0 or -1 (bad input or too long). */
int smtp_base64_decode(const char *s, unsigned char *out, size_t cap,
    size_t *len);

/* Encodes len bytes as base64 into out (NUL-terminated). 0 or -1. */
int smtp_base64_encode(const unsigned char *p, size_t len, char *out,
    size_t cap);

#endif
