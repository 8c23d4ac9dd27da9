/*
 * fuzz-envelope: envelope files (lib/envelope), which every stage reads
 * from the spool and which carry text that peers chose (addresses, ENVID,
 * ORCPT, HELO names, subjects, remote replies). Checks: what parses
 * formats back into text that parses again to the same text (a stage that
 * rewrites an envelope keeps every field and recipient), and the getters
 * see what the parser stored.
 */
#include "envelope.h"
#include "fuzz.h"

static void
envelope_check(const struct envelope *e)
{
	size_t i;

	FUZZ_CHECK(e->sender != NULL);
	for (i = 0; i < e->fields.n; i++)
		FUZZ_CHECK(envelope_get(e, e->fields.v[i].name) != NULL);
	for (i = 0; i < e->nrcpt; i++) {
		FUZZ_CHECK(e->rcpt[i].addr != NULL);
		(void)rcpt_get(&e->rcpt[i], "state");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e = ENVELOPE_INIT, again = ENVELOPE_INIT;
	struct envelope copy = ENVELOPE_INIT, third = ENVELOPE_INIT;
	struct buf one = BUF_INIT, two = BUF_INIT, three = BUF_INIT;
	char *text = fuzz_string(data, size);
	size_t i;

	if (envelope_parse(&e, text, size) == 0) {
		envelope_check(&e);
		FUZZ_CHECK(envelope_format(&e, &one) == 0);
		FUZZ_CHECK(envelope_parse(&again, one.data, one.len) == 0);
		FUZZ_CHECK(again.nrcpt == e.nrcpt);
		FUZZ_CHECK(again.fields.n == e.fields.n);
		FUZZ_CHECK(envelope_format(&again, &two) == 0);
		FUZZ_CHECK(envelope_parse(&third, two.data, two.len) == 0);
		FUZZ_CHECK(envelope_format(&third, &three) == 0);
		FUZZ_CHECK(two.len == three.len &&
		    memcmp(two.data, three.data, two.len) == 0);
		FUZZ_CHECK(envelope_copy_head(&copy, &e) == 0);
		for (i = 0; i < e.nrcpt; i++)
			FUZZ_CHECK(envelope_copy_rcpt(&copy, &e.rcpt[i]) == 0);
		FUZZ_CHECK(copy.nrcpt == e.nrcpt);
	}
	envelope_free(&e);
	envelope_free(&again);
	envelope_free(&copy);
	envelope_free(&third);
	buf_free(&one);
	buf_free(&two);
	buf_free(&three);
	free(text);
	return 0;
}
