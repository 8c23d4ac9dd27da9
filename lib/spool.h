#ifndef BH_SPOOL_H
#define BH_SPOOL_H
/*
 * spool: the queue directories and the crash-safe hand-over between them.
 *
 * ROOT/spool/QUEUE/tmp/    being written; never a finished envelope
 * ROOT/spool/QUEUE/new/    ready: the stage of QUEUE takes these in name order
 * ROOT/spool/QUEUE/retry/  deferred: the file's mtime is the next attempt;
 *                          moved back into new/ when that time comes
 * ROOT/spool/msg/NAME      content, one hard link per envelope named NAME
 *
 * Names are message ids (lib/id), optionally with a ".suffix" when a stage
 * splits one message into several envelopes.
 */
#include <stddef.h>
#include <time.h>

#define SPOOL_QUEUES "incoming", "route", "local", "remote", "ndr", "badmail"

struct spool {
	char queue[32];
	int dirfd, tmpfd, newfd, retryfd;
	int inotify;		/* -1 until the first wait */
	int retry_wd;		/* its watch of retry/ */
	char **names;		/* the current batch from new/, sorted */
	size_t nnames, pos;
	time_t next_due;	/* earliest mtime in retry/, 0 = none known */
	int due_known;
};

/* Opens ROOT/spool/QUEUE and its sub-folders (creating missing ones). */
int spool_open(struct spool *s, const char *queue);
void spool_close(struct spool *s);

/* Writes text as QUEUE/tmp/NAME, fsyncs it, renames it to QUEUE/SUB/NAME
 * (SUB "new" or "retry") and fsyncs that directory. With SUB "retry" the file's
 * mtime is set to `when` first. The caller removes its input only after this
 * returns 0: a crash leaves the message in one queue or both, never neither. */
int spool_put(const struct spool *s, const char *sub, const char *name,
    const char *text, size_t len, time_t when);

/* spool_put into new/. */
int spool_handover(const struct spool *next, const char *name,
    const char *text, size_t len);

/* Unlinks QUEUE/SUB/NAME (ENOENT is not an error). */
int spool_remove(const struct spool *s, const char *sub, const char *name);

/* The next envelope name in new/, oldest first. Moves due entries from
 * retry/ into new/ as their time comes. With once set it returns 0 when
 * new/ is empty; otherwise it waits (inotify, no polling) until work
 * arrives, a retry falls due or stop_requested is set.
 * 1 name stored, 0 nothing (once) or stopping, -1 error. */
int spool_next(struct spool *s, char *name, size_t cap, int once);

/* Moves every entry of retry/ into new/ now (bh-queue retry). */
int spool_retry_all(struct spool *s);

/* For a stage, before it reads its input: opens QUEUE/new/NAME and holds an
 * exclusive flock(2) on it, so bh-queue (lib/queue.h, queue_take) cannot
 * take the envelope away while the stage works on it. The fd, to be kept
 * open until the input has left new/ (after stage_done or stage_defer
 * removed it), then closed; or -1 with errno ENOENT when the envelope is
 * gone (bh-queue renamed it first: the stage must not act on it).
 * A lock still held after a second is not bh-queue's (it holds one only for
 * a rename) but this stage's own, e.g. a parent process that read the
 * envelope with a lock before forking the caller (a flock belongs to the
 * open file, which the child shares): the fd is then returned unlocked
 * rather than waiting forever. Such a parent must read without a lock. */
int spool_lock(const struct spool *s, const char *name);

/* spool_lock that also gives the locked file's stat (its size: a caller
 * reads the envelope through the returned fd, not by name again). */
struct stat;
int spool_lock_stat(const struct spool *s, const char *name,
    struct stat *held);

/* Set by SIGTERM/SIGINT (stage_start installs the handlers). */
extern volatile int spool_stop_requested;

/* fsync a directory by its fd; 0 or -1. */
int spool_fsync_dir(int dirfd);

/* write(2) until all is written or an error. 0 or -1. */
int write_all(int fd, const void *p, size_t len);

#endif
