#ifndef BH_SOURCE_H
#define BH_SOURCE_H
/*
 * source: the reader of the configuration source syntax shared by every
 * file in cdb/ (DESIGN.md §5). A record starts in column 0; lines that start
 * with a space or tab continue it. A record is a few leading words (its key:
 * "mailbox demo", "example.com", "hostname mail.example.com") followed by
 * name=value attributes. '#' at the start of a word, outside double quotes,
 * starts a comment. A value is bare or double-quoted ('\' escapes '"' and
 * '\'); a list is one comma-separated value (empty = empty list). An
 * attribute given twice has its values joined with ',' (so a long list may
 * continue over several lines); attr_times says how often it was given, so
 * the caller can refuse repeats of single values.
 *
 * Everything is bounded: a line of more than SOURCE_LINE_MAX bytes, a NUL or
 * a control byte, more than SOURCE_WORDS_MAX words or SOURCE_ATTRS_MAX
 * attributes is a syntax error of that record, reported with its line; the
 * reader then goes on with the next record, so every error can be shown.
 */
#include <stdio.h>

#include "attr.h"

#define SOURCE_LINE_MAX 65536	/* bytes in one line, newline excluded */
#define SOURCE_NAME_MAX 64	/* bytes in an attribute name, NUL included */
#define SOURCE_WORDS_MAX 4
#define SOURCE_ATTRS_MAX 32

/* Flag for source_open: every token is a word, '=' is not special
 * (settings "KEY VALUE" lines, filters). */
enum { SOURCE_WORDS_ONLY = 1 };

struct source_record {
	unsigned line;			/* where the record starts */
	size_t nword;
	char *word[SOURCE_WORDS_MAX];
	struct attrs attrs;
	unsigned attr_line[SOURCE_ATTRS_MAX];	/* first line of attrs.v[i] */
	unsigned char attr_times[SOURCE_ATTRS_MAX];	/* times given, max 255 */
};

struct source {
	FILE *f;
	int flags;
	int is_eof, has_pending;	/* has_pending: s->line starts the next record */
	unsigned lineno;
	size_t len;
	const char *bad;		/* why the current line is unusable, or NULL */
	char *line, *value;		/* SOURCE_LINE_MAX + 1 bytes each */
	char error[256];		/* the last syntax error ... */
	unsigned error_line;		/* ... and its line */
};

/* Opens path for reading. 0, or -1 with errno (ENOENT: no such source). */
int source_open(struct source *s, const char *path, int flags);

/* Reads from an open stream instead (a pipe, or fmemopen for a fuzzer);
 * source_close closes it. 0, or -1 with errno ENOMEM. */
int source_init(struct source *s, FILE *f, int flags);

/* Reads the next record into r (which the caller frees with
 * source_record_free). 1 a record, 0 end of file, -1 a syntax error in a
 * record (s->error, s->error_line; r is empty; call again for the next
 * record), -2 a read error or no memory (errno). */
int source_next(struct source *s, struct source_record *r);

void source_record_free(struct source_record *r);
void source_close(struct source *s);

/* Attribute index of name in r, or -1. */
int source_attr_index(const struct source_record *r, const char *name);

/* The line attribute name was given on, or the record's line. */
unsigned source_attr_line(const struct source_record *r, const char *name);

/* Copies the next item of the comma-separated list at *p into out, blanks
 * around it removed, and advances *p. 1 an item (possibly empty: "a,,b"),
 * 0 end of list, -1 an item longer than cap - 1. "" is an empty list. */
int source_item(const char **p, char *out, size_t cap);

#endif
