#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "root.h"

static int
conf_load(struct conf *c)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (root_path(path, sizeof path, "cdb/%s.cdb", c->name) < 0)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0 || cdb_init(&c->cdb, fd) < 0) {
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->ino = st.st_ino;
	c->mtime = st.st_mtim;
	return 0;
}

int
conf_open(struct conf *c, const char *name)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	snprintf(c->name, sizeof c->name, "%s", name);
	return conf_load(c);
}

void
conf_close(struct conf *c)
{
	if (c->fd >= 0) {
		cdb_free(&c->cdb);
		close(c->fd);
	}
	c->fd = -1;
}

/* 0 until the program calls conf_mark: then a database is looked at
 * once per mark, not on every lookup. */
static unsigned long conf_epoch;

void
conf_mark(void)
{
	if (++conf_epoch == 0)
		conf_epoch = 1;
}

int
conf_refresh(struct conf *c)
{
	char path[PATH_MAX];
	struct stat st;

	if (conf_epoch != 0 && c->checked == conf_epoch)
		return 0;	/* looked at since the last mark */
	if (root_path(path, sizeof path, "cdb/%s.cdb", c->name) < 0)
		return -1;
	c->checked = conf_epoch;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			return -1;
		conf_close(c);
		return 0;
	}
	if (c->fd >= 0 && st.st_ino == c->ino &&
	    st.st_mtim.tv_sec == c->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->mtime.tv_nsec)
		return 0;
	conf_close(c);
	return conf_load(c);
}

int
conf_get(struct conf *c, const char *key, char **value, size_t *len)
{
	unsigned vlen;
	char *v;
	int rc;

	if (c->fd < 0)
		return 0;
	if ((rc = cdb_find(&c->cdb, key, strlen(key))) <= 0)
		return rc;
	vlen = cdb_datalen(&c->cdb);
	if ((v = malloc(vlen + 1)) == NULL)
		return -1;
	if (cdb_read(&c->cdb, v, vlen, cdb_datapos(&c->cdb)) < 0) {
		free(v);
		return -1;
	}
	v[vlen] = '\0';
	*value = v;
	if (len != NULL)
		*len = vlen;
	return 1;
}

int
conf_record(struct conf *c, const char *key, struct attrs *out)
{
	size_t len, pos = 0;
	char *v;
	int rc;

	if ((rc = conf_get(c, key, &v, &len)) <= 0)
		return rc;
	while (pos < len) {
		const char *name = v + pos;
		const char *value = name + strlen(name) + 1;
		if ((size_t)(value - v) > len)
			break;
		if (attrs_set(out, name, value) < 0) {
			free(v);
			return -1;
		}
		pos = (value - v) + strlen(value) + 1;
	}
	free(v);
	return 1;
}

int
conf_list(struct conf *c, const char *key, char ***items, size_t *n)
{
	size_t len, count = 0, i, pos;
	char *v, **out;
	int rc;

	if ((rc = conf_get(c, key, &v, &len)) <= 0)
		return rc;
	for (pos = 0; pos < len; pos++)
		if (v[pos] == '\0')
			count++;
	/* one allocation: the pointer array, then the strings */
	if ((out = malloc((count + 1) * sizeof *out + len + 1)) == NULL) {
		free(v);
		return -1;
	}
	memcpy((char *)(out + count + 1), v, len + 1);
	free(v);
	v = (char *)(out + count + 1);
	for (i = 0, pos = 0; i < count; i++) {
		out[i] = v + pos;
		pos += strlen(v + pos) + 1;
	}
	out[count] = NULL;
	*items = out;
	*n = count;
	return 1;
}

int
conf_setting(const char *key, const char *def, char *buf, size_t cap)
{
	static struct conf settings;
	static int is_open;
	char *v;
	int rc;

	if (!is_open) {
		if (conf_open(&settings, "settings") < 0)
			return -1;
		is_open = 1;
	} else if (conf_refresh(&settings) < 0)
		return -1;
	if ((rc = conf_get(&settings, key, &v, NULL)) <= 0) {
		snprintf(buf, cap, "%s", def ? def : "");
		return rc;
	}
	snprintf(buf, cap, "%s", v);
	free(v);
	return 1;
}

/* The leading decimal number of s (*end: what follows it), or -1 when s
 * does not start with a digit or the number overflows. */
static long long
conf_parse_number(const char *s, char **end)
{
	long long n;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoll(s, end, 10);
	return errno != 0 ? -1 : n;
}

long long
conf_parse_size(const char *s)
{
	char *end;
	long long n;

	if ((n = conf_parse_number(s, &end)) < 0)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0': return n;
	case 'K': n <<= 10; break;
	case 'M': n <<= 20; break;
	case 'G': n <<= 30; break;
	default: return -1;
	}
	if (end[1] == 'B' || end[1] == 'b')
		end++;
	return end[1] == '\0' ? n : -1;
}

long long
conf_parse_time(const char *s)
{
	char *end;
	long long n;

	if ((n = conf_parse_number(s, &end)) < 0 ||
	    (*end != '\0' && end[1] != '\0'))
		return -1;
	switch (*end) {
	case '\0': case 's': return n;
	case 'm': return n * 60;
	case 'h': return n * 3600;
	case 'd': return n * 86400;
	default: return -1;
	}
}

int
conf_parse_bool(const char *s)
{
	static const char *yes[] = { "yes", "on", "true", "1" };
	static const char *no[] = { "no", "off", "false", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* A setting read with parse; def when it is unset or does not parse. */
static long long
conf_setting_parsed(const char *key, long long def,
    long long (*parse)(const char *))
{
	char buf[64];
	long long n;

	if (conf_setting(key, NULL, buf, sizeof buf) <= 0)
		return def;
	return (n = parse(buf)) < 0 ? def : n;
}

long long
conf_setting_size(const char *key, long long def)
{
	return conf_setting_parsed(key, def, conf_parse_size);
}

long long
conf_setting_time(const char *key, long long def)
{
	return conf_setting_parsed(key, def, conf_parse_time);
}

const char *
conf_hostname(void)
{
	static char name[256];

	if (conf_setting("hostname", NULL, name, sizeof name) == 1 && *name)
		return name;
	if (gethostname(name, sizeof name) < 0 || name[0] == '\0')
		snprintf(name, sizeof name, "localhost");
	name[sizeof name - 1] = '\0';
	return name;
}
