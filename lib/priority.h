#ifndef BH_PRIORITY_H
#define BH_PRIORITY_H
/*
 * priority: a message's priority as its header states it (Priority,
 * X-Priority, Importance), for connectors restricted by priorities=.
 */
#include <stddef.h>

enum { PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_HIGH };

/* The priority of a header block (up to the blank line; the first header
 * that says something wins), PRIORITY_NORMAL when none does. */
int priority_of_headers(const char *headers, size_t len);

/* Is priority named in a comma-separated list of low, normal, high? */
int priority_listed(const char *list, int priority);

#endif
