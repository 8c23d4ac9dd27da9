#ifndef BH_VALUETYPE_H
#define BH_VALUETYPE_H
/*
 * valuetype: what a configuration value may be, and the check of one
 * value (one item of a list) against its type: numbers, ports, sizes,
 * times, booleans, choices, addresses, host names, IP:PORT, next hops,
 * CIDRs and access entries, address spaces, crypt hashes, schedules, log
 * levels, policy filters and address patterns. Used by bh-config; the
 * syntax is the one the stages read (conf_parse_*, connector schedules).
 */

enum valuetype { VT_STR, VT_INT, VT_PORT, VT_SIZE, VT_TIME, VT_BOOL,
    VT_ENUM, VT_ADDR, VT_HOST, VT_LISTEN, VT_DNS, VT_HOP, VT_CIDR, VT_SPACE,
    VT_SENDER, VT_CSENDER, VT_REF, VT_NAME, VT_HASH, VT_USERPASS,
    VT_SCHEDULE, VT_LOGLEVEL, VT_FILTER, VT_PATTERN, VT_PATH, VT_DAYS,
    VT_ACCESS, VT_RATE };

/* 1 when s is good for kind (choices: "a|b|c" for VT_ENUM); else 0 and
 * *why says what was expected ("not a port (1-65535)"). */
int valuetype_check(enum valuetype kind, const char *choices, const char *s,
    const char **why);

/* The checks bh-config needs on their own. */
int valuetype_is_int(const char *s);	/* 1 to 9 digits */
int valuetype_is_name(const char *s);	/* a record name: [A-Za-z0-9._-]{1,63} */
int valuetype_is_host(const char *s);	/* dot-separated labels */
int valuetype_is_addr(const char *s);	/* local@domain, as addr_parse gives it */
int valuetype_is_filter(const char *s);	/* all, group:NAME, attr:NAME=VALUE */
int valuetype_is_pattern(const char *s);	/* %u %g %s %i %% local@domain */

#endif
