#ifndef BH_OUTCOME_H
#define BH_OUTCOME_H
/*
 * outcome: the recipients' outcomes of one bh-remote delivery attempt.
 * Between outcome_start and outcome_end (one envelope at a time: the marks
 * are module state, because stage_report's pick functions see only a
 * recipient), every outcome set is marked, so that the failure, relayed
 * and tracking records name just what this attempt decided.
 */
#include "envelope.h"

/* Starts the marks for e: 0, or -1 (out of memory). */
int outcome_start(const struct envelope *e);
void outcome_end(void);

/* Still to be delivered: state remote, deferred, new (or none). */
int outcome_is_active(const struct rcpt *r);
int outcome_has_active(const struct envelope *e);
int outcome_marked(const struct rcpt *r);
int outcome_any_marked(const struct envelope *e);

/* Pick functions for stage_report: marked failed, marked relayed, and
 * every deferred recipient (the delay report). */
int outcome_pick_failed(const struct rcpt *r);
int outcome_pick_relayed(const struct rcpt *r);
int outcome_pick_deferred(const struct rcpt *r);

/* Sets one recipient's outcome from a reply class (2 delivered, or
 * relayed when NOTIFY=SUCCESS was asked of a server without DSN; 5
 * failed; else deferred) with its status, reason, remote-mta and
 * last-attempt, and marks it. */
void outcome_rcpt(struct envelope *e, struct rcpt *r, int class,
    const char *status, const char *reason, const char *mta, int has_dsn);

/* outcome_rcpt for every active recipient. */
void outcome_all_active(struct envelope *e, int class, const char *status,
    const char *reason, const char *mta);

/* Expiry: every active recipient fails with code (4.4.7, or 4.3.2 when
 * the destination was frozen), why followed by its last error. */
void outcome_expire(struct envelope *e, const char *code, const char *why);

/* A tracking line for each marked recipient, by its state. */
void outcome_track(const char *name, const struct envelope *e);

#endif
