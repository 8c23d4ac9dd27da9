/*
 * strtable: a string-keyed hash table, open addressing (see strtable.h).
 * The capacity is a power of two kept at least twice the count, so a probe
 * always ends at an empty slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strtable.h"

static size_t
strtable_hash(const char *s)
{
	size_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

struct strtable_slot *
strtable_slot(const struct strtable *t, const char *key)
{
	size_t i = strtable_hash(key) & (t->cap - 1);

	while (t->v[i].key != NULL && strcmp(t->v[i].key, key) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->v[i];
}

void *
strtable_get(const struct strtable *t, const char *key)
{
	return t->cap == 0 ? NULL : strtable_slot(t, key)->value;
}

static void
strtable_grow(struct strtable *t)
{
	struct strtable bigger = { NULL, t->cap ? t->cap * 2 : 64, t->n };
	size_t i;

	if ((bigger.v = calloc(bigger.cap, sizeof *bigger.v)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	for (i = 0; i < t->cap; i++)
		if (t->v[i].key != NULL)
			*strtable_slot(&bigger, t->v[i].key) = t->v[i];
	free(t->v);
	*t = bigger;
}

void *
strtable_put(struct strtable *t, const char *key, void *value)
{
	struct strtable_slot *s;

	if (2 * (t->n + 1) > t->cap)
		strtable_grow(t);
	s = strtable_slot(t, key);
	if (s->key != NULL)
		return s->value;
	s->key = key;
	s->value = value;
	t->n++;
	return NULL;
}
