#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

const char *
addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

int
addr_key(const char *addr, char *out, size_t cap)
{
	size_t i, len = strlen(addr);

	if (len >= cap)
		return -1;
	for (i = 0; i <= len; i++)
		out[i] = tolower((unsigned char)addr[i]);
	return 0;
}

int
addr_local(const char *addr, char *out, size_t cap)
{
	const char *at = strrchr(addr, '@');
	size_t len = at ? (size_t)(at - addr) : strlen(addr);

	if (len >= cap)
		return -1;
	memcpy(out, addr, len);
	out[len] = '\0';
	return 0;
}
