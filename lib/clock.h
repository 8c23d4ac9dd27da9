#ifndef BH_CLOCK_H
#define BH_CLOCK_H
/*
 * clock: milliseconds of the monotonic clock, for deadlines and intervals
 * that must not jump with the wall clock (time outs, idle times, pacing).
 */

long long clock_ms(void);

#endif
