#ifndef BH_SYNCALL_H
#define BH_SYNCALL_H
/*
 * syncall: fsync several descriptors at the same time. A message is
 * durable only once its content, the content's directory entry and its
 * envelope are on disk; done one after another, a single SMTP session
 * waits for each flush in turn. With helper threads (made on first use,
 * one per extra descriptor, signals blocked) the waits overlap.
 */
#include <stddef.h>

enum { SYNCALL_MAX = 4 };

/* fsyncs fds[0..n-1] (n <= SYNCALL_MAX) concurrently. 0, or -1 with errno
 * of a failed one (every one was still tried). */
int syncall(const int *fds, size_t n);

#endif
