/*
 * fuzz-header: the message header as bh-smtpd scans it while the data
 * streams by (Received: lines counted against max-hops, Message-ID and
 * Subject kept for the envelope), fed in pieces cut where the input says,
 * and the priority headers bh-route reads (Priority, X-Priority,
 * Importance). The scanner is lib/smtpd_header.c. Checks: the kept values
 * fit and are single lines, the Received count never exceeds the lines
 * fed, and the cut points do not change the result.
 */
#include <string.h>

#include "connector.h"
#include "fuzz.h"
#include "smtpd_header.h"

static void
header_scan_init(struct header_scan *h)
{
	memset(h, 0, sizeof *h);
	h->at_bol = 1;
}

static void
header_check(const struct header_scan *h, size_t size)
{
	FUZZ_CHECK(strlen(h->msgid) < sizeof h->msgid);
	FUZZ_CHECK(strlen(h->subject) < sizeof h->subject);
	FUZZ_CHECK(strpbrk(h->msgid, "\r\n") == NULL);
	FUZZ_CHECK(strpbrk(h->subject, "\r\n") == NULL);
	FUZZ_CHECK(h->nreceived >= 0 && (size_t)h->nreceived <= size / 9);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct header_scan whole, pieces;
	char *copy = fuzz_string(data, size);
	size_t i, step;

	header_scan_init(&whole);
	smtpd_header_feed(&whole, copy, size);
	header_check(&whole, size);
	/* the same bytes in pieces of 1..8 bytes, as the network may cut them */
	header_scan_init(&pieces);
	for (i = 0; i < size; i += step) {
		step = 1 + data[i] % 8;
		if (step > size - i)
			step = size - i;
		smtpd_header_feed(&pieces, copy + i, step);
	}
	FUZZ_CHECK(whole.nreceived == pieces.nreceived);
	FUZZ_CHECK(strcmp(whole.msgid, pieces.msgid) == 0);
	FUZZ_CHECK(strcmp(whole.subject, pieces.subject) == 0);
	FUZZ_CHECK(whole.is_done == pieces.is_done);
	i = connector_priority(copy, size);
	FUZZ_CHECK(i == PRIORITY_HIGH || i == PRIORITY_NORMAL ||
	    i == PRIORITY_LOW);
	free(copy);
	return 0;
}
