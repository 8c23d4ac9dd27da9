#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsnrcpt.h"

/* failure, delay, or success for every positive notice. */
const char *
dsnrcpt_class(const char *kind)
{
	if (kind == NULL)
		return NULL;
	if (strcmp(kind, "failure") == 0)
		return "failure";
	if (strcmp(kind, "delay") == 0)
		return "delay";
	if (strcmp(kind, "success") == 0 || strcmp(kind, "relayed") == 0 ||
	    strcmp(kind, "expanded") == 0)
		return "success";
	return NULL;
}

/* word is in the comma-separated list (case does not matter). */
static int
list_has(const char *list, const char *word)
{
	size_t n = strlen(word), len;

	while (*list != '\0') {
		len = strcspn(list, ",");
		while (len > 0 && list[len - 1] == ' ')
			len--;
		if (len == n && strncasecmp(list, word, n) == 0)
			return 1;
		list += strcspn(list, ",");
		list += strspn(list, ", ");
	}
	return 0;
}

/* DSN NOTIFY (RFC 3461 4.1): NEVER is never; without it, failures and
 * delays are reported (bh-remote writes delays only after delay-notify),
 * positive notices are not. */
int
dsnrcpt_wanted(const struct rcpt *r, const char *class)
{
	const char *notify = rcpt_get(r, "notify");

	if (notify == NULL || *notify == '\0')
		return strcmp(class, "success") != 0;
	if (list_has(notify, "NEVER"))
		return 0;
	if (strcmp(class, "failure") == 0)
		return list_has(notify, "FAILURE");
	if (strcmp(class, "delay") == 0)
		return list_has(notify, "DELAY");
	return list_has(notify, "SUCCESS");
}

/* The RFC 3464 Action: from the recipient's state, else from the kind. */
static const char *
rcpt_action(const struct rcpt *r, const char *kind)
{
	static const char *map[][2] = {
		{ "failed", "failed" }, { "deferred", "delayed" },
		{ "delivered", "delivered" }, { "relayed", "relayed" },
		{ "expanded", "expanded" }, { "failure", "failed" },
		{ "delay", "delayed" }, { "success", "delivered" },
	};
	const char *keys[] = { rcpt_get(r, "state"), kind };
	size_t i, k;

	for (k = 0; k < 2; k++)
		for (i = 0; keys[k] && i < sizeof map / sizeof map[0]; i++)
			if (strcmp(keys[k], map[i][0]) == 0)
				return map[i][1];
	return "failed";
}

static const char *
rcpt_status(const struct rcpt *r, const char *action)
{
	const char *code = rcpt_get(r, "code");

	if (code != NULL && dsn_status_valid(code))
		return code;
	if (strcmp(action, "failed") == 0)
		return "5.0.0";
	return strcmp(action, "delayed") == 0 ? "4.0.0" : "2.0.0";
}

time_t
dsnrcpt_time(const char *s, time_t def)
{
	char *end;
	long long t;

	if (s == NULL || !isdigit((unsigned char)*s))
		return def;
	t = strtoll(s, &end, 10);
	return *end == '\0' && t > 0 ? (time_t)t : def;
}

void
dsnrcpt_fill(struct dsn_rcpt *d, const struct rcpt *r, const char *kind,
    time_t written)
{
	memset(d, 0, sizeof *d);
	d->addr = r->addr;
	d->orcpt = rcpt_get(r, "orcpt");
	d->action = rcpt_action(r, kind);
	d->status = rcpt_status(r, d->action);
	d->remote_mta = rcpt_get(r, "remote-mta");
	d->reason = rcpt_get(r, "reason");
	d->last_attempt = dsnrcpt_time(rcpt_get(r, "last-attempt"), written);
}
