#include <string.h>
#include <strings.h>

#include "attr.h"
#include "priority.h"

enum { ITEM_MAX = 512 };

/* The priority one header value states, or -1 when it says nothing. */
static int
priority_of(const char *name, const char *v)
{
	if (strcasecmp(name, "x-priority") == 0) {
		if (*v == '1' || *v == '2')
			return PRIORITY_HIGH;
		if (*v == '4' || *v == '5')
			return PRIORITY_LOW;
		return *v == '3' ? PRIORITY_NORMAL : -1;
	}
	if (strncasecmp(v, "urgent", 6) == 0 || strncasecmp(v, "high", 4) == 0)
		return PRIORITY_HIGH;
	if (strncasecmp(v, "non-urgent", 10) == 0 ||
	    strncasecmp(v, "low", 3) == 0)
		return PRIORITY_LOW;
	if (strncasecmp(v, "normal", 6) == 0)
		return PRIORITY_NORMAL;
	return -1;
}

/* One header line (without its end) checked for a priority; -1 none. */
static int
priority_line(const char *line, size_t len)
{
	static const char *names[] = { "priority", "x-priority", "importance" };
	char buf[128];
	size_t i, n;

	n = len < sizeof buf - 1 ? len : sizeof buf - 1;
	memcpy(buf, line, n);
	buf[n] = '\0';
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		n = strlen(names[i]);
		if (strncasecmp(buf, names[i], n) == 0 && buf[n] == ':') {
			const char *v = buf + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return priority_of(names[i], v);
		}
	}
	return -1;
}

int
priority_of_headers(const char *headers, size_t len)
{
	const char *p = headers, *end = headers + len, *nl;
	size_t n;
	int pr;

	while (p < end) {
		nl = memchr(p, '\n', end - p);
		n = (nl != NULL ? nl : end) - p;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;	/* the blank line: the body starts */
		if ((pr = priority_line(p, n)) >= 0)
			return pr;
		p = nl != NULL ? nl + 1 : end;
	}
	return PRIORITY_NORMAL;
}

int
priority_listed(const char *list, int priority)
{
	static const char *words[] = { "low", "normal", "high" };
	char item[ITEM_MAX];

	while (attr_list_next(&list, item, sizeof item))
		if (strcasecmp(item, words[priority]) == 0)
			return 1;
	return 0;
}
