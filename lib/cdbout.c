/*
 * cdbout: one compiled database written aside, then fsync'ed (see
 * cdbout.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdbout.h"
#include "log.h"
#include "source.h"

void
cdbout_start(struct cdbout *o, const char *dir, const char *name, mode_t mode)
{
	if (snprintf(o->path, sizeof o->path, "%s/%s.cdb", dir, name) >=
	    (int)sizeof o->path || snprintf(o->tmp, sizeof o->tmp,
	    "%s/%s.cdb.tmp", dir, name) >= (int)sizeof o->tmp)
		die(EXIT_PERM, ENAMETOOLONG, "%s", dir);
	if ((o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0 || fchmod(o->fd, mode) < 0)
		die(EXIT_TEMP, errno, "unable to create %s", o->tmp);
	if (cdb_make_start(&o->cm, o->fd) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", o->tmp);
}

void
cdbout_put(struct cdbout *o, const char *key, const void *value, size_t len)
{
	if (cdb_make_add(&o->cm, key, strlen(key), value, len) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", o->tmp);
}

void
cdbout_putf(struct cdbout *o, const struct buf *value, const char *fmt, ...)
{
	char key[SOURCE_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof key, fmt, ap);
	va_end(ap);
	cdbout_put(o, key, value ? value->data : "", value ? value->len : 0);
}

void
cdbout_finish(struct cdbout *o)
{
	if (cdb_make_finish(&o->cm) < 0 || fsync(o->fd) < 0 || close(o->fd) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", o->tmp);
}

void
cdbout_blob_add(struct buf *b, const char *name, const char *value)
{
	if (buf_add(b, name, strlen(name) + 1) < 0 ||
	    buf_add(b, value, strlen(value) + 1) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
}

void
cdbout_blob_attrs(struct buf *b, const struct attrs *a, const char *skip)
{
	size_t i;

	buf_reset(b);
	for (i = 0; i < a->n; i++)
		if (skip == NULL || strcmp(a->v[i].name, skip) != 0)
			cdbout_blob_add(b, a->v[i].name, a->v[i].value);
}

void
cdbout_list_add(struct buf *b, const char *item)
{
	if (buf_add(b, item, strlen(item) + 1) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
}
