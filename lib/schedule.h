#ifndef BH_SCHEDULE_H
#define BH_SCHEDULE_H
/*
 * schedule: the delivery windows of a connector's schedule= and
 * oversize-schedule= (bh-route keeps mail in spool/remote/scheduled until
 * its window opens; bh-config validates the text).
 *
 * Schedule text: `always`, `never`, or a comma-separated list of windows
 * `[DAYS ]HH:MM-HH:MM` (DAYS: `mon`, `mon-fri`, `sat-sun`, `daily`; an end
 * at or before the start runs past midnight), in the server's local time.
 */
#include <time.h>

/* How far ahead "never" is put: the mtime of mail whose schedule never
 * opens (it waits until the configuration changes). */
enum { SCHEDULE_NEVER_SEC = 366 * 86400 };

/* 1 open at now, 0 closed (*opens = the next opening, 0 = never), -1 bad
 * text. NULL is `always`. */
int schedule_open(const char *schedule, time_t now, time_t *opens);

#endif
