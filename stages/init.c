/*
 * bh-init: create a root, the directory one bridgehead instance lives in.
 *
 * writes  DIR/cdb/ (default configuration sources and Makefile, only those
 *         missing: an existing file is never overwritten), DIR/spool/QUEUE/
 *         {tmp,new,retry} for every queue, DIR/spool/msg (all 0700),
 *         DIR/mailroot (0711), DIR/log (0700); existing directories keep
 *         their modes
 * exit    0 done; 100 bad usage; 111 a directory or file could not be made
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#include "log.h"
#include "root.h"
#include "spool.h"

extern const struct { const char *name, *text; } default_files[];

static void
make_dir(const char *dir, const char *sub, mode_t mode)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof path, "%s/%s", dir, sub) >= (int)sizeof path)
		die(EXIT_PERM, ENAMETOOLONG, "%s/%s", dir, sub);
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		die(EXIT_TEMP, errno, "unable to create %s", path);
}

/* Asks the file system to spread the folders made in dir over its block
 * groups (ext4's "top directory" flag, chattr +T): each queue then gets
 * its own inodes, and a file created in one queue does not search past
 * the inodes freed in the others (ext4 without a journal skips every
 * inode freed in the last seconds of a group on each create). Where the
 * flag is unknown nothing changes. */
static void
spread_dir(const char *dir, const char *sub)
{
	char path[PATH_MAX];
	int fd, flags;

	snprintf(path, sizeof path, "%s/%s", dir, sub);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && !(flags & FS_TOPDIR_FL)) {
		flags |= FS_TOPDIR_FL;
		(void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
}

/* Writes path unless it exists, via path.tmp and rename. */
static void
write_new(const char *path, const char *head, const char *text)
{
	char tmp[PATH_MAX + 8];
	int fd;

	if (access(path, F_OK) == 0)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		die(EXIT_TEMP, errno, "unable to create %s", tmp);
	if (write_all(fd, head, strlen(head)) < 0 ||
	    write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ||
	    close(fd) < 0 || rename(tmp, path) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", path);
}

static void
write_defaults(const char *dir)
{
	char path[PATH_MAX], head[PATH_MAX + 64], prog[PATH_MAX - 64];
	size_t i;

	for (i = 0; default_files[i].name != NULL; i++) {
		head[0] = '\0';
		/* the root's Makefile knows where this build's compiler is */
		if (strcmp(default_files[i].name, "Makefile") == 0 &&
		    root_prog(prog, sizeof prog, "bh-config") == 0)
			snprintf(head, sizeof head, "BH_CONFIG ?= %s\n", prog);
		snprintf(path, sizeof path, "%s/cdb/%s", dir, default_files[i].name);
		write_new(path, head, default_files[i].text);
	}
}

int
main(int argc, char **argv)
{
	static const char *queues[] = { SPOOL_QUEUES };
	static const char *subs[] = { "tmp", "new", "retry" };
	const char *dir;
	char sub[64];
	size_t q, i;

	log_init("init");
	if (argc != 2)
		die(EXIT_PERM, 0, "usage: bh-init DIR");
	dir = argv[1];
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die(EXIT_TEMP, errno, "unable to create %s", dir);
	make_dir(dir, "cdb", 0755);
	/* queued mail and logs are the MTA's own; mailroot only lets its
	 * mailboxes' owners (an IMAP server) reach their Maildir */
	make_dir(dir, "spool", 0700);
	spread_dir(dir, "spool");
	make_dir(dir, "spool/msg", 0700);
	make_dir(dir, "mailroot", 0711);
	make_dir(dir, "log", 0700);
	for (q = 0; q < sizeof queues / sizeof queues[0]; q++) {
		snprintf(sub, sizeof sub, "spool/%s", queues[q]);
		make_dir(dir, sub, 0700);
		for (i = 0; i < sizeof subs / sizeof subs[0]; i++) {
			snprintf(sub, sizeof sub, "spool/%s/%s", queues[q], subs[i]);
			make_dir(dir, sub, 0700);
		}
	}
	write_defaults(dir);
	return EXIT_DONE;
}
