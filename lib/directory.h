#ifndef BH_DIRECTORY_H
#define BH_DIRECTORY_H
/*
 * directory: the recipients bh-config compiled into cdb/directory.cdb and
 * the accepted domains of cdb/domains.cdb (layout in conf.h): lookups by
 * address and by KIND:NAME. The expansion of a recipient address into
 * final recipients, which the categorizer needs, is expansion.h.
 */
#include <stddef.h>

#include "attr.h"
#include "conf.h"

enum {
	DIRECTORY_FOREIGN = 0,		/* not an accepted domain */
	DIRECTORY_AUTHORITATIVE,	/* we own every address */
	DIRECTORY_SHARED		/* unknown local parts are routed on */
};

enum { DIRECTORY_ITEM_MAX = 1024 };	/* a list item or an address */

struct directory {
	struct conf dir, domains;
};

/* Opens both databases (missing ones read as empty). 0 or -1. */
int directory_open(struct directory *d);

/* Reopens what bh-config replaced; call before each message. 0 or -1. */
int directory_refresh(struct directory *d);
void directory_close(struct directory *d);

/* The type of an accepted domain (an exact "domain:D" or a "*.PARENT"
 * entry), DIRECTORY_FOREIGN when not accepted, -1 on error. */
int directory_domain(struct directory *d, const char *domain);

/* Looks an address up: 1 with its KIND and NAME, 0 unknown, -1 error. */
int directory_lookup(struct directory *d, const char *addr, char *kind,
    size_t kcap, char *name, size_t ncap);

/* Reads the record KIND:NAME into out (attributes added). 1, 0, -1. */
int directory_record(struct directory *d, const char *kind, const char *name,
    struct attrs *out);

/* The primary (reply) address of mailbox NAME into out: its primary=
 * attribute, else its first address. 1, 0 no such mailbox, -1 error. */
int directory_primary(struct directory *d, const char *name, char *out,
    size_t cap);

/* The address a recipient record is known by into out (room for
 * DIRECTORY_ITEM_MAX): primary=, else its first address, else its NAME. */
void directory_address(const struct attrs *a, const char *name, char *out);

/* Calls fn for each item of a comma-separated list (blanks trimmed,
 * empty items skipped); stops early and returns what fn returned when
 * that is not 0. Items longer than 1023 bytes are cut. */
int directory_each(const char *list, int (*fn)(const char *item, void *arg),
    void *arg);

#endif
