#ifndef BH_SPARE_H
#define BH_SPARE_H
/*
 * spare: message content and envelope files kept for reuse across
 * programs, in ROOT/spool/spare/msg/ and ROOT/spool/spare/env/.
 *
 * On ext4 without a journal, creating a file scans past every inode freed
 * in the last seconds (up to 35 s while the inode table is dirty) in its
 * block group, so under load each create costs time in proportion to the
 * deletions before it: bh-smtpd spent most of its CPU there. The content
 * files are created by the receiving programs and freed by the last stage
 * that finishes with them, in other processes: instead of unlinking the
 * last link to a content file, content_unlink gives it here, and
 * content_create takes one from here before it creates.
 *
 * Safety: a file is reused only after its departure from spool/msg is
 * durable (the taker fsyncs spool/msg after listing the spares it will use
 * and before writing into any of them), so a crash can never bring back
 * an old name pointing at new text. A spare that still has another link
 * (which only a crash and fsck can produce) is never written.
 */

/* Gives spool/msg/NAME (dirfd: spool/msg) to the spares when it is its
 * last link and there is room. 0 given, -1 not (the caller unlinks). */
int spare_give(int msgdir, const char *name);

/* Takes a spare as spool/msg/NAME (never replacing an existing NAME),
 * opened for writing at its start and emptied, or with keep its old bytes
 * left for the caller to cut after writing (emptying frees the blocks,
 * and a freed block is discarded at once). fd, or -1 (none: the caller
 * creates). */
int spare_take(int msgdir, const char *name, int keep);

/* The same for envelopes, in spool/spare/env/: a stage that is done with
 * its input spool/QUEUE/new/NAME (newdir) gives it instead of removing
 * it; a receiving program takes one as tmp/NAME of its next queue
 * (tmpdir) for the envelope it writes. A taker fsyncs each source
 * queue's new/ before it writes into spares that left it. keep as for
 * spare_take. */
int spare_give_envelope(int newdir, const char *queue, const char *name);
int spare_take_envelope(int tmpdir, const char *name, int keep);

#endif
