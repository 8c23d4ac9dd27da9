#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "directory.h"

enum { ITEM_MAX = DIRECTORY_ITEM_MAX, KEY_MAX = 1100 };

int
directory_open(struct directory *d)
{
	if (conf_open(&d->dir, "directory") < 0)
		return -1;
	if (conf_open(&d->domains, "domains") < 0) {
		conf_close(&d->dir);
		return -1;
	}
	return 0;
}

int
directory_refresh(struct directory *d)
{
	if (conf_refresh(&d->dir) < 0 || conf_refresh(&d->domains) < 0)
		return -1;
	return 0;
}

void
directory_close(struct directory *d)
{
	conf_close(&d->dir);
	conf_close(&d->domains);
}

int
directory_each(const char *list, int (*fn)(const char *item, void *arg),
    void *arg)
{
	char item[ITEM_MAX];
	const char *p = list, *end;
	size_t len;
	int rc;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		end = p + strcspn(p, ",");
		len = end - p;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len >= sizeof item)
			len = sizeof item - 1;
		memcpy(item, p, len);
		item[len] = '\0';
		if (len > 0 && (rc = fn(item, arg)) != 0)
			return rc;
		p = end;
	}
	return 0;
}

/* The type recorded under key, 0 when absent, -1 on error. */
static int
domain_type(struct directory *d, const char *key)
{
	struct attrs a = ATTRS_INIT;
	const char *type;
	int rc;

	if ((rc = conf_record(&d->domains, key, &a)) <= 0) {
		attrs_free(&a);
		return rc;
	}
	type = attrs_get(&a, "type");
	rc = type && strcasecmp(type, "shared") == 0 ?
	    DIRECTORY_SHARED : DIRECTORY_AUTHORITATIVE;
	attrs_free(&a);
	return rc;
}

int
directory_domain(struct directory *d, const char *domain)
{
	char lower[ITEM_MAX], key[KEY_MAX];
	const char *dot;
	int rc;

	if (*domain == '\0' || addr_key(domain, lower, sizeof lower) < 0)
		return DIRECTORY_FOREIGN;
	snprintf(key, sizeof key, "domain:%s", lower);
	if ((rc = domain_type(d, key)) != 0)
		return rc;
	/* "*.example.com" accepts every sub-domain of example.com */
	for (dot = strchr(lower, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
		snprintf(key, sizeof key, "domain:*%s", dot);
		if ((rc = domain_type(d, key)) != 0)
			return rc;
	}
	return DIRECTORY_FOREIGN;
}

int
directory_lookup(struct directory *d, const char *addr, char *kind,
    size_t kcap, char *name, size_t ncap)
{
	char lower[ITEM_MAX], key[KEY_MAX], **items;
	size_t n;
	int rc;

	if (addr_key(addr, lower, sizeof lower) < 0)
		return 0;
	snprintf(key, sizeof key, "addr:%s", lower);
	if ((rc = conf_list(&d->dir, key, &items, &n)) <= 0)
		return rc;
	rc = n >= 2 && strlen(items[0]) < kcap && strlen(items[1]) < ncap;
	if (rc) {
		strcpy(kind, items[0]);
		strcpy(name, items[1]);
	}
	free(items);
	return rc;
}

int
directory_record(struct directory *d, const char *kind, const char *name,
    struct attrs *out)
{
	char key[KEY_MAX];

	if (snprintf(key, sizeof key, "%s:%s", kind, name) >= (int)sizeof key)
		return 0;
	return conf_record(&d->dir, key, out);
}

static int
first_item(const char *item, void *arg)
{
	snprintf(arg, DIRECTORY_ITEM_MAX, "%s", item);
	return 1;
}

void
directory_address(const struct attrs *a, const char *name, char *out)
{
	const char *primary = attrs_get(a, "primary");
	const char *addresses = attrs_get(a, "addresses");

	if (primary != NULL && *primary != '\0')
		snprintf(out, DIRECTORY_ITEM_MAX, "%s", primary);
	else if (addresses == NULL ||
	    directory_each(addresses, first_item, out) == 0)
		snprintf(out, DIRECTORY_ITEM_MAX, "%s", name);
}

int
directory_primary(struct directory *d, const char *name, char *out,
    size_t cap)
{
	struct attrs a = ATTRS_INIT;
	char addr[DIRECTORY_ITEM_MAX];
	int rc;

	if ((rc = directory_record(d, "mailbox", name, &a)) == 1) {
		directory_address(&a, name, addr);
		rc = strchr(addr, '@') != NULL && strlen(addr) < cap;
		if (rc)
			strcpy(out, addr);
	}
	attrs_free(&a);
	return rc;
}
