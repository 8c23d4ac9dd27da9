#ifndef BH_HOPS_H
#define BH_HOPS_H
/*
 * hops: the `hops` field of a remote envelope (see connector.h), built by
 * bh-route and checked for loops before mail is queued.
 *
 * A hops field is one or more groups separated by single spaces, tried in
 * order: `mx:DOMAIN` (DNS MX of DOMAIN) or `smarthost:E1,E2,...` with
 * entries [IP]:PORT, [IP] or FQDN[:PORT].
 */
#include "buf.h"

/* Appends a smarthost list (comma-separated) shuffled, as "smarthost:...".
 * 0 or -1 (ENOMEM, or EINVAL for an empty list). */
int hops_smarthost(const char *list, struct buf *b);

/* Is s a well-formed smarthost entry: [IP], [IP]:PORT, FQDN or FQDN:PORT
 * (a fully qualified name: two labels or more, not a dotted number; a
 * port 1-65535)? 1 or 0. */
int hops_entry_valid(const char *s);

/* Does a hops field lead back to this server? An entry equal to a listen
 * address of servers.cdb (`0.0.0.0:PORT` there: any address of this host
 * with that port), a host name or mx: domain equal to settings hostname or
 * to a server's hostname=. 1 yes (5.3.5), 0 no. */
int hops_is_self(const char *hops);

#endif
