#ifndef BH_DNS_H
#define BH_DNS_H
/*
 * dns: where mail for a next hop goes, resolved with udns.
 *
 * A next hop is written as bh-route writes the envelope field "hops":
 *	mx:DOMAIN                 MX records of DOMAIN (preference order, random
 *	                          among equal preferences), each exchanger's A
 *	                          then AAAA addresses; no MX = the domain itself
 *	                          (implicit MX); DOMAIN may be an "[IP]" literal
 *	smarthost:H1,H2,...       H = [IP]:PORT, [IP] or FQDN[:PORT], used in
 *	                          random order (load balancing), FQDNs by address
 * Several next hops may follow each other, separated by spaces
 * ("mx:example.net smarthost:[10.0.0.1]" = direct first, then the smart
 * host); their addresses are tried in that order.
 *
 * All queries of one resolution run at once (udns is asynchronous); the
 * caller waits at most timeout_sec. Servers: settings "dns" (IP[:PORT],...),
 * else /etc/resolv.conf.
 *
 * When no address is found, code and error say why:
 *	5.1.2   the domain does not exist (NXDOMAIN)
 *	5.1.10  the domain has a null MX (RFC 7505): it accepts no mail
 *	5.4.4   the domain or its exchangers have no address
 *	5.4.0   a smart host name does not resolve
 *	4.4.3   temporary resolver failure (SERVFAIL, timeout): retry later
 */
#include <stddef.h>
#include <sys/socket.h>

enum { DNS_NAME_MAX = 256, DNS_ADDRS_MAX = 64 };

struct dns_addr {
	char host[DNS_NAME_MAX];	/* exchanger or smart host name, "[IP]" for literals */
	int pref;			/* MX preference; -1 for smart hosts */
	struct sockaddr_storage sa;	/* address with its port */
	socklen_t len;
	char text[80];			/* "[IP]:PORT" for logs and errors */
};

struct dns_hosts {
	struct dns_addr v[DNS_ADDRS_MAX];
	size_t n;
	char code[16];		/* when n == 0 */
	char error[320];
};

/* Opens the resolver (once per process; call after fork). 0, or -1. */
int dns_setup(void);

/* Resolves hops into out->v in the order to try, with port as the default
 * port. 1 addresses found; 0 none (out->code, out->error say why); -1 bad
 * hops text (EINVAL) or a system error. Returns early with 4.4.3 when
 * spool_stop_requested is set. */
int dns_resolve_hops(const char *hops, int port, int timeout_sec,
    struct dns_hosts *out);

#endif
