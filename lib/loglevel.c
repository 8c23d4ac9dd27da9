#include <string.h>

#include "conf.h"
#include "loglevel.h"

static int
level_of(const char *s, size_t n)
{
	static const char *names[] = { "none", "min", "medium", "max" };
	int i;

	for (i = 0; i < 4; i++)
		if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0)
			return i;
	return -1;
}

int
loglevel_parse(const char *setting, const char *category)
{
	size_t clen = strlen(category), n;
	int level = LOGLEVEL_MIN, star = -1, found = -1;
	const char *p = setting, *eq;

	while (*p != '\0') {
		p += strspn(p, " \t,");
		if ((n = strcspn(p, " \t,")) == 0)
			break;
		/* a bare LEVEL, like "*=LEVEL", sets the default */
		if ((eq = memchr(p, '=', n)) == NULL) {
			if ((star = level_of(p, n)) < 0)
				return -1;
		} else if ((level = level_of(eq + 1, n - (eq + 1 - p))) < 0)
			return -1;
		else if ((size_t)(eq - p) == clen && strncmp(p, category, clen) == 0)
			found = level;
		else if (eq - p == 1 && *p == '*')
			star = level;
		p += n;
	}
	return found >= 0 ? found : star >= 0 ? star : LOGLEVEL_MIN;
}

int
loglevel(const char *category)
{
	char buf[512];
	int level;

	if (conf_setting("log-level", NULL, buf, sizeof buf) != 1)
		return LOGLEVEL_MIN;
	return (level = loglevel_parse(buf, category)) < 0 ? LOGLEVEL_MIN : level;
}

int
loglevel_on(const char *category, int level)
{
	return loglevel(category) >= level;
}
