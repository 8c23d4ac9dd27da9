#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "conf.h"
#include "log.h"
#include "rewrite.h"

/* The mailbox that submitted the message: the authenticated user (any
 * address of a mailbox, or its NAME), else bh-inject's submitter when a
 * mailbox has that NAME. 1 with its NAME, 0 none, -1 error. */
static int
submitter_mailbox(struct directory *d, const struct envelope *e, char *box,
    size_t cap)
{
	const char *who = envelope_get(e, "auth");
	struct attrs a = ATTRS_INIT;
	char kind[16];
	int rc;

	if (who == NULL || *who == '\0')
		who = envelope_get(e, "submitter");
	if (who == NULL || *who == '\0')
		return 0;
	if (strchr(who, '@') != NULL) {
		rc = directory_lookup(d, who, kind, sizeof kind, box, cap);
		return rc <= 0 ? rc : strcmp(kind, "mailbox") == 0;
	}
	if ((rc = directory_record(d, "mailbox", who, &a)) == 1)
		rc = snprintf(box, cap, "%s", who) < (int)cap;
	attrs_free(&a);
	return rc;
}

/* Whether addr is the mailbox's own: one of its addresses, its NAME, or
 * NAME@hostname (what bh-inject makes of a local user). 1, 0, -1. */
static int
is_own_address(struct directory *d, const char *box, const char *addr)
{
	char kind[16], name[256], local[256];
	int rc;

	if (strchr(addr, '@') == NULL)
		return strcmp(addr, box) == 0;
	if ((rc = directory_lookup(d, addr, kind, sizeof kind, name,
	    sizeof name)) != 0)
		return rc < 0 ? -1 : strcmp(kind, "mailbox") == 0 &&
		    strcmp(name, box) == 0;
	return addr_local(addr, local, sizeof local) == 0 &&
	    strcmp(local, box) == 0 &&
	    strcasecmp(addr_domain(addr), conf_hostname()) == 0;
}

/* Whether the From: header is rewritten too: the mailbox's rewrite-from=,
 * else a policy with rewrite-from=yes whose primary pattern is in the
 * domain of the primary address. */
static int
policy_rewrites_from(struct directory *d, const char *box, const char *primary)
{
	struct attrs a = ATTRS_INIT;
	const char *v, *pattern;
	char **names = NULL, key[300];
	size_t n = 0, i;
	int rc = 0;

	if (directory_record(d, "mailbox", box, &a) == 1 &&
	    (v = attrs_get(&a, "rewrite-from")) != NULL)
		rc = conf_parse_bool(v) == 1 ? 1 : -1;
	attrs_free(&a);
	if (rc != 0 || conf_list(&d->domains, "policies", &names, &n) <= 0)
		return rc == 1;
	for (i = 0; i < n && rc == 0; i++) {
		snprintf(key, sizeof key, "policy:%s", names[i]);
		if (conf_record(&d->domains, key, &a) == 1 &&
		    (v = attrs_get(&a, "rewrite-from")) && conf_parse_bool(v) == 1 &&
		    (pattern = attrs_get(&a, "primary")) && strchr(pattern, '@') &&
		    strcasecmp(addr_domain(pattern), addr_domain(primary)) == 0)
			rc = 1;
		attrs_free(&a);
	}
	free(names);
	return rc;
}

/* The new From: value: the old display name (or the mailbox's name=)
 * with the primary address. */
static void
from_value(struct directory *d, const char *box, const char *old,
    const char *primary, char *out, size_t cap)
{
	struct attrs a = ATTRS_INIT;
	const char *lt = strchr(old, '<'), *display = NULL;
	int len = lt ? (int)(lt - old) : 0;

	while (len > 0 && old[len - 1] == ' ')
		len--;
	if (len > 0) {
		snprintf(out, cap, "%.*s <%s>", len, old, primary);
		return;
	}
	if (directory_record(d, "mailbox", box, &a) == 1)
		display = attrs_get(&a, "name");
	if (display != NULL && *display != '\0' && !strpbrk(display, "\"\\"))
		snprintf(out, cap, "\"%s\" <%s>", display, primary);
	else
		snprintf(out, cap, "%s", primary);
	attrs_free(&a);
}

/* The address in a From: value: inside <>, else the whole value. */
static void
from_address(const char *value, char *out, size_t cap)
{
	const char *lt = strrchr(value, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
		snprintf(out, cap, "%.*s", (int)(gt - lt - 1), lt + 1);
	else
		snprintf(out, cap, "%s", value);
}

static int
rewrite_from(struct directory *d, struct arrival *arr, struct envelope *e,
    const char *box, const char *primary)
{
	char old[2048], addr[2048], value[2048];
	int rc;

	if ((rc = arrival_header(arr, "From", old, sizeof old)) <= 0)
		return rc;
	from_address(old, addr, sizeof addr);
	if (strcmp(addr, primary) == 0 || (rc = is_own_address(d, box, addr)) <= 0)
		return rc;
	from_value(d, box, old, primary, value, sizeof value);
	if ((rc = arrival_rewrite_header(arr, e, "From", value)) == 1)
		log_event("rewritten", "id=%s header=From old=%s new=%s",
		    arr->name, log_quote(old), log_quote(value));
	return rc;
}

/* Mail a local mailbox submitted leaves with its primary address as the
 * envelope sender (and From: when the policy says so). 0 or -1. */
int
rewrite_sender(struct directory *d, struct arrival *arr, struct envelope *e)
{
	char box[256], primary[1024];
	int rc;

	if (e->sender == NULL || *e->sender == '\0' ||
	    (rc = submitter_mailbox(d, e, box, sizeof box)) == 0)
		return 0;
	if (rc < 0 || (rc = is_own_address(d, box, e->sender)) <= 0 ||
	    (rc = directory_primary(d, box, primary, sizeof primary)) <= 0)
		return rc;
	if (strcmp(primary, e->sender) != 0) {
		log_event("rewritten", "id=%s sender=%s primary=%s", arr->name,
		    log_quote(e->sender), log_quote(primary));
		if (envelope_set(e, "original-sender", e->sender) < 0 ||
		    envelope_set_sender(e, primary) < 0)
			return -1;
	}
	if (policy_rewrites_from(d, box, primary))
		return rewrite_from(d, arr, e, box, primary) < 0 ? -1 : 0;
	return 0;
}
