#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"

static void
skip_blanks(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Copies a quoted string starting at the '"' at *p. */
static int
read_quoted(const char **p, char *out, size_t cap)
{
	const char *s = *p + 1;
	size_t n = 0;

	for (;;) {
		char c = *s++;
		if (c == '\0' || c == '\n')
			return -1;
		if (c == '"')
			break;
		if (c == '\\') {
			c = *s++;
			if (c == '\0' || c == '\n')
				return -1;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	*p = s;
	return 1;
}

static int
read_bare(const char **p, char *out, size_t cap, int stop_at_equals)
{
	const char *s = *p;
	size_t n = 0;

	while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\n' &&
	    !(stop_at_equals && *s == '=')) {
		if (n + 1 >= cap)
			return -1;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
	return 1;
}

int
attr_word(const char **p, char *out, size_t cap)
{
	skip_blanks(p);
	if (**p == '\0' || **p == '\n')
		return 0;
	if (**p == '"')
		return read_quoted(p, out, cap);
	return read_bare(p, out, cap, 0);
}

int
attr_pair(const char **p, char *name, size_t ncap, char *value, size_t vcap)
{
	skip_blanks(p);
	if (**p == '\0' || **p == '\n')
		return 0;
	if (read_bare(p, name, ncap, 1) < 0 || **p != '=' || name[0] == '\0')
		return -1;
	(*p)++;
	if (**p == '"')
		return read_quoted(p, value, vcap);
	return read_bare(p, value, vcap, 0);
}

int
attr_list_next(const char **p, char *out, size_t cap)
{
	const char *s = *p, *end;
	size_t n;

	while (*s == ',' || *s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return 0;
	end = s + strcspn(s, ",");
	*p = end;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - s) < cap - 1 ? (size_t)(end - s) : cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 1;
}

int
attr_quote(struct buf *b, const char *s)
{
	const char *q;
	int plain = *s != '\0' && *s != '"';

	for (q = s; *q != '\0'; q++)
		if (*q == ' ' || *q == '\t' || *q == '"' || *q == '\\')
			plain = 0;
	if (plain) {
		for (q = s; *q != '\0'; q++)
			if (buf_addc(b, (unsigned char)*q < ' ' ? '?' : *q) < 0)
				return -1;
		return 0;
	}
	if (buf_addc(b, '"') < 0)
		return -1;
	for (q = s; *q != '\0'; q++) {
		if ((*q == '"' || *q == '\\') && buf_addc(b, '\\') < 0)
			return -1;
		if (buf_addc(b, (unsigned char)*q < ' ' ? '?' : *q) < 0)
			return -1;
	}
	return buf_addc(b, '"');
}

const char *
attrs_get(const struct attrs *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, name) == 0)
			return a->v[i].value;
	return NULL;
}

int
attrs_set(struct attrs *a, const char *name, const char *value)
{
	char *copy = NULL;
	size_t i;

	if (value != NULL && (copy = strdup(value)) == NULL)
		return -1;
	for (i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].name, name) != 0)
			continue;
		free(a->v[i].value);
		if (copy != NULL) {
			a->v[i].value = copy;
			return 0;
		}
		free(a->v[i].name);
		memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof a->v[0]);
		a->n--;
		return 0;
	}
	if (copy == NULL)
		return 0;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		struct attr *v = realloc(a->v, cap * sizeof *v);
		if (v == NULL)
			goto nomem;
		a->v = v;
		a->cap = cap;
	}
	if ((a->v[a->n].name = strdup(name)) == NULL)
		goto nomem;
	a->v[a->n++].value = copy;
	return 0;
nomem:
	free(copy);
	errno = ENOMEM;
	return -1;
}

int
attrs_format(const struct attrs *a, struct buf *b)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (buf_printf(b, " %s=", a->v[i].name) < 0 ||
		    attr_quote(b, a->v[i].value) < 0)
			return -1;
	return 0;
}

void
attrs_free(struct attrs *a)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		free(a->v[i].name);
		free(a->v[i].value);
	}
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}
