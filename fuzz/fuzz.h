#ifndef BH_FUZZ_H
#define BH_FUZZ_H
/*
 * fuzz: helpers shared by the libFuzzer targets. Inputs are copied into
 * buffers of exactly their size (plus the NUL a C string needs), so
 * AddressSanitizer sees any read past what the peer sent.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of data[0..size); NUL bytes inside stay (the
 * string then ends early, as it would for a C parser fed by the network). */
static inline char *
fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits the input at the first byte sep: *rest and *nrest get what
 * follows it (nothing when it is absent). Returns the first part's copy. */
static inline char *
fuzz_split(const uint8_t *data, size_t size, int sep,
    const uint8_t **rest, size_t *nrest)
{
	const uint8_t *p = memchr(data, sep, size);
	size_t n = p != NULL ? (size_t)(p - data) : size;

	*rest = p != NULL ? p + 1 : data + size;
	*nrest = p != NULL ? size - n - 1 : 0;
	return fuzz_string(data, n);
}

/* Stops the fuzzer on a broken invariant: libFuzzer reports the abort as
 * a crash and keeps the input. */
#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

#endif
