#ifndef BH_ADDRSPACE_H
#define BH_ADDRSPACE_H
/*
 * addrspace: matching a recipient domain against an address space, the
 * address-space= list of a connector (`*`, `*.mil`, `contoso.com`, ...).
 * bh-route picks the connector whose space matches most specifically.
 */

/* How specifically an address-space entry (`*`, `*.mil`, `contoso.com`)
 * matches domain: -1 no match, 0 for `*`, 2*len(".suffix") for a wildcard,
 * 2*len(domain)+1 for an exact match; a higher number wins. Domains compare
 * case-insensitively; `*.mil` matches `x.mil` and `a.x.mil`, not `mil`. */
int addrspace_match(const char *space, const char *domain);

/* The best addrspace_match over a comma-separated list (NULL: none), or
 * -1. */
int addrspace_best(const char *list, const char *domain);

#endif
