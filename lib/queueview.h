#ifndef BH_QUEUEVIEW_H
#define BH_QUEUEVIEW_H
/*
 * queueview: what bh-queue prints about the spool, as aligned tables or
 * as JSON (one array per command): the summary of queues and destinations,
 * the messages of one queue or destination, and the envelopes of one
 * message with its header. Times print as "2026-11-28T11:40:00Z" (JSON:
 * null for none), ages as "3h05m", sizes as "4.1K".
 *
 * reads   spool/QUEUE/{new,retry,frozen,hold,scheduled}/NAME, spool/msg/NAME
 *         (headers, sizes). Dies (111) when a queue cannot be read.
 */
#include <time.h>

#include "queue.h"

struct queueview {
	time_t now;		/* ages are counted to this time */
	int is_json;		/* 1: JSON, else tables */
};

/* Prints the summary (queue_summary_build). */
void queueview_summary(const struct queueview *v,
    const struct queue_summary *s);

/* Prints the messages of `which`: a queue, a destination, or remote:DEST;
 * at most limit of them, then how many more there are. */
void queueview_list(const struct queueview *v, const char *which,
    long limit);

/* Prints every envelope of message id, in any queue; returns how many. */
int queueview_show(const struct queueview *v, const char *id);

#endif
