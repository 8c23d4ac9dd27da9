#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "dest.h"
#include "root.h"
#include "spool.h"

static int
dest_path(const char *dest, char *path, size_t cap, const char *suffix)
{
	if (*dest == '\0' || *dest == '.' || strchr(dest, '/') != NULL ||
	    strlen(dest) >= DEST_NAME_MAX) {
		errno = EINVAL;
		return -1;
	}
	return root_path(path, cap, "spool/state/%s%s", dest, suffix);
}

static void
set_ready(struct dest_state *st)
{
	memset(st, 0, sizeof *st);
	snprintf(st->state, sizeof st->state, "Ready");
}

/* One "key value" line into st. */
static void
parse_line(struct dest_state *st, const char *line)
{
	const char *v = strchr(line, ' ');

	if (v == NULL)
		return;
	v++;
	if (strncmp(line, "state ", 6) == 0)
		snprintf(st->state, sizeof st->state, "%s", v);
	else if (strncmp(line, "error ", 6) == 0)
		snprintf(st->error, sizeof st->error, "%s", v);
	else if (strncmp(line, "next-attempt ", 13) == 0)
		st->next_attempt = strtoll(v, NULL, 10);
	else if (strncmp(line, "since ", 6) == 0)
		st->since = strtoll(v, NULL, 10);
}

int
dest_read(const char *dest, struct dest_state *st)
{
	char path[PATH_MAX], line[1024];
	FILE *f;

	set_ready(st);
	if (dest_path(dest, path, sizeof path, "") < 0)
		return -1;
	if ((f = fopen(path, "r")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		parse_line(st, line);
	}
	fclose(f);
	return 1;
}

int
dest_write(const char *dest, const struct dest_state *st)
{
	char path[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX];
	struct buf b = BUF_INIT;
	int fd, rc = -1, err;

	if (dest_path(dest, path, sizeof path, "") < 0 ||
	    dest_path(dest, tmp, sizeof tmp, ".tmp") < 0 ||
	    root_path(dir, sizeof dir, "spool/state") < 0)
		return -1;
	mkdir(dir, 0700);
	if (buf_printf(&b, "state %s\nerror %s\nnext-attempt %lld\nsince %lld\n",
	    st->state, st->error, (long long)st->next_attempt,
	    (long long)st->since) < 0)
		return -1;
	for (char *p = b.data; *p != '\0'; p++)
		if (*p == '\r')
			*p = ' ';
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		goto out;
	if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0) {
		err = errno;
		close(fd);
		errno = err;
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0)
		goto out;
	rc = 0;
out:
	err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

int
dest_clear(const char *dest)
{
	char path[PATH_MAX];

	if (dest_path(dest, path, sizeof path, "") < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	return 0;
}
