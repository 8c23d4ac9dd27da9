#ifndef BH_COMMIT_H
#define BH_COMMIT_H
/*
 * commit: the group commit of lib/stage, internal to it (stage.h is the
 * interface). The outputs of stage_pass and stage_move wait here for their
 * fsync, their rename and the directory fsyncs, and the inputs stage_done
 * finished meanwhile for their removal, until commit_batch does them all
 * together (see "Group commit." in commit.c). stage_sync_dir and
 * stage_done are defined there too.
 */
#include "buf.h"
#include "stage.h"

/* Makes the batch durable, then removes the inputs finished meanwhile.
 * A failure leaves every input in place and dies 111. */
void commit_batch(void);

/* Writes the text into the output's file and queues the rest for the
 * commit (text NULL: an unchanged input only moves); indir is the stage's
 * new/ for stage_move, else -1. 0, or -1 with errno. */
int commit_put(int tmpdir, int indir, int dstdir, const char *name,
    const struct buf *text);

/* A content link was made without a fsync: the commit fsyncs spool/msg. */
void commit_link(void);

/* The stage whose inputs the commit unlocks and removes. */
void commit_stage(struct stage *st);

/* stage.c's, for the commit: releases the lock held on the input NAME;
 * removes the input NAME at once (see stage_done). */
void stage_unlock(struct stage *st, const char *name);
void stage_done_now(struct stage *st, const char *name, int keep_content);

#endif
