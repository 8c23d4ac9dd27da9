#ifndef BH_RECYCLE_H
#define BH_RECYCLE_H
/*
 * recycle: spent envelope files kept for reuse. On this kind of file system
 * creating a file costs far more than rewriting one (ext4 without a
 * journal scans for recently freed inodes on every create, and a freed
 * block is discarded synchronously), so a stage gives its finished inputs
 * to its pool instead of unlinking them, and writes its next outputs (an
 * envelope, or a Maildir message) into them.
 *
 * A file given to the pool may still carry its old name on disk until the
 * directory it left is fsync'ed: rewritten before that, a crash could bring
 * the old name back with another message's text. So a given file waits
 * (pending) until a commit that fsyncs that directory anyway has run (the
 * caller asks which directories to fsync with recycle_seal, and
 * recycle_settle makes the files given before the seal available), or
 * until recycle_take, finding none available, fsyncs them itself.
 *
 * The files live in one directory (a stage's is spool/recycle/QUEUE) as
 * ".recycle.PID.N"; the pool keeps its descriptor open.
 * Only the process that opened the pool uses it: in a forked child
 * (bh-remote's workers) recycle_take and recycle_give decline, and the caller
 * creates and unlinks files as before.
 */
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

enum { RECYCLE_NAME_MAX = 64 };

/* Opens the pool in directory dirfd (the pool keeps it, with an
 * exclusive flock), adopting the ".recycle." files a previous run left
 * there. 0, or -1 (EWOULDBLOCK: another process has this pool; go on
 * without one). */
int recycle_open(int dirfd);

/* recycle_open of a stage's pool, ROOT/spool/recycle/QUEUE (created when
 * missing). 0, or -1 with errno (EWOULDBLOCK: another process has it). */
int recycle_open_queue(const char *queue);

/* The pool's directory, or -1 when there is none (not opened, or a child). */
int recycle_dir(void);

/* An available file opened for writing, its name (in recycle_dir) into name
 * and its current size into *size: the caller writes from offset 0 and
 * truncates what is left of the old text. -1 when none is available.
 * With none available but several pending, it fsyncs the directories
 * they left (one fsync for all of them) and takes one of those. */
int recycle_take(char name[RECYCLE_NAME_MAX], off_t *size);

/* Opens dirfd/name for writing when it is a regular file with no other
 * link (*st set); else removes that name (the other link stays) and
 * returns -1. Checked before a byte of the file changes. Also used by
 * lib/spare. */
int recycle_open_sole(int dirfd, const char *name, struct stat *st);

/* A new empty file in recycle_dir under a fresh name (when recycle_take had
 * none), opened for writing. -1 with errno on failure. */
int recycle_create(char name[RECYCLE_NAME_MAX]);

/* Takes the file fromdir/name into the pool (renamed into recycle_dir),
 * pending until fromdir is fsync'ed. 0, or -1 when the pool declines (no
 * pool, a child, full, or the rename failed): the caller unlinks it. */
int recycle_give(int fromdir, const char *name);

/* The file recycle_dir/name (taken earlier) holds spent text again, by an
 * exchange with a name in fromdir: pending as with recycle_give (fromdir -1:
 * it was never shown elsewhere, available at once). When the pool is full
 * it is unlinked instead. */
void recycle_return(int fromdir, const char *name);

/* Forgets a taken file that will not come back (it was handed on, or it
 * failed: then with unlink set it is removed). */
void recycle_drop(const char *name, int unlink_it);

/* Starts a commit: *dirs gets the directories (fds) that pending files
 * left, to be fsync'ed; the returned seal is passed to recycle_settle after
 * those fsyncs. */
unsigned recycle_seal(const int **dirs, size_t *ndirs);

/* After recycle_seal: the files from fromdir are not to be settled by
 * this commit (it does not fsync fromdir: they wait for a later one). */
void recycle_hold_dir(int fromdir);

/* The directories of the files pending at seal were fsync'ed (but those
 * held back): they are available now. */
void recycle_settle(unsigned seal);

#endif
