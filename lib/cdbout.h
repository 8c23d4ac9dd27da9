#ifndef BH_CDBOUT_H
#define BH_CDBOUT_H
/*
 * cdbout: writing one compiled database in the layout of conf.h, aside as
 * DIR/NAME.cdb.tmp (the caller renames it into place, so a reader sees the
 * old or the new one). Records are NUL-separated: a blob of name, value
 * pairs, or a list of items. Every failure dies (EXIT_TEMP; EXIT_PERM for
 * a path too long): bh-config writes all or nothing.
 */
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include <cdb.h>

#include "attr.h"
#include "buf.h"

struct cdbout {
	struct cdb_make cm;
	int fd;
	char tmp[PATH_MAX], path[PATH_MAX];	/* NAME.cdb.tmp, NAME.cdb */
};

/* Creates DIR/NAME.cdb.tmp with mode (the source's: a source only its
 * owner may read keeps its database as private). */
void cdbout_start(struct cdbout *o, const char *dir, const char *name,
    mode_t mode);
void cdbout_put(struct cdbout *o, const char *key, const void *value,
    size_t len);
/* key from fmt; value NULL for an empty one */
void cdbout_putf(struct cdbout *o, const struct buf *value, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
/* Ends the database and fsyncs it (still under its tmp name). */
void cdbout_finish(struct cdbout *o);

/* Building values: name NUL value NUL, a record's attributes (but skip),
 * item NUL. */
void cdbout_blob_add(struct buf *b, const char *name, const char *value);
void cdbout_blob_attrs(struct buf *b, const struct attrs *a, const char *skip);
void cdbout_list_add(struct buf *b, const char *item);

#endif
