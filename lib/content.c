#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content.h"
#include "root.h"
#include "spare.h"
#include "spool.h"

static int msg_fd = -1;

static int
msg_dir(void)
{
	char path[PATH_MAX];

	if (msg_fd >= 0)
		return msg_fd;
	if (root_path(path, sizeof path, "spool/msg") < 0)
		return -1;
	msg_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return msg_fd;
}

static int
content_make(const char *name, int keep)
{
	int dir = msg_dir(), fd;

	if (dir < 0)
		return -1;
	if ((fd = spare_take(dir, name, keep)) >= 0)
		return fd;
	return openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

int
content_create(const char *name)
{
	return content_make(name, 0);
}

int
content_create_over(const char *name)
{
	return content_make(name, 1);
}

int
content_cut(int fd)
{
	off_t at = lseek(fd, 0, SEEK_CUR);
	struct stat sb;

	if (at < 0 || fstat(fd, &sb) < 0)
		return -1;
	return sb.st_size > at ? ftruncate(fd, at) : 0;
}

int
content_commit(int fd)
{
	int dir = msg_dir(), err;

	if (content_cut(fd) < 0 || fsync(fd) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	if (close(fd) < 0 || dir < 0)
		return -1;
	return spool_fsync_dir(dir);
}

int
content_dirfd(void)
{
	return msg_dir();
}

int
content_open(const char *name)
{
	int dir = msg_dir();

	if (dir < 0)
		return -1;
	return openat(dir, name, O_RDONLY | O_CLOEXEC);
}

int
content_exists(const char *name)
{
	int fd = content_open(name);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

int
content_link(const char *from, const char *to)
{
	int dir = msg_dir();

	if (dir < 0)
		return -1;
	if (linkat(dir, from, dir, to, 0) < 0 && errno != EEXIST)
		return -1;
	return spool_fsync_dir(dir);
}

int
content_link_lazy(const char *from, const char *to)
{
	int dir = msg_dir();

	if (dir < 0)
		return -1;
	if (linkat(dir, from, dir, to, 0) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
content_sync(void)
{
	int dir = msg_dir();

	return dir < 0 ? -1 : spool_fsync_dir(dir);
}

int
content_unlink(const char *name)
{
	int dir = msg_dir();

	if (dir < 0)
		return -1;
	if (spare_give(dir, name) == 0)
		return 0;
	if (unlinkat(dir, name, 0) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

int
content_abort(int fd, const char *name)
{
	if (fd >= 0)
		close(fd);
	return content_unlink(name);
}
