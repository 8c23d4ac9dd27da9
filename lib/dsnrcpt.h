#ifndef BH_DSNRCPT_H
#define BH_DSNRCPT_H
/*
 * dsnrcpt: what a delivery report (dsn.h) says about one recipient of a
 * failure, delay or success record (stage_report's envelopes in
 * spool/ndr), and whether the recipient asked for that report at all
 * (DSN NOTIFY, RFC 3461 4.1).
 */
#include <time.h>

#include "dsn.h"
#include "envelope.h"

/* The report class of a record's kind: "failure", "delay", or "success"
 * for every positive notice (success, relayed, expanded); NULL for another
 * kind. The same literals every time: equal classes are equal pointers. */
const char *dsnrcpt_class(const char *kind);

/* Does r want a report of class? NOTIFY=NEVER never; without NOTIFY,
 * failures and delays are reported (bh-remote writes delays only after
 * delay-notify), positive notices are not. */
int dsnrcpt_wanted(const struct rcpt *r, const char *class);

/* Fills d from r (a recipient of a record of `kind`): address, ORCPT, the
 * RFC 3464 Action (from its state, else from kind), a valid status code
 * (else 5.0.0, 4.0.0 or 2.0.0 by action), remote MTA, reason, and the
 * last attempt (its last-attempt=, else `written`). Strings are r's. */
void dsnrcpt_fill(struct dsn_rcpt *d, const struct rcpt *r, const char *kind,
    time_t written);

/* A UNIX time field (digits, > 0), else def. */
time_t dsnrcpt_time(const char *s, time_t def);

#endif
