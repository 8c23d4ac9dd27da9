#ifndef BH_STRTABLE_H
#define BH_STRTABLE_H
/*
 * strtable: a string-keyed hash table (open addressing, FNV-1a), so that
 * bh-config finds duplicate names and addresses in constant time rather
 * than by comparing every pair. Keys are kept by reference: they must live
 * as long as the table. Running out of memory dies with EXIT_TEMP.
 */
#include <stddef.h>

struct strtable_slot {
	const char *key;
	void *value;
};

struct strtable {
	struct strtable_slot *v;
	size_t cap, n;
};

/* The value of key, or NULL. */
void *strtable_get(const struct strtable *t, const char *key);

/* Adds key unless present: the earlier value, or NULL when value was
 * added. */
void *strtable_put(struct strtable *t, const char *key, void *value);

/* The slot of key, present (its key set) or where it would go; t must not
 * be empty. For replacing a value or reaching the stored key. */
struct strtable_slot *strtable_slot(const struct strtable *t, const char *key);

#endif
