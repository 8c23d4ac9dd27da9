#ifndef BH_CONFIG_SOURCE_H
#define BH_CONFIG_SOURCE_H
/*
 * config_source: bh-config's six sources (settings servers domains
 * directory connectors filters) read into records, and the errors found in
 * them, kept and printed sorted by file and line at the end. With the
 * helpers every check uses: a value or a record's attributes against its
 * confspec table, names that must be unique, "NAME attrs" records. Out of
 * memory dies (EXIT_TEMP).
 */
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "confspec.h"
#include "source.h"
#include "strtable.h"

enum { CONFIG_SETTINGS, CONFIG_SERVERS, CONFIG_DOMAINS, CONFIG_DIRECTORY,
    CONFIG_CONNECTORS, CONFIG_FILTERS, CONFIG_NFILES };

struct config_file {
	const char *name;
	int flags;			/* for source_open */
	struct source_record *rec;
	size_t n, cap;
	int is_wanted;
	mode_t mode;			/* the source's, given to its .cdb */
};

extern struct config_file config_files[CONFIG_NFILES];
extern char config_dir[PATH_MAX];	/* the folder of the sources */
extern unsigned long config_nerrors;

/* An error on line of source f (CONFIG_*), printed by config_errors_print. */
void config_error_at(int f, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config_errors_print(void);

void *config_xrealloc(void *p, size_t n, size_t size);
char *config_xstrdup(const char *s);

void config_check_value(int f, unsigned line, const char *what,
    const struct confspec *sp, const char *value);
void config_check_attrs(int f, const struct source_record *r,
    const struct confspec *spec, const char *what);

/* Reads source f from config_dir into config_files[f] (missing: empty). */
void config_load(int f);
void config_lower(char *s);
int config_unique(int f, struct strtable *t, const char *name,
    struct source_record *r, const char *kind);
int config_named_record(int f, struct source_record *r, size_t nword,
    const char *shape);

#endif
