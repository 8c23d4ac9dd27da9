#ifndef BH_WAITING_H
#define BH_WAITING_H
/*
 * waiting: remote mail bh-route parked in spool/remote/hold (hold=yes
 * connectors: ETRN/ATRN release it) and spool/remote/scheduled (mtime =
 * when its connector's schedule opens), and the Held/Scheduled states of
 * their destinations (spool/state/DEST).
 *
 * Each scan reads the envelopes' connector anew: an open window moves the
 * envelope to spool/remote/new (one rename: bh-remote takes it from there);
 * a closed one gets its mtime set to the next opening; an envelope whose
 * connector is gone (or, in hold/, no longer holds) goes back to
 * spool/route/new to be routed again.
 */
#include <time.h>

#include "connector.h"

struct waiting {
	int hold_fd, scheduled_fd;	/* spool/remote/hold, .../scheduled */
	int remote_new_fd;		/* spool/remote/new: released mail */
	int route_new_fd;		/* spool/route/new: mail routed again */
	const struct connectors *cs;	/* loaded by the caller */
	int nrerouted;			/* sent back to route (the caller
					 * resets it) */
};

/* Records a destination as Held or Scheduled for bh-queue, unless
 * bh-remote or an operator has said something stronger (Retry, Frozen). */
void waiting_note_dest(const char *dest, const char *state, const char *why,
    time_t when);

/* Moves scheduled entries whose window is open into spool/remote/new;
 * returns the earliest opening still ahead (0: none). Dies (111) when the
 * folders cannot be read or synced. */
time_t waiting_release_scheduled(struct waiting *w);

/* After a configuration change: held mail whose connector is gone or no
 * longer has hold=yes is routed again (ETRN would never come for it). */
void waiting_release_held(struct waiting *w);

#endif
