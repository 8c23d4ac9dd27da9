#ifndef BH_DEST_H
#define BH_DEST_H
/*
 * dest: the state of a remote destination (a connector, or a domain reached
 * by DNS), kept in ROOT/spool/state/DEST as "key value" lines:
 *
 *	state Retry
 *	error "421 4.4.1 connection refused by [127.0.0.1]:2526"
 *	next-attempt 1764330000
 *	since 1764329156
 *
 * No file means Ready. bh-remote writes Ready/Retry, bh-queue Frozen, bh-route
 * reads it for link-state routing and skips destinations in Retry.
 */
#include <stddef.h>
#include <time.h>

enum { DEST_NAME_MAX = 256 };

struct dest_state {
	char state[16];		/* Ready Retry Frozen Held Scheduled */
	char error[512];
	time_t next_attempt;	/* 0 = none */
	time_t since;		/* when it entered this state */
};

/* 1 read, 0 no file (st is set to Ready), -1 error. A dest name holding '/'
 * or starting with '.' is refused (EINVAL). */
int dest_read(const char *dest, struct dest_state *st);

/* Replaces the state file atomically (tmp, fsync, rename). 0 or -1. */
int dest_write(const char *dest, const struct dest_state *st);

/* Removes the state file: the destination is Ready again. 0 or -1. */
int dest_clear(const char *dest);

#endif
