/*
 * fuzz-source: the configuration source reader (lib/source) that bh-config
 * runs over every file in cdb/. An administrator's typo must give a
 * FILE:LINE error, never a crash. The first input byte picks the flags
 * (records with name=value attributes, or words only); the rest is the
 * file. Checks: records stay within the documented bounds, an error has a
 * message and a line, line numbers never go backwards, and every list
 * value splits into items that fit.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "source.h"

static void
record_check(const struct source_record *r)
{
	char item[256];
	const char *p;
	size_t i;
	int rc;

	FUZZ_CHECK(r->nword <= SOURCE_WORDS_MAX);
	FUZZ_CHECK(r->attrs.n <= SOURCE_ATTRS_MAX);
	for (i = 0; i < r->nword; i++)
		FUZZ_CHECK(r->word[i] != NULL);
	for (i = 0; i < r->attrs.n; i++) {
		FUZZ_CHECK(strlen(r->attrs.v[i].name) < SOURCE_NAME_MAX);
		FUZZ_CHECK(source_attr_index(r, r->attrs.v[i].name) == (int)i);
		FUZZ_CHECK(r->attr_times[i] >= 1);
		for (p = r->attrs.v[i].value;
		    (rc = source_item(&p, item, sizeof item)) != 0;)
			if (rc < 0)
				break;
			else
				FUZZ_CHECK(strlen(item) < sizeof item);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct source s;
	struct source_record r;
	unsigned last = 0;
	FILE *f;
	int rc, n = 0;

	if (size < 2 ||
	    (f = fmemopen((void *)(data + 1), size - 1, "r")) == NULL)
		return 0;
	FUZZ_CHECK(source_init(&s, f, data[0] & 1 ? SOURCE_WORDS_ONLY : 0) == 0);
	memset(&r, 0, sizeof r);
	while ((rc = source_next(&s, &r)) != 0 && rc != -2 && n++ < 100000) {
		if (rc == 1) {
			FUZZ_CHECK(r.line >= last);
			last = r.line;
			record_check(&r);
		} else
			FUZZ_CHECK(s.error[0] != '\0' && s.error_line > 0);
		source_record_free(&r);
	}
	source_record_free(&r);
	source_close(&s);
	return 0;
}
