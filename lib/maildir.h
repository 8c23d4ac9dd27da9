#ifndef BH_MAILDIR_H
#define BH_MAILDIR_H
/*
 * maildir: one copy of a message into a Maildir (bh-local): a unique name
 * SECONDS.M<usec>P<pid>Q<n>.HOST, the file written and fsync'ed aside (a
 * recycled spool file, lib/recycle.h, or the Maildir's tmp/), renamed into
 * new/ never over an existing file, new/ fsync'ed with the stage's next
 * group commit (stage_sync_dir). Copies get Return-Path and Delivered-To
 * first and LF line ends (BINARYMIME: byte for byte).
 */
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "attr.h"
#include "envelope.h"

enum { MAILDIR_KEEP = 16 };

/* A Maildir kept open between messages. */
struct maildir {
	char path[PATH_MAX];	/* "" for a free slot */
	int tmpfd, newfd;
	dev_t dev;		/* of new/ */
	ino_t ino;
	int is_spool_dev;	/* on the spool's device */
};

/* The Maildirs a process delivers into. */
struct maildirs {
	struct maildir box[MAILDIR_KEEP];
	unsigned next;
	char host[256];
	pid_t pid;
	dev_t spool_dev;	/* of the recycled files, 0 when none */
	unsigned deliveries;
};

/* Sets up l: host name, pid, the recycled files' device (after
 * stage_start opened the pool). */
void maildirs_init(struct maildirs *l);

/* The path of a mailbox's Maildir: its maildir= (relative to the root, or
 * absolute), default mailroot/MAILBOX/Maildir. 0 or -1 (ENAMETOOLONG). */
int maildir_path(const char *box, const struct attrs *rec, char *path,
    size_t cap);

/* Bytes used in MAILDIR/new and MAILDIR/cur. */
long long maildir_usage(const char *maildir);

/* Writes one copy of the content spool/msg/NAME for recipient r of e into
 * the Maildir at path (created with tmp/ new/ cur/ when missing). 0, or -1
 * with errno (ENOENT with no content: the content is missing). */
int maildir_deliver(struct maildirs *l, const char *path, const char *name,
    const struct envelope *e, const struct rcpt *r);

#endif
