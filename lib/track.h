#ifndef BH_TRACK_H
#define BH_TRACK_H
/*
 * track: message tracking, one line per message event appended to
 * ROOT/log/track/YYYY-MM-DD (UTC), in key=value form:
 *
 *   time=2026-11-28T11:22:33Z event=received id=ID msgid=<...> sender=...
 *   rcpt=... size=N server=... peer=... status="..." [subject="..."]
 *
 * Events: received, expanded, routed, delivered, deferred, failed, reported,
 * badmail, dropped (an arrival hook), and the administrator's frozen,
 * thawed, deleted, requeued (bh-queue). Off when settings "tracking no". The subject is written only when
 * settings "tracking-subjects yes" and the envelope has a subject field.
 */
#include "envelope.h"

/* Removes each day's file once the day ended more than settings
 * tracking-days (default 7; 0 keeps all) ago, calling removed(NAME) for
 * each when it is not NULL. track() runs it when it starts a new day's
 * file, so the log rotates and expires by itself. 0, or -1 with errno. */
int track_expire(void (*removed)(const char *name));

/* One line for an event of envelope e (named name), about recipient r (or
 * the whole message when r is NULL), with a status text (may be NULL).
 * Failures to write are logged, never fatal: tracking never stops mail.
 * The day's file is kept open (O_APPEND, close-on-exec) between calls;
 * a new day, or the file's removal, opens it again. */
void track(const char *event, const char *name, const struct envelope *e,
    const struct rcpt *r, const char *status);

#endif
