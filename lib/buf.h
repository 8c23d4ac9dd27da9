#ifndef BH_BUF_H
#define BH_BUF_H
/*
 * buf: a growable byte string for text we build ourselves (envelopes,
 * reports, headers). Untrusted input never sizes a buf without a limit
 * checked by the caller first. data is always NUL-terminated.
 */
#include <stddef.h>

struct buf {
	char *data;
	size_t len, cap;
};

#define BUF_INIT { NULL, 0, 0 }

/* Each returns 0, or -1 with errno ENOMEM (the buf is left as it was). */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, int c);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
