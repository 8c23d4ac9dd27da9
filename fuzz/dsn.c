/*
 * fuzz-dsn: the DSN values a sender controls (RFC 3461 ENVID and ORCPT in
 * xtext, both decoders: lib/dsn for reports, lib/smtp for the wire), the
 * enhanced status codes of replies (RFC 3463) and the header writer that
 * puts remote replies into a report. Checks: xtext encoding decodes back
 * to the same text with both decoders, the two decoders agree on what the
 * wire accepts, every status finds a table row, and a header written from
 * any text is one header: CRLF only before a folding space, 7-bit printable.
 */
#include <string.h>

#include "buf.h"
#include "dsn.h"
#include "fuzz.h"
#include "smtp.h"

static void
fuzz_xtext(const char *s)
{
	struct buf enc = BUF_INIT;
	char *out = malloc(strlen(s) * 3 + 1), *out2 = malloc(strlen(s) + 1);

	FUZZ_CHECK(dsn_xtext_encode(&enc, s) == 0);
	if (enc.data != NULL) {
		FUZZ_CHECK(smtp_xtext_valid(enc.data));
		FUZZ_CHECK(dsn_xtext_decode(enc.data, out, strlen(s) + 1) == 0);
		FUZZ_CHECK(strcmp(out, s) == 0);
		FUZZ_CHECK(smtp_xtext_decode(enc.data, out, strlen(s) + 1) == 0);
		FUZZ_CHECK(strcmp(out, s) == 0);
	}
	/* what the wire accepts, report writing decodes the same way */
	if (smtp_xtext_decode(s, out, strlen(s) + 1) == 0 &&
	    dsn_xtext_decode(s, out2, strlen(s) + 1) == 0)
		FUZZ_CHECK(strcmp(out, out2) == 0);
	buf_free(&enc);
	free(out);
	free(out2);
}

/* One logical header line: printable, folded only with CRLF + blank. */
static void
header_check(const struct buf *b)
{
	size_t i;

	FUZZ_CHECK(b->len >= 2 && memcmp(b->data + b->len - 2, "\r\n", 2) == 0);
	for (i = 0; i < b->len; i++) {
		unsigned char c = b->data[i];
		if (c == '\r')
			FUZZ_CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
		else if (c == '\n')
			FUZZ_CHECK(i + 1 == b->len || b->data[i + 1] == ' ');
		else
			FUZZ_CHECK(c >= ' ' && c <= '~');
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_string(data, size);
	struct buf h = BUF_INIT, d = BUF_INIT;
	const struct dsn_code *c;

	fuzz_xtext(s);
	c = dsn_code_find(s);
	FUZZ_CHECK(c != NULL && c->code != NULL && c->meaning != NULL);
	if (dsn_status_valid(s))
		FUZZ_CHECK(strlen(s) <= 9);
	FUZZ_CHECK(dsn_diagnostic(&d, s) == 0);
	FUZZ_CHECK(dsn_header(&h, "Diagnostic-Code", d.data) == 0);
	header_check(&h);
	buf_free(&h);
	buf_free(&d);
	free(s);
	return 0;
}
