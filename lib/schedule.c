#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "attr.h"
#include "schedule.h"

enum { ITEM_MAX = 512, WINDOW_DAYS = 8 };

struct window {
	int days;		/* bit 0 Sunday ... bit 6 Saturday */
	int start, end;		/* minutes after midnight */
};

static int
day_number(const char *s, size_t n)
{
	static const char *names[] = { "sun", "mon", "tue", "wed", "thu",
	    "fri", "sat" };
	int i;

	for (i = 0; i < 7; i++)
		if (n == 3 && strncasecmp(s, names[i], 3) == 0)
			return i;
	return -1;
}

/* "mon", "mon-fri", "fri-mon", "daily" into a bit mask; 0 when bad. */
static int
parse_days(const char *s, size_t n)
{
	int from, to, mask = 0;

	if (n == 5 && strncasecmp(s, "daily", 5) == 0)
		return 0x7f;
	if (n == 3)
		return (from = day_number(s, 3)) < 0 ? 0 : 1 << from;
	if (n != 7 || s[3] != '-' || (from = day_number(s, 3)) < 0 ||
	    (to = day_number(s + 4, 3)) < 0)
		return 0;
	for (;; from = (from + 1) % 7) {
		mask |= 1 << from;
		if (from == to)
			return mask;
	}
}

/* "HH:MM" into minutes; -1 when bad. */
static int
parse_clock(const char *s)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    s[2] != ':' || !isdigit((unsigned char)s[3]) ||
	    !isdigit((unsigned char)s[4]))
		return -1;
	int h = (s[0] - '0') * 10 + s[1] - '0', m = (s[3] - '0') * 10 + s[4] - '0';
	return h > 24 || m > 59 || (h == 24 && m != 0) ? -1 : h * 60 + m;
}

/* "[DAYS ]HH:MM-HH:MM" into w; 0 or -1. */
static int
parse_window(const char *s, struct window *w)
{
	const char *sp = strchr(s, ' ');

	w->days = 0x7f;
	if (sp != NULL) {
		if ((w->days = parse_days(s, sp - s)) == 0)
			return -1;
		s = sp + 1;
		while (*s == ' ')
			s++;
	}
	if (strlen(s) != 11 || s[5] != '-' || (w->start = parse_clock(s)) < 0 ||
	    (w->end = parse_clock(s + 6)) < 0)
		return -1;
	return 0;
}

/* Local time `minutes` after the midnight `offset` days from now's day. */
static time_t
local_time_at(time_t now, int offset, int minutes, int *wday)
{
	struct tm tm;

	localtime_r(&now, &tm);
	tm.tm_mday += offset;
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	*wday = tm.tm_wday;
	return t;
}

/* 1 when w is open at now; else the next opening after now into *next
 * when it is earlier than what *next holds (0 = none yet). */
static int
window_check(const struct window *w, time_t now, time_t *next)
{
	int offset, wday, len;
	time_t t0;

	len = w->end > w->start ? w->end - w->start : w->end + 1440 - w->start;
	/* from yesterday: a window opened last evening may still run */
	for (offset = -1; offset < WINDOW_DAYS; offset++) {
		t0 = local_time_at(now, offset, w->start, &wday);
		if (!(w->days & 1 << wday))
			continue;
		if (t0 <= now && now < t0 + (time_t)len * 60)
			return 1;
		if (t0 > now && (*next == 0 || t0 < *next))
			*next = t0;
	}
	return 0;
}

int
schedule_open(const char *schedule, time_t now, time_t *opens)
{
	char item[ITEM_MAX];
	struct window w;

	*opens = 0;
	if (schedule == NULL || strcasecmp(schedule, "always") == 0)
		return 1;
	if (strcasecmp(schedule, "never") == 0)
		return 0;
	while (attr_list_next(&schedule, item, sizeof item)) {
		if (parse_window(item, &w) < 0)
			return -1;
		if (window_check(&w, now, opens))
			return 1;
	}
	return 0;
}
