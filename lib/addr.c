#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

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

static int
addr_atext(int c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* The length of one valid multi-byte UTF-8 character at s (RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0. */
static size_t
addr_utf8_len(const char *p)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t n, i;
	unsigned long c;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/* How many bytes of s make one character allowed by is_ok (ASCII) or,
 * with utf8 set, one UTF-8 character: 0 when neither. */
static size_t
addr_char(const char *s, int (*is_ok)(int), int utf8)
{
	if ((unsigned char)*s < 0x80)
		return *s != '\0' && is_ok((unsigned char)*s) ? 1 : 0;
	return utf8 ? addr_utf8_len(s) : 0;
}

/* dot-string: atoms of atext separated by single dots. Its length. */
static size_t
addr_dot_string(const char *s, int utf8)
{
	size_t i = 0, n;

	for (;;) {
		size_t start = i;
		while ((n = addr_char(s + i, addr_atext, utf8)) > 0)
			i += n;
		if (i == start)
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

static int
addr_qtext(int c)
{
	return c >= 32 && c <= 126;
}

/* quoted-string: its length including both quotes, or 0. */
static size_t
addr_quoted(const char *s, int utf8)
{
	size_t i = 1, n;

	if (s[0] != '"')
		return 0;
	for (;;) {
		if (s[i] == '"')
			return i + 1;
		if (s[i] == '\\')
			i++;
		if ((n = addr_char(s + i, addr_qtext, utf8)) == 0)
			return 0;
		i += n;
	}
}

static int
addr_ldh(int c)
{
	return isalnum(c) || c == '-' || c == '_';
}

/* A domain name: labels of letters, digits, '-' (and '_', which real mail
 * uses; and U-labels with SMTPUTF8), not starting or ending with '-'. Its
 * length, or 0. */
static size_t
addr_name(const char *s, int utf8)
{
	size_t i = 0, n;

	for (;;) {
		size_t start = i;
		while ((n = addr_char(s + i, addr_ldh, utf8)) > 0)
			i += n;
		if (i == start || i - start > 63 || s[start] == '-' ||
		    s[i - 1] == '-')
			return 0;
		if (s[i] != '.')
			return i > ADDR_DOMAIN_MAX ? 0 : i;
		i++;
	}
}

/* "[1.2.3.4]" or "[IPv6:...]": its length, or 0. */
static size_t
addr_literal(const char *s)
{
	const char *end = strchr(s, ']');
	char text[64];
	unsigned char bin[16];
	size_t len;

	if (s[0] != '[' || end == NULL || (len = end - s - 1) >= sizeof text)
		return 0;
	memcpy(text, s + 1, len);
	text[len] = '\0';
	if (strncasecmp(text, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, text + 5, bin) != 1)
			return 0;
	} else if (inet_pton(AF_INET, text, bin) != 1)
		return 0;
	return len + 2;
}

static size_t
addr_domain_len(const char *s, int utf8)
{
	return s[0] == '[' ? addr_literal(s) : addr_name(s, utf8);
}

/* "@d1,@d2:" — its length (0 when there is no route), or -1. */
static int
addr_route(const char *s, int utf8)
{
	size_t i = 0, n;

	if (s[0] != '@')
		return 0;
	for (;;) {
		if (s[i] != '@' || (n = addr_domain_len(s + i + 1, utf8)) == 0)
			return -1;
		i += 1 + n;
		if (s[i] == ':')
			return i + 1;
		if (s[i] != ',')
			return -1;
		i++;
	}
}

/* Writes the local part, unquoted when the quotes are not needed. */
static int
addr_put_local(const char *s, size_t len, char *out, size_t cap)
{
	char plain[ADDR_LOCAL_MAX + 1];
	size_t i, n = 0;

	if (s[0] == '"') {
		for (i = 1; i + 1 < len && n < ADDR_LOCAL_MAX; i++) {
			if (s[i] == '\\')
				i++;
			plain[n++] = s[i];
		}
		plain[n] = '\0';
		if (i + 1 == len && n > 0 && addr_dot_string(plain, 1) == n) {
			s = plain;
			len = n;
		}
	}
	if (len >= cap)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

int
addr_parse(const char *in, char *out, size_t cap, int flags)
{
	int utf8 = (flags & ADDR_UTF8) != 0, rlen;
	size_t llen, dlen;

	if (strlen(in) > ADDR_MAX - 2)
		return -1;
	if ((flags & ADDR_ALLOW_POSTMASTER) && strcasecmp(in, "postmaster") == 0)
		return snprintf(out, cap, "%s", in) < (int)cap ? 0 : -1;
	if ((rlen = addr_route(in, utf8)) < 0)
		return -1;
	in += rlen;
	llen = in[0] == '"' ? addr_quoted(in, utf8) : addr_dot_string(in, utf8);
	if (llen == 0 || llen > ADDR_LOCAL_MAX + 2 || in[llen] != '@')
		return -1;
	dlen = addr_domain_len(in + llen + 1, utf8);
	if (dlen == 0 || in[llen + 1 + dlen] != '\0')
		return -1;
	if (addr_put_local(in, llen, out, cap) < 0)
		return -1;
	if (strlen(out) + 1 + dlen >= cap)
		return -1;
	strcat(out, "@");
	strcat(out, in + llen + 1);
	return 0;
}

int
addr_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

int
addr_is_literal(const char *addr)
{
	return addr_domain(addr)[0] == '[';
}

int
addr_has_route(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t len = at ? (size_t)(at - addr) : strlen(addr);

	return memchr(addr, '%', len) != NULL || memchr(addr, '!', len) != NULL ||
	    memchr(addr, '@', len) != NULL;
}

int
addr_domain_in(const char *domain, const char *zone)
{
	size_t dlen = strlen(domain), zlen = strlen(zone);

	if (dlen == zlen)
		return strcasecmp(domain, zone) == 0;
	return dlen > zlen && domain[dlen - zlen - 1] == '.' &&
	    strcasecmp(domain + dlen - zlen, zone) == 0;
}
