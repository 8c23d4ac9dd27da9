/*
 * outcome: what one delivery attempt did to an envelope's recipients
 * (see outcome.h). The marks say which recipients this attempt gave an
 * outcome, so that reports and tracking name only those.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "outcome.h"
#include "track.h"

/* The recipients whose outcome this attempt set: stage_report's pick
 * functions see only a recipient, so the attempt's marks live here. */
static const struct envelope *mark_env;
static unsigned char *mark;

int
outcome_start(const struct envelope *e)
{
	if ((mark = calloc(e->nrcpt + 1, 1)) == NULL)
		return -1;
	mark_env = e;
	return 0;
}

void
outcome_end(void)
{
	free(mark);
	mark = NULL;
	mark_env = NULL;
}

int
outcome_marked(const struct rcpt *r)
{
	return mark_env != NULL && mark[r - mark_env->rcpt];
}

int
outcome_pick_failed(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return outcome_marked(r) && s != NULL && strcmp(s, "failed") == 0;
}

int
outcome_pick_relayed(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return outcome_marked(r) && s != NULL && strcmp(s, "relayed") == 0;
}

int
outcome_is_active(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return s == NULL || strcmp(s, "remote") == 0 ||
	    strcmp(s, "deferred") == 0 || strcmp(s, "new") == 0;
}

int
outcome_pick_deferred(const struct rcpt *r)
{
	const char *s = rcpt_get(r, "state");

	return s != NULL && strcmp(s, "deferred") == 0;
}

void
outcome_rcpt(struct envelope *e, struct rcpt *r, int class,
    const char *status, const char *reason, const char *mta, int has_dsn)
{
	const char *notify = rcpt_get(r, "notify");
	const char *state = class == 2 ? "delivered" : class == 5 ? "failed" :
	    "deferred";
	char now[32];

	/* the receiver cannot send the success notice asked for: we do */
	if (class == 2 && !has_dsn && notify != NULL && strstr(notify, "SUCCESS"))
		state = "relayed";
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	rcpt_outcome(r, state, status, reason);
	rcpt_set(r, "remote-mta", mta != NULL && *mta ? mta : NULL);
	rcpt_set(r, "last-attempt", now);
	mark[r - e->rcpt] = 1;
}

void
outcome_all_active(struct envelope *e, int class, const char *status,
    const char *reason, const char *mta)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (outcome_is_active(&e->rcpt[i]))
			outcome_rcpt(e, &e->rcpt[i], class, status, reason, mta, 0);
}

void
outcome_expire(struct envelope *e, const char *code, const char *why)
{
	char reason[1200];
	size_t i;

	for (i = 0; i < e->nrcpt; i++) {
		const char *last = rcpt_get(&e->rcpt[i], "reason");
		if (!outcome_is_active(&e->rcpt[i]))
			continue;
		snprintf(reason, sizeof reason, "%s%s%s", why,
		    last ? "; last error: " : "", last ? last : "");
		rcpt_outcome(&e->rcpt[i], "failed", code, reason);
		mark[i] = 1;
	}
}

void
outcome_track(const char *name, const struct envelope *e)
{
	static const char *events[][2] = {
		{ "delivered", "delivered" }, { "relayed", "delivered" },
		{ "failed", "failed" }, { "deferred", "deferred" },
	};
	size_t i, k;

	for (i = 0; i < e->nrcpt; i++) {
		const char *s = rcpt_get(&e->rcpt[i], "state");
		for (k = 0; mark[i] && s != NULL && k < 4; k++)
			if (strcmp(s, events[k][0]) == 0)
				track(events[k][1], name, e, &e->rcpt[i],
				    rcpt_get(&e->rcpt[i], "reason"));
	}
}

int
outcome_has_active(const struct envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (outcome_is_active(&e->rcpt[i]))
			return 1;
	return 0;
}

int
outcome_any_marked(const struct envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		if (mark[i])
			return 1;
	return 0;
}
