#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <udns.h>

#include "conf.h"
#include "dns.h"
#include "spool.h"

enum { HOSTS_MAX = 32, HOPS_MAX = 8, FAMILY_MAX = 8 };

struct lookup;

/* One name whose A and AAAA records we want. */
struct host {
	struct lookup *lk;
	char name[DNS_NAME_MAX];
	int group, pref, port, is_smarthost;
	long order;			/* random: spreads equal preferences */
	struct sockaddr_storage addr[2 * FAMILY_MAX];
	size_t naddr4, naddr6;	/* v4 in addr[0..], v6 in addr[FAMILY_MAX..] */
	int nquery, is_temp, is_nxdomain;
};

/* One "mx:DOMAIN" next hop waiting for its MX answer. */
struct mxq {
	struct lookup *lk;
	char domain[DNS_NAME_MAX];
	int group, port;
};

struct lookup {
	struct host hosts[HOSTS_MAX];
	size_t nhosts;
	struct mxq mx[HOPS_MAX];
	char code[HOPS_MAX][16];	/* a hop's failure, "" if none */
	char error[HOPS_MAX][320];
	int ngroups, pending, is_temp;
};

static int dns_ready;

/* settings dns "IP[:PORT],...": replaces the servers of resolv.conf. */
static int
dns_servers(const char *list)
{
	char item[128], *colon;
	struct sockaddr_in sin;
	const char *p = list;
	size_t n;

	dns_add_serv(NULL, NULL);
	while (*p != '\0') {
		n = strcspn(p, ", ");
		if (n > 0 && n < sizeof item) {
			memcpy(item, p, n);
			item[n] = '\0';
			memset(&sin, 0, sizeof sin);
			sin.sin_family = AF_INET;
			sin.sin_port = htons(53);
			if ((colon = strchr(item, ':')) != NULL) {
				*colon = '\0';
				sin.sin_port = htons(atoi(colon + 1));
			}
			if (inet_pton(AF_INET, item, &sin.sin_addr) != 1 ||
			    dns_add_serv_s(NULL, (struct sockaddr *)&sin) < 0) {
				errno = EINVAL;
				return -1;
			}
		}
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

int
dns_setup(void)
{
	char list[1024];

	if (dns_ready)
		return 0;
	if (dns_init(NULL, 0) < 0)
		return -1;
	if (conf_setting("dns", NULL, list, sizeof list) == 1 && *list &&
	    dns_servers(list) < 0)
		return -1;
	/* a dead server must not hold a delivery for long: 2 s, 2 tries */
	dns_set_opt(NULL, DNS_OPT_TIMEOUT, 2);
	dns_set_opt(NULL, DNS_OPT_NTRIES, 2);
	if (dns_open(NULL) < 0)
		return -1;
	srandom(time(NULL) ^ getpid());
	dns_ready = 1;
	return 0;
}

static void
hop_fail(struct lookup *lk, int group, const char *code, const char *fmt,
    const char *name)
{
	if (lk->code[group][0] != '\0')
		return;
	snprintf(lk->code[group], sizeof lk->code[group], "%s", code);
	snprintf(lk->error[group], sizeof lk->error[group], fmt, name);
	if (code[0] == '4')
		lk->is_temp = 1;
}

static void
host_status(struct host *h, int status)
{
	if (status == DNS_E_NXDOMAIN)
		h->is_nxdomain = 1;
	else if (status != DNS_E_NODATA && status != DNS_E_NOERROR)
		h->is_temp = 1;
}

/* A host is finished: say why when it has no address. */
static void
host_done(struct host *h)
{
	struct lookup *lk = h->lk;

	if (--h->nquery > 0 || h->naddr4 + h->naddr6 > 0)
		return;
	if (h->is_temp)
		hop_fail(lk, h->group, "4.4.3",
		    "temporary DNS failure looking up %s", h->name);
	else if (h->is_smarthost)
		hop_fail(lk, h->group, "5.4.0",
		    "smart host %s does not resolve", h->name);
	else
		hop_fail(lk, h->group, "5.4.4", "no address for %s", h->name);
}

static void
on_a4(struct dns_ctx *ctx, struct dns_rr_a4 *rr, void *data)
{
	struct host *h = data;
	struct sockaddr_in *sin;
	int i;

	h->lk->pending--;
	if (rr == NULL)
		host_status(h, dns_status(ctx));
	for (i = 0; rr != NULL && i < rr->dnsa4_nrr && h->naddr4 < FAMILY_MAX; i++) {
		sin = (struct sockaddr_in *)&h->addr[h->naddr4++];
		memset(sin, 0, sizeof *sin);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(h->port);
		sin->sin_addr = rr->dnsa4_addr[i];
	}
	free(rr);
	host_done(h);
}

static void
on_a6(struct dns_ctx *ctx, struct dns_rr_a6 *rr, void *data)
{
	struct host *h = data;
	struct sockaddr_in6 *sin6;
	int i;

	h->lk->pending--;
	if (rr == NULL)
		host_status(h, dns_status(ctx));
	for (i = 0; rr != NULL && i < rr->dnsa6_nrr && h->naddr6 < FAMILY_MAX; i++) {
		sin6 = (struct sockaddr_in6 *)&h->addr[FAMILY_MAX + h->naddr6++];
		memset(sin6, 0, sizeof *sin6);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(h->port);
		sin6->sin6_addr = rr->dnsa6_addr[i];
	}
	free(rr);
	host_done(h);
}

static struct host *
host_add(struct lookup *lk, const char *name, int group, int pref, int port)
{
	struct host *h;

	if (lk->nhosts == HOSTS_MAX)
		return NULL;
	h = &lk->hosts[lk->nhosts++];
	memset(h, 0, sizeof *h);
	h->lk = lk;
	snprintf(h->name, sizeof h->name, "%s", name);
	h->group = group;
	h->pref = pref;
	h->port = port;
	h->order = random();
	return h;
}

/* An "[IP]" literal: its address, no query. 1 literal, 0 not one, -1 bad. */
static int
host_literal(struct host *h, const char *text)
{
	char ip[64];
	size_t n = strlen(text);
	struct sockaddr_in *sin = (struct sockaddr_in *)&h->addr[0];
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->addr[FAMILY_MAX];

	if (text[0] != '[')
		return 0;
	if (n < 3 || text[n - 1] != ']' || n - 2 >= sizeof ip)
		return -1;
	memcpy(ip, text + 1, n - 2);
	ip[n - 2] = '\0';
	memset(&h->addr[0], 0, sizeof h->addr[0]);
	memset(&h->addr[FAMILY_MAX], 0, sizeof h->addr[0]);
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(h->port);
		h->naddr4 = 1;
		return 1;
	}
	if (strncasecmp(ip, "IPv6:", 5) == 0 &&
	    inet_pton(AF_INET6, ip + 5, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(h->port);
		h->naddr6 = 1;
		return 1;
	}
	return -1;
}

/* Starts the A and AAAA queries of h (or takes its literal address). */
static int
host_resolve(struct host *h)
{
	int rc = host_literal(h, h->name);

	if (rc != 0)
		return rc < 0 ? -1 : 0;
	h->nquery = 2;
	if (dns_submit_a4(NULL, h->name, DNS_NOSRCH, on_a4, h) == NULL)
		return -1;
	h->lk->pending++;
	if (dns_submit_a6(NULL, h->name, DNS_NOSRCH, on_a6, h) == NULL) {
		h->nquery--;
		return -1;
	}
	h->lk->pending++;
	return 0;
}

static int
mx_is_null(const struct dns_rr_mx *rr)
{
	int i;

	for (i = 0; i < rr->dnsmx_nrr; i++)
		if (rr->dnsmx_mx[i].name[0] == '\0' ||
		    strcmp(rr->dnsmx_mx[i].name, ".") == 0)
			return 1;
	return 0;
}

static void
on_mx(struct dns_ctx *ctx, struct dns_rr_mx *rr, void *data)
{
	struct mxq *q = data;
	struct lookup *lk = q->lk;
	struct host *h;
	int i, status = dns_status(ctx);

	lk->pending--;
	if (rr == NULL && status == DNS_E_NXDOMAIN)
		hop_fail(lk, q->group, "5.1.2", "domain %s does not exist",
		    q->domain);
	else if (rr == NULL && status == DNS_E_NODATA) {
		/* no MX: the domain is its own exchanger (RFC 5321 5.1) */
		if ((h = host_add(lk, q->domain, q->group, 0, q->port)) != NULL &&
		    host_resolve(h) < 0)
			h->nquery = 0;
	} else if (rr == NULL)
		hop_fail(lk, q->group, "4.4.3",
		    "temporary DNS failure looking up MX of %s", q->domain);
	else if (mx_is_null(rr))
		hop_fail(lk, q->group, "5.1.10",
		    "domain %s accepts no mail (null MX)", q->domain);
	else
		for (i = 0; i < rr->dnsmx_nrr; i++)
			if ((h = host_add(lk, rr->dnsmx_mx[i].name, q->group,
			    rr->dnsmx_mx[i].priority, q->port)) != NULL &&
			    host_resolve(h) < 0)
				h->nquery = 0;
	free(rr);
}

/* "H[:PORT]" or "[IP]:PORT" into name and port. */
static int
split_port(const char *item, char *name, size_t cap, int *port)
{
	const char *colon = strrchr(item, ':');
	size_t n;

	if (colon != NULL && (item[0] != '[' || colon[-1] == ']')) {
		n = colon - item;
		if ((*port = atoi(colon + 1)) <= 0 || *port > 65535)
			return -1;
	} else
		n = strlen(item);
	if (n == 0 || n >= cap)
		return -1;
	memcpy(name, item, n);
	name[n] = '\0';
	return 0;
}

static int
hop_smarthost(struct lookup *lk, const char *list, int group, int port)
{
	char item[DNS_NAME_MAX + 16], name[DNS_NAME_MAX];
	struct host *h;
	size_t n;
	int p;

	while (*list != '\0') {
		n = strcspn(list, ",");
		if (n == 0 || n >= sizeof item)
			return -1;
		memcpy(item, list, n);
		item[n] = '\0';
		p = port;
		if (split_port(item, name, sizeof name, &p) < 0 ||
		    (h = host_add(lk, name, group, 0, p)) == NULL)
			return -1;
		h->is_smarthost = 1;
		h->order = lk->nhosts;	/* bh-route shuffled the list already */
		if (host_resolve(h) < 0)
			return -1;
		list += n;
		list += strspn(list, ",");
	}
	return 0;
}

static int
hop_mx(struct lookup *lk, const char *domain, int group, int port)
{
	struct mxq *q = &lk->mx[group];
	struct host *h;

	if (domain[0] == '[') {
		/* an address literal: no MX, no query */
		if ((h = host_add(lk, domain, group, 0, port)) == NULL)
			return -1;
		return host_resolve(h);
	}
	if (strlen(domain) >= sizeof q->domain)
		return -1;
	q->lk = lk;
	q->group = group;
	q->port = port;
	memcpy(q->domain, domain, strlen(domain) + 1);
	if (dns_submit_mx(NULL, domain, DNS_NOSRCH, on_mx, q) == NULL)
		return -1;
	lk->pending++;
	return 0;
}

static int
hops_submit(struct lookup *lk, const char *hops, int port)
{
	char hop[2048];
	size_t n;

	while (*(hops += strspn(hops, " ")) != '\0') {
		n = strcspn(hops, " ");
		if (n >= sizeof hop || lk->ngroups == HOPS_MAX)
			return -1;
		memcpy(hop, hops, n);
		hop[n] = '\0';
		hops += n;
		if (strncmp(hop, "mx:", 3) == 0 && hop[3] != '\0') {
			if (hop_mx(lk, hop + 3, lk->ngroups++, port) < 0)
				return -1;
		} else if (strncmp(hop, "smarthost:", 10) == 0 && hop[10] != '\0') {
			if (hop_smarthost(lk, hop + 10, lk->ngroups++, port) < 0)
				return -1;
		} else
			return -1;
	}
	return lk->ngroups > 0 ? 0 : -1;
}

/* Runs udns until every query answered, the deadline or a stop signal. */
static void
dns_wait(struct lookup *lk, time_t deadline)
{
	struct pollfd pfd = { dns_sock(NULL), POLLIN, 0 };
	struct timespec ts;
	sigset_t none;
	time_t now;
	int wait_sec;

	sigemptyset(&none);
	while (lk->pending > 0 && !spool_stop_requested) {
		now = time(NULL);
		if (now >= deadline)
			break;
		wait_sec = dns_timeouts(NULL, deadline - now, now);
		if (lk->pending == 0)
			break;
		ts.tv_sec = wait_sec < 0 ? deadline - now : wait_sec;
		ts.tv_nsec = 0;
		if (ppoll(&pfd, 1, &ts, &none) > 0)
			dns_ioevent(NULL, time(NULL));
	}
}

static int
addr_order(const void *a, const void *b)
{
	const struct host *x = *(struct host *const *)a;
	const struct host *y = *(struct host *const *)b;

	if (x->group != y->group)
		return x->group - y->group;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void
addr_add(struct dns_hosts *out, const struct host *h,
    const struct sockaddr_storage *ss)
{
	struct dns_addr *a;
	char ip[INET6_ADDRSTRLEN];
	int port;

	if (out->n == DNS_ADDRS_MAX)
		return;
	a = &out->v[out->n++];
	snprintf(a->host, sizeof a->host, "%s", h->name);
	a->pref = h->is_smarthost ? -1 : h->pref;
	a->sa = *ss;
	if (ss->ss_family == AF_INET) {
		a->len = sizeof(struct sockaddr_in);
		inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, ip, sizeof ip);
		port = ntohs(((struct sockaddr_in *)ss)->sin_port);
		snprintf(a->text, sizeof a->text, "[%s]:%d", ip, port);
	} else {
		a->len = sizeof(struct sockaddr_in6);
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof ip);
		port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
		snprintf(a->text, sizeof a->text, "[IPv6:%s]:%d", ip, port);
	}
}

/* Sorted hosts into out: IPv4 before IPv6 for each host. */
static void
addrs_collect(struct lookup *lk, struct dns_hosts *out)
{
	struct host *order[HOSTS_MAX] = { NULL };
	size_t i, j;

	for (i = 0; i < lk->nhosts; i++)
		order[i] = &lk->hosts[i];
	qsort(order, lk->nhosts, sizeof order[0], addr_order);
	for (i = 0; i < lk->nhosts; i++) {
		for (j = 0; j < order[i]->naddr4; j++)
			addr_add(out, order[i], &order[i]->addr[j]);
		for (j = 0; j < order[i]->naddr6; j++)
			addr_add(out, order[i], &order[i]->addr[FAMILY_MAX + j]);
	}
}

/* Why nothing was found: a temporary failure anywhere wins (it may work
 * later), else the first hop's reason. */
static void
failure_collect(struct lookup *lk, struct dns_hosts *out)
{
	int g, pick = -1;

	for (g = 0; g < lk->ngroups; g++)
		if (lk->code[g][0] == '4' || (pick < 0 && lk->code[g][0] != '\0'))
			if (pick < 0 || lk->code[pick][0] != '4')
				pick = g;
	if (pick < 0) {
		snprintf(out->code, sizeof out->code, "4.4.3");
		snprintf(out->error, sizeof out->error, "DNS lookup timed out");
		return;
	}
	snprintf(out->code, sizeof out->code, "%s", lk->code[pick]);
	snprintf(out->error, sizeof out->error, "%s", lk->error[pick]);
}

int
dns_resolve_hops(const char *hops, int port, int timeout_sec,
    struct dns_hosts *out)
{
	struct lookup *lk;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (dns_setup() < 0)
		return -1;
	if ((lk = calloc(1, sizeof *lk)) == NULL)
		return -1;
	if (hops_submit(lk, hops, port) < 0) {
		errno = EINVAL;
		goto out;
	}
	dns_wait(lk, time(NULL) + timeout_sec);
	addrs_collect(lk, out);
	if (out->n == 0)
		failure_collect(lk, out);
	rc = out->n > 0;
out:
	/* unanswered queries point into lk: drop them before freeing it */
	if (lk->pending > 0) {
		dns_reset(NULL);
		dns_ready = 0;
	}
	free(lk);
	return rc;
}
