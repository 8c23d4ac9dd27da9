/*
 * config_source: bh-config's six sources read into records, and the
 * errors found in them (see config_source.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_source.h"
#include "log.h"
#include "valuetype.h"

/* ---- the six sources, and errors ---- */

struct config_file config_files[CONFIG_NFILES] = {
	{ .name = "settings", .flags = SOURCE_WORDS_ONLY },
	{ .name = "servers", .flags = 0 },
	{ .name = "domains", .flags = 0 },
	{ .name = "directory", .flags = 0 },
	{ .name = "connectors", .flags = 0 },
	{ .name = "filters", .flags = SOURCE_WORDS_ONLY },
};

char config_dir[PATH_MAX];
unsigned long config_nerrors;

/* Errors are kept and printed sorted by file and line at the end, so the
 * order of the checks does not show. */
enum { ERRORS_SHOWN = 10000 };

struct error {
	int f;
	unsigned line;
	unsigned long seq;
	char *text;
};

static struct error *errors;

void __attribute__((format(printf, 3, 4)))
config_error_at(int f, unsigned line, const char *fmt, ...)
{
	struct error *e;
	va_list ap;

	if (config_nerrors++ >= ERRORS_SHOWN)
		return;
	if (errors == NULL && (errors = calloc(ERRORS_SHOWN, sizeof *errors)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	e = &errors[config_nerrors - 1];
	e->f = f;
	e->line = line;
	e->seq = config_nerrors;
	va_start(ap, fmt);
	if (vasprintf(&e->text, fmt, ap) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	va_end(ap);
}

static int
error_order(const void *a, const void *b)
{
	const struct error *x = a, *y = b;

	if (x->f != y->f)
		return x->f < y->f ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
config_errors_print(void)
{
	unsigned long i, n = config_nerrors < ERRORS_SHOWN ? config_nerrors :
	    ERRORS_SHOWN;

	qsort(errors, n, sizeof *errors, error_order);
	for (i = 0; i < n; i++)
		fprintf(stderr, "%s:%u: %s\n", config_files[errors[i].f].name,
		    errors[i].line, errors[i].text);
	if (config_nerrors > n)
		fprintf(stderr, "bh-config: %lu more errors not shown\n",
		    config_nerrors - n);
	fprintf(stderr, "bh-config: %lu error%s, nothing written\n",
	    config_nerrors, config_nerrors == 1 ? "" : "s");
}

void *
config_xrealloc(void *p, size_t n, size_t size)
{
	if (n > ((size_t)-1) / 2 / size || (p = realloc(p, n * size)) == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	return p;
}

char *
config_xstrdup(const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	return copy;
}

/* Checks one value (each item of a list); reports the first bad item.
 * what names the record ("mailbox demo"), NULL for a setting. */
void
config_check_value(int f, unsigned line, const char *what,
    const struct confspec *sp, const char *value)
{
	const char *item, *why;

	if (confspec_check(sp, value, &item, &why) == 0)
		return;
	if (why == NULL)
		config_error_at(f, line, "%s%s%s: empty item in list",
		    what ? what : "", what ? ": " : "", sp->name);
	else
		config_error_at(f, line, "%s%s%s: \"%s\" is %s%s",
		    what ? what : "", what ? ": " : "", sp->name, item,
		    sp->kind == VT_ENUM ? "not one of " : "", why);
}

/* Checks every attribute of r against spec; what names the record. */
void
config_check_attrs(int f, const struct source_record *r,
    const struct confspec *spec, const char *what)
{
	const struct confspec *sp;
	size_t i;

	for (i = 0; i < r->attrs.n; i++) {
		const struct attr *a = &r->attrs.v[i];
		if ((sp = confspec_find(spec, a->name)) == NULL)
			config_error_at(f, r->attr_line[i],
			    "%s: unknown attribute %s", what, a->name);
		else if (r->attr_times[i] > 1 && !sp->is_list)
			config_error_at(f, r->attr_line[i],
			    "%s: %s given twice", what, a->name);
		else
			config_check_value(f, r->attr_line[i], what, sp,
			    a->value);
	}
	for (sp = spec; sp->name != NULL; sp++)
		if (sp->is_required && source_attr_index(r, sp->name) < 0)
			config_error_at(f, r->line, "%s: %s= is missing", what,
			    sp->name);
}

/* ---- reading the sources ---- */

void
config_load(int f)
{
	struct config_file *fl = &config_files[f];
	struct source s;
	struct source_record r;
	struct stat st;
	char path[PATH_MAX];
	int rc;

	if (snprintf(path, sizeof path, "%s/%s", config_dir, fl->name) >=
	    (int)sizeof path)
		die(EXIT_PERM, ENAMETOOLONG, "%s/%s", config_dir, fl->name);
	if (source_open(&s, path, fl->flags) < 0) {
		if (errno == ENOENT)
			return;		/* a missing source is an empty one */
		die(EXIT_TEMP, errno, "unable to open %s", path);
	}
	if (fstat(fileno(s.f), &st) == 0)
		fl->mode = st.st_mode & 0666;
	while ((rc = source_next(&s, &r)) != 0) {
		if (rc == -2)
			die(EXIT_TEMP, errno, "unable to read %s", path);
		if (rc == -1) {
			config_error_at(f, s.error_line, "%s", s.error);
			continue;
		}
		if (fl->n == fl->cap) {
			fl->cap = fl->cap ? fl->cap * 2 : 64;
			fl->rec = config_xrealloc(fl->rec, fl->cap,
			    sizeof *fl->rec);
		}
		fl->rec[fl->n++] = r;
	}
	source_close(&s);
}

void
config_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = tolower((unsigned char)*s);
}

/* Registers a record's name in t; refuses a second record of that name. */
int
config_unique(int f, struct strtable *t, const char *name,
    struct source_record *r, const char *kind)
{
	struct source_record *earlier = strtable_put(t, name, r);

	if (earlier == NULL)
		return 1;
	config_error_at(f, r->line, "%s %s already defined at line %u", kind,
	    name, earlier->line);
	return 0;
}

/* Checks the key words of a "NAME attrs" record; 1 when usable. */
int
config_named_record(int f, struct source_record *r, size_t nword,
    const char *shape)
{
	if (r->nword != nword) {
		config_error_at(f, r->line, "expected %s", shape);
		return 0;
	}
	if (!valuetype_is_name(r->word[nword - 1])) {
		config_error_at(f, r->line, "bad name \"%s\" (use letters, "
		    "digits, '.', '_' and '-')", r->word[nword - 1]);
		return 0;
	}
	return 1;
}
