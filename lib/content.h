#ifndef BH_CONTENT_H
#define BH_CONTENT_H
/*
 * content: message bodies in ROOT/spool/msg/. Written once by the receiving
 * program; every envelope NAME has its own hard link spool/msg/NAME, so the
 * data is freed by the file system when the last envelope is finished.
 */
#include <stddef.h>

/* Creates spool/msg/NAME for writing (O_EXCL). fd, or -1. */
int content_create(const char *name);

/* content_create for a writer that writes the file from its start, in
 * order, and ends with content_cut or content_commit: a reused file keeps
 * its older bytes until then (cutting them at the end frees nothing when
 * the new text is about as long). fd, or -1. */
int content_create_over(const char *name);

/* Cuts the file at fd's offset when older bytes lie beyond it. 0 or -1. */
int content_cut(int fd);

/* Cuts (content_cut), fsyncs and closes fd, then fsyncs spool/msg: the
 * content is durable. */
int content_commit(int fd);

/* spool/msg, open (for a caller that fsyncs it together with other
 * files: a file's entry there is durable once it is fsync'ed). -1 error. */
int content_dirfd(void);

/* Opens spool/msg/NAME read-only. fd, or -1. */
int content_open(const char *name);

/* 1 when spool/msg/NAME exists, 0 when not. */
int content_exists(const char *name);

/* Adds the link spool/msg/TO for spool/msg/FROM (an existing TO is kept) and
 * makes it durable. Call before handing over an envelope named TO. */
int content_link(const char *from, const char *to);

/* content_link without making it durable: for a batch of links followed by
 * one content_sync before the envelopes that use them are handed over. */
int content_link_lazy(const char *from, const char *to);

/* fsyncs spool/msg (after content_link_lazy). 0 or -1. */
int content_sync(void);

/* Removes spool/msg/NAME (ENOENT is fine). Call after the envelope NAME is
 * gone or handed on under another name. */
int content_unlink(const char *name);

/* Removes spool/msg/tmp-style leftovers: the unfinished file NAME. */
int content_abort(int fd, const char *name);

#endif
