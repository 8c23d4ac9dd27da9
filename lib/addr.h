#ifndef BH_ADDR_H
#define BH_ADDR_H
/*
 * addr: mail addresses (RFC 5321 mailboxes, stored without angle brackets).
 */
#include <stddef.h>

/* The domain part (after the last '@'), or "" when there is none. */
const char *addr_domain(const char *addr);

/* Copies addr lower-cased into out (the form used as a lookup key).
 * 0, or -1 when it does not fit. */
int addr_key(const char *addr, char *out, size_t cap);

/* Copies the local part (before the last '@') into out. 0 or -1. */
int addr_local(const char *addr, char *out, size_t cap);

#endif
