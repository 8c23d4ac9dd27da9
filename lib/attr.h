#ifndef BH_ATTR_H
#define BH_ATTR_H
/*
 * attr: the words and name=value pairs shared by configuration sources and
 * envelope lines. A value with spaces, '"' or '\' is written double-quoted
 * with '"' and '\' escaped by '\'. Control bytes are never written.
 */
#include <stddef.h>

#include "buf.h"

struct attr {
	char *name, *value;
};

struct attrs {
	struct attr *v;
	size_t n, cap;
};

#define ATTRS_INIT { NULL, 0, 0 }

/* Reads the next word at *p (bare, or a whole quoted string) into out,
 * unquoted, and advances *p. 1 read, 0 end of line, -1 bad quoting or longer
 * than cap - 1. A bare word ends at a space or tab. */
int attr_word(const char **p, char *out, size_t cap);

/* Reads the next name=value at *p: the name is bare (up to '='), the value
 * bare or quoted. 1 read, 0 end of line, -1 no '=', bad quoting or too long. */
int attr_pair(const char **p, char *name, size_t ncap, char *value, size_t vcap);

/* The next item of a comma-separated list at *p (an attribute value such
 * as address-space= or schedule=), blanks around it trimmed, into out;
 * advances *p. 1 read, 0 end of the list. Items longer than cap - 1 are
 * cut. */
int attr_list_next(const char **p, char *out, size_t cap);

/* Appends s to b, quoted when it needs to be (or is empty). */
int attr_quote(struct buf *b, const char *s);

/* Looks up name: its value, or NULL. */
const char *attrs_get(const struct attrs *a, const char *name);

/* Sets name to value (a copy), replacing an earlier value; value NULL
 * removes it. 0, or -1 ENOMEM. */
int attrs_set(struct attrs *a, const char *name, const char *value);

/* Appends " name=value" for each attribute, in order. */
int attrs_format(const struct attrs *a, struct buf *b);

void attrs_free(struct attrs *a);

#endif
