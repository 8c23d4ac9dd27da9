#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "root.h"

static char root_buf[PATH_MAX], bin_buf[PATH_MAX];

/* The directory of /proc/self/exe, cut `up` more levels. */
static void
exe_dir(char *buf, size_t cap, int up)
{
	ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
	char *slash;
	int i;

	if (n <= 0) {
		snprintf(buf, cap, ".");
		return;
	}
	buf[n] = '\0';
	for (i = 0; i <= up; i++) {
		if ((slash = strrchr(buf, '/')) == NULL || slash == buf) {
			snprintf(buf, cap, "/");
			return;
		}
		*slash = '\0';
	}
}

const char *
root_dir(void)
{
	const char *env;

	if (root_buf[0] != '\0')
		return root_buf;
	if ((env = getenv("BH_ROOT")) != NULL && *env != '\0')
		snprintf(root_buf, sizeof root_buf, "%s", env);
	else
		exe_dir(root_buf, sizeof root_buf, 1);
	return root_buf;
}

const char *
root_bindir(void)
{
	const char *env;

	if (bin_buf[0] != '\0')
		return bin_buf;
	if ((env = getenv("BH_BIN")) != NULL && *env != '\0')
		snprintf(bin_buf, sizeof bin_buf, "%s", env);
	else
		exe_dir(bin_buf, sizeof bin_buf, 0);
	return bin_buf;
}

int
root_path(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n, m;

	n = snprintf(buf, cap, "%s/", root_dir());
	if (n < 0 || (size_t)n >= cap)
		goto toolong;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= cap - n)
		goto toolong;
	return 0;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

int
root_prog(char *buf, size_t cap, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s", root_bindir(), name);

	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
