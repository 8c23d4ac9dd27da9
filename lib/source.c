#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

int
source_init(struct source *s, FILE *f, int flags)
{
	memset(s, 0, sizeof *s);
	s->flags = flags;
	s->line = malloc(SOURCE_LINE_MAX + 1);
	s->value = malloc(SOURCE_LINE_MAX + 1);
	if (s->line == NULL || s->value == NULL) {
		source_close(s);
		errno = ENOMEM;
		return -1;
	}
	s->f = f;
	return 0;
}

int
source_open(struct source *s, const char *path, int flags)
{
	FILE *f;
	int err;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (source_init(s, f, flags) < 0) {
		err = errno;
		fclose(f);
		errno = err;
		return -1;
	}
	return 0;
}

void
source_close(struct source *s)
{
	if (s->f != NULL)
		fclose(s->f);
	free(s->line);
	free(s->value);
	s->f = NULL;
	s->line = s->value = NULL;
}

void
source_record_free(struct source_record *r)
{
	size_t i;

	for (i = 0; i < r->nword; i++)
		free(r->word[i]);
	attrs_free(&r->attrs);
	memset(r, 0, sizeof *r);
}

/* Reads one physical line into s->line. 1 read, 0 end of file, -2 read
 * error. A line too long, or holding a NUL or control byte, is read to its
 * end and flagged in s->bad: the reader stays in step with the file. */
static int
source_read_line(struct source *s)
{
	size_t n = 0;
	int c;

	s->bad = NULL;
	if (s->is_eof)
		return 0;
	while ((c = getc_unlocked(s->f)) != '\n') {
		if (c == EOF) {
			if (ferror(s->f))
				return -2;
			s->is_eof = 1;
			if (n == 0)
				return 0;
			break;
		}
		if (n == SOURCE_LINE_MAX) {
			s->bad = "line too long (the limit is 65536 bytes)";
			continue;
		}
		if (c == '\0' && s->bad == NULL)
			s->bad = "NUL byte in line";
		else if ((c < ' ' && c != '\t' && c != '\r') || c == 0x7f)
			s->bad = s->bad ? s->bad : "control character in line";
		s->line[n++] = c;
	}
	if (n > 0 && s->line[n - 1] == '\r')
		n--;
	if (s->bad == NULL && memchr(s->line, '\r', n) != NULL)
		s->bad = "control character in line";
	s->line[n] = '\0';
	s->len = n;
	s->lineno++;
	return 1;
}

/* Cuts the comment off s->line: '#' at the start of a word, outside quotes. */
static void
source_strip_comment(struct source *s)
{
	int in_quotes = 0;
	size_t i;

	for (i = 0; i < s->len; i++) {
		char c = s->line[i];
		if (in_quotes) {
			if (c == '\\' && i + 1 < s->len)
				i++;
			else if (c == '"')
				in_quotes = 0;
		} else if (c == '"') {
			in_quotes = 1;
		} else if (c == '#' && (i == 0 || s->line[i - 1] == ' ' ||
		    s->line[i - 1] == '\t')) {
			s->line[i] = '\0';
			s->len = i;
			return;
		}
	}
}

static int
source_is_blank(const char *p)
{
	return p[strspn(p, " \t")] == '\0';
}

static int
source_fail(struct source *s, unsigned line, const char *fmt, const char *arg)
{
	snprintf(s->error, sizeof s->error, fmt, arg);
	s->error_line = line;
	return -1;
}

/* Is the token at p a name=value pair? A '=' before any blank or quote. */
static int
source_is_pair(const char *p)
{
	return p[strcspn(p, " \t\"=")] == '=';
}

static int
source_good_name(const char *name)
{
	const char *p;

	for (p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-'))
			return 0;
	return *name != '\0';
}

int
source_attr_index(const struct source_record *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->attrs.n; i++)
		if (strcmp(r->attrs.v[i].name, name) == 0)
			return (int)i;
	return -1;
}

unsigned
source_attr_line(const struct source_record *r, const char *name)
{
	int i = source_attr_index(r, name);

	return i < 0 ? r->line : r->attr_line[i];
}

/* Adds name=value to r, or joins value to an earlier one with ','. */
static int
source_add_attr(struct source *s, struct source_record *r, const char *name,
    const char *value)
{
	int i = source_attr_index(r, name);
	size_t old;

	if (i < 0) {
		if (r->attrs.n == SOURCE_ATTRS_MAX)
			return source_fail(s, s->lineno, "too many attributes "
			    "(the limit is %s)", "32");
		r->attr_line[r->attrs.n] = s->lineno;
		r->attr_times[r->attrs.n] = 1;
		return attrs_set(&r->attrs, name, value) < 0 ? -2 : 0;
	}
	old = strlen(r->attrs.v[i].value);
	if (old + 1 + strlen(value) > SOURCE_LINE_MAX)
		return source_fail(s, s->lineno, "%s: value too long", name);
	if (r->attr_times[i] < 255)
		r->attr_times[i]++;
	if (old > 0 && *value != '\0') {
		/* value lives in s->value: room for the join was checked */
		memmove(s->value + old + 1, value, strlen(value) + 1);
		memcpy(s->value, r->attrs.v[i].value, old);
		s->value[old] = ',';
		value = s->value;
	} else if (*value == '\0')
		return 0;
	return attrs_set(&r->attrs, name, value) < 0 ? -2 : 0;
}

static int
source_pair(struct source *s, struct source_record *r, const char **p)
{
	char name[SOURCE_NAME_MAX];
	const char *eq = *p + strcspn(*p, "=");

	if ((size_t)(eq - *p) >= sizeof name)
		return source_fail(s, s->lineno, "%s", "attribute name too long");
	if (attr_pair(p, name, sizeof name, s->value, SOURCE_LINE_MAX + 1) < 0)
		return source_fail(s, s->lineno, "%s", eq == *p ?
		    "attribute without a name" : "unterminated quoted value");
	if (!source_good_name(name))
		return source_fail(s, s->lineno, "bad attribute name \"%s\" "
		    "(use a-z, 0-9 and -)", name);
	return source_add_attr(s, r, name, s->value);
}

static int
source_word(struct source *s, struct source_record *r, const char **p)
{
	if (r->attrs.n > 0)
		return source_fail(s, s->lineno, "%s", "expected name=value "
		    "after the first attribute");
	if (r->nword == SOURCE_WORDS_MAX)
		return source_fail(s, s->lineno, "%s", "too many words "
		    "(attributes are written name=value)");
	if (attr_word(p, s->value, SOURCE_LINE_MAX + 1) < 0)
		return source_fail(s, s->lineno, "%s", "unterminated quoted value");
	if ((r->word[r->nword] = strdup(s->value)) == NULL)
		return -2;
	r->nword++;
	return 0;
}

/* Adds the words and attributes of the line in s->line to r. */
static int
source_tokens(struct source *s, struct source_record *r)
{
	const char *p = s->line;
	int rc;

	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			return 0;
		if (!(s->flags & SOURCE_WORDS_ONLY) && source_is_pair(p))
			rc = source_pair(s, r, &p);
		else
			rc = source_word(s, r, &p);
		if (rc < 0)
			return rc;
		if (*p != '\0' && *p != ' ' && *p != '\t')
			return source_fail(s, s->lineno, "%s", "text right "
			    "after a quoted value (put a space between)");
	}
}

/* Reads lines up to the first one of a record (column 0, not blank).
 * 1 found (in s->line), 0 end of file, -1 a stray continuation line,
 * -2 read error. */
static int
source_find_start(struct source *s)
{
	int rc;

	if (s->has_pending) {
		s->has_pending = 0;
		return 1;
	}
	while ((rc = source_read_line(s)) == 1) {
		if (s->bad == NULL)
			source_strip_comment(s);
		if (s->bad == NULL && source_is_blank(s->line))
			continue;
		if (s->line[0] != ' ' && s->line[0] != '\t')
			return 1;
		return source_fail(s, s->lineno, "%s", s->bad ? s->bad :
		    "indented line outside a record (a record starts in "
		    "column 0)");
	}
	return rc;
}

/* Reads the continuation lines of the current record into r (after a
 * first error only to skip them). Leaves the next record's first line
 * pending. 0, or -2 on a read error. */
static int
source_continue(struct source *s, struct source_record *r, int *failed)
{
	int rc;

	while ((rc = source_read_line(s)) == 1) {
		if (s->bad == NULL)
			source_strip_comment(s);
		if (s->bad == NULL && source_is_blank(s->line))
			continue;
		if (s->line[0] != ' ' && s->line[0] != '\t') {
			s->has_pending = 1;
			return 0;
		}
		if (*failed)
			continue;
		if (s->bad != NULL)
			rc = source_fail(s, s->lineno, "%s", s->bad);
		else
			rc = source_tokens(s, r);
		if (rc == -2)
			return -2;
		*failed = rc < 0;
	}
	return rc;
}

int
source_next(struct source *s, struct source_record *r)
{
	int rc, failed;

	memset(r, 0, sizeof *r);
	if ((rc = source_find_start(s)) <= 0)
		return rc;
	r->line = s->lineno;
	if (s->bad != NULL)
		rc = source_fail(s, s->lineno, "%s", s->bad);
	else
		rc = source_tokens(s, r);
	if (rc == -2)
		goto fail;
	failed = rc < 0;
	if (source_continue(s, r, &failed) == -2) {
		rc = -2;
		goto fail;
	}
	if (!failed)
		return 1;
	rc = -1;
fail:
	source_record_free(r);
	return rc;
}

int
source_item(const char **p, char *out, size_t cap)
{
	const char *s = *p, *end;
	size_t n;

	if (*s == '\0')
		return 0;
	end = s + strcspn(s, ",");
	*p = *end == ',' ? end + 1 : end;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = end - s;
	if (n >= cap)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 1;
}
