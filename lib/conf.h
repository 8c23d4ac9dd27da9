#ifndef BH_CONF_H
#define BH_CONF_H
/*
 * conf: the compiled configuration, ROOT/cdb/NAME.cdb (tinycdb), read by
 * every stage. A stage calls conf_refresh before each message: a database
 * rebuilt by bh-config (written aside and renamed over) is reopened, so a
 * change needs no restart (conf_mark: how often it looks). A missing .cdb
 * reads as empty.
 *
 * Layout of the compiled databases (keys are bytes, no NUL):
 *   settings.cdb    KEY                 -> the value text, e.g. "10m,10m,15m"
 *   servers.cdb     "server:" NAME      -> record blob
 *                   "servers"           -> list of NAMEs in file order
 *   domains.cdb     "domain:" DOMAIN    -> record blob (type=...), DOMAIN lower case
 *                   "domains"           -> list
 *                   "policy:" NAME      -> record blob;  "policies" -> list
 *   directory.cdb   KIND ":" NAME       -> record blob (KIND mailbox, contact,
 *                                          group, alias)
 *                   "addr:" ADDRESS     -> list of two: KIND, NAME (ADDRESS lower case)
 *                   KIND "s"            -> list of NAMEs ("mailboxs" is not
 *                                          used: "mailboxes", "contacts",
 *                                          "groups", "aliases")
 *   connectors.cdb  "connector:" NAME   -> record blob; "connectors" -> list
 *   filters.cdb     "filter:" ENTRY     -> "" (ENTRY lower case, "@dom" or "user@dom")
 * A record blob is name NUL value NUL, repeated; a list is item NUL, repeated.
 */
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <cdb.h>

#include "attr.h"

struct conf {
	char name[32];
	int fd;			/* -1 when the .cdb does not exist */
	struct cdb cdb;
	ino_t ino;
	struct timespec mtime;
	unsigned long checked;	/* the conf_mark it was last looked at in */
};

/* Opens ROOT/cdb/NAME.cdb. 0 (also when missing), -1 on another error. */
int conf_open(struct conf *c, const char *name);

/* Reopens the database when its file was replaced. 0 or -1.
 * Until the program first calls conf_mark, every call looks at the file
 * (a stat); after, only the first call after each conf_mark does. */
int conf_refresh(struct conf *c);

/* A new unit of work begins (a stage calls it for each message, in
 * stage_read): each database, settings.cdb for the conf_setting
 * accessors included, is looked at again once, at its first use. A change
 * thus applies from the next message on, for a stat per database and
 * message instead of one per lookup. */
void conf_mark(void);
void conf_close(struct conf *c);

/* Looks key up: 1 found (*value malloc'ed, NUL-terminated, *len set),
 * 0 not found, -1 error. */
int conf_get(struct conf *c, const char *key, char **value, size_t *len);

/* Looks up a record blob and decodes it into attrs. 1, 0, -1. */
int conf_record(struct conf *c, const char *key, struct attrs *out);

/* Looks up a list: *items is a malloc'ed array of *n pointers into one
 * allocation; free(*items) frees all. 1, 0, -1. */
int conf_list(struct conf *c, const char *key, char ***items, size_t *n);

/* A setting from settings.cdb (opened and refreshed on demand) as a
 * string copied into buf: 1 found, 0 not set (buf gets def), -1 error. */
int conf_setting(const char *key, const char *def, char *buf, size_t cap);

/* Settings as numbers: the value, def when unset or unparsable. */
long long conf_setting_size(const char *key, long long def);
long long conf_setting_time(const char *key, long long def);

/* "10M" -> 10485760, "512" -> 512, K/M/G. -1 when bad. */
long long conf_parse_size(const char *s);
/* "10m" -> 600, "30" -> 30 seconds, s/m/h/d. -1 when bad. */
long long conf_parse_time(const char *s);
/* yes/no/on/off/true/false/1/0: 1, 0, or -1 when bad. */
int conf_parse_bool(const char *s);

/* Reads the host name: settings hostname, else the machine's name. */
const char *conf_hostname(void);

#endif
