#ifndef BH_LOGLEVEL_H
#define BH_LOGLEVEL_H
/*
 * loglevel: per-category diagnostic levels, from settings
 *
 *	log-level  smtp=max,categorize=min,route=medium,min
 *
 * Items are separated by commas (or blanks, in a quoted value). Categories:
 * smtp, categorize, route, queue, local, remote (any name is accepted); a
 * bare LEVEL or "*=LEVEL" sets the level of those not listed. Levels:
 *	none     errors and fatal lines only
 *	min      one line per message event (the default)
 *	medium   also one line per recipient and per connection
 *	max      also the protocol: each SMTP command and reply (smtp), each
 *	         lookup (categorize, route); never passwords or message bodies
 * The setting is read through conf_setting, which reopens settings.cdb
 * when bh-config replaced it: a change applies without a restart.
 */

enum { LOGLEVEL_NONE, LOGLEVEL_MIN, LOGLEVEL_MEDIUM, LOGLEVEL_MAX };

/* The level of category now (LOGLEVEL_MIN when not configured). */
int loglevel(const char *category);

/* Whether a line of the given level is written for category. */
int loglevel_on(const char *category, int level);

/* Parses a log-level value for category: the level, or -1 when the text
 * is bad. Exposed for tests and bh-check. */
int loglevel_parse(const char *setting, const char *category);

#endif
