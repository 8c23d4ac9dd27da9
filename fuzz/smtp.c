/*
 * fuzz-smtp: one SMTP command line as a client may send it, through the
 * command table lookup, the MAIL FROM / RCPT TO path and parameter parsers
 * (SIZE, BODY, RET, ENVID, AUTH, NOTIFY, ORCPT), the xtext decoder and the
 * base64 decoder of AUTH. Checks: a parsed path fits its buffer, an error
 * always carries a 5xx code with an enhanced code, and base64 re-encoding
 * decodes to the same bytes.
 */
#include <string.h>

#include "addr.h"
#include "fuzz.h"
#include "smtp.h"

static int
fuzz_run(void *session, char *args)
{
	return 0;
}

static const struct smtp_command commands[] = {
	{ "EHLO", fuzz_run }, { "HELO", fuzz_run }, { "MAIL", fuzz_run },
	{ "RCPT", fuzz_run }, { "DATA", fuzz_run }, { "BDAT", fuzz_run },
	{ "AUTH", fuzz_run }, { "STARTTLS", fuzz_run }, { "RSET", fuzz_run },
	{ "ETRN", fuzz_run }, { NULL, NULL },
};

static void
fuzz_params(const char *p)
{
	struct smtp_mail_params m;
	struct smtp_rcpt_params r;
	struct smtp_error err;

	if (smtp_mail_parse(p, &m, &err) < 0)
		FUZZ_CHECK(err.code >= 500 && err.code < 600 && err.ecode);
	else
		FUZZ_CHECK(strlen(m.envid) <= 100);
	if (smtp_rcpt_parse(p, &r, &err) < 0)
		FUZZ_CHECK(err.code >= 500 && err.code < 600 && err.ecode);
}

/* The path in both keywords, then its mailbox, then the parameters. */
static void
fuzz_path(const char *line)
{
	static const char *keywords[] = { "FROM", "TO" };
	char path[ADDR_MAX + 2], mailbox[ADDR_MAX];
	const char *p;
	size_t i;

	for (i = 0; i < 2; i++) {
		p = line;
		if (smtp_path(&p, keywords[i], path, sizeof path) < 0)
			continue;
		FUZZ_CHECK(strlen(path) < sizeof path);
		if (addr_parse(path, mailbox, sizeof mailbox,
		    ADDR_ALLOW_POSTMASTER) == 0)
			FUZZ_CHECK(strlen(mailbox) < sizeof mailbox);
		fuzz_params(p);
	}
}

static void
fuzz_base64(const char *s)
{
	unsigned char raw[512], again[512];
	char text[700];
	size_t len, len2;

	if (smtp_base64_decode(s, raw, sizeof raw, &len) < 0)
		return;
	FUZZ_CHECK(len <= sizeof raw);
	FUZZ_CHECK(smtp_base64_encode(raw, len, text, sizeof text) == 0);
	FUZZ_CHECK(smtp_base64_decode(text, again, sizeof again, &len2) == 0);
	FUZZ_CHECK(len2 == len && memcmp(raw, again, len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_string(data, size), *args = NULL;
	char out[600];
	const struct smtp_command *c;

	if ((c = smtp_command_find(commands, line, &args)) != NULL) {
		FUZZ_CHECK(args >= line && args <= line + strlen(line));
		fuzz_path(args);
		fuzz_base64(args);
	}
	fuzz_path(line);
	fuzz_params(line);
	fuzz_base64(line);
	if (smtp_xtext_decode(line, out, sizeof out) == 0)
		FUZZ_CHECK(smtp_xtext_valid(line));
	free(line);
	return 0;
}
