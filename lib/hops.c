#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "attr.h"
#include "conf.h"
#include "hops.h"

enum { ITEM_MAX = 512, SMARTHOST_MAX = 64 };

int
hops_smarthost(const char *list, struct buf *b)
{
	char item[SMARTHOST_MAX][ITEM_MAX / 2], tmp[ITEM_MAX / 2];
	size_t n = 0, i, j;

	while (n < SMARTHOST_MAX &&
	    attr_list_next(&list, item[n], sizeof item[n]))
		n++;
	if (n == 0) {
		errno = EINVAL;
		return -1;
	}
	for (i = n - 1; i > 0; i--) {	/* Fisher-Yates */
		j = (size_t)random() % (i + 1);
		memcpy(tmp, item[i], sizeof tmp);
		memcpy(item[i], item[j], sizeof tmp);
		memcpy(item[j], tmp, sizeof tmp);
	}
	if (buf_adds(b, "smarthost:") < 0)
		return -1;
	for (i = 0; i < n; i++)
		if ((i > 0 && buf_addc(b, ',') < 0) || buf_adds(b, item[i]) < 0)
			return -1;
	return 0;
}

/* Splits "[IP]:PORT", "[IP]", "HOST:PORT", "HOST" into host and port
 * (def when absent); *is_literal tells an address from a name. */
static void
hop_split(const char *entry, char *host, size_t cap, long *port, long def,
    int *is_literal)
{
	const char *end, *colon;
	size_t n;

	*port = def;
	*is_literal = entry[0] == '[';
	if (*is_literal) {
		entry++;
		end = strchr(entry, ']');
		if (end == NULL)
			end = entry + strlen(entry);
		colon = *end == ']' && end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(entry, ':');
		end = colon != NULL ? colon : entry + strlen(entry);
	}
	if (colon != NULL)
		*port = strtol(colon + 1, NULL, 10);
	n = (size_t)(end - entry) < cap - 1 ? (size_t)(end - entry) : cap - 1;
	memcpy(host, entry, n);
	host[n] = '\0';
}

/* Is ip one of this host's addresses? Loopback always is. */
static int
address_is_local(const char *ip)
{
	struct ifaddrs *ifs, *i;
	char text[INET6_ADDRSTRLEN];
	int found = strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;

	if (found || getifaddrs(&ifs) < 0)
		return found;
	for (i = ifs; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
			    text, sizeof text);
		else if (i->ifa_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
			    text, sizeof text);
		else
			continue;
		found = strcmp(text, ip) == 0;
	}
	freeifaddrs(ifs);
	return found;
}

/* Does the listen list (IP:PORT,...) of one server cover ip:port (ip
 * NULL: use port on any address)? */
static int
listen_covers(const char *list, const char *ip, long port)
{
	char item[ITEM_MAX], host[ITEM_MAX];
	long lport;
	int lit;

	while (attr_list_next(&list, item, sizeof item)) {
		hop_split(item, host, sizeof host, &lport, 25, &lit);
		if (lport != port)
			continue;
		if (ip == NULL || strcmp(host, ip) == 0 ||
		    ((strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) &&
		    address_is_local(ip)))
			return 1;
	}
	return 0;
}

/* A next hop: an address (ip) or a host name (name), and its port (0 for
 * a name without one: any port). */
struct hop {
	const char *name, *ip;
	long port;
};

/* Is the hop this server (one record of servers.cdb)? A name counts when
 * it is the server's hostname= or settings hostname and, with a port, the
 * server listens on that port (another root on this machine may listen on
 * another). */
static int
server_is(const struct attrs *a, const struct hop *h)
{
	const char *host = attrs_get(a, "hostname");
	const char *listen = attrs_get(a, "listen");

	if (h->ip != NULL)
		return listen != NULL && listen_covers(listen, h->ip, h->port);
	if ((host == NULL || strcasecmp(host, h->name) != 0) &&
	    strcasecmp(h->name, conf_hostname()) != 0)
		return 0;
	return h->port == 0 ||
	    (listen != NULL && listen_covers(listen, NULL, h->port));
}

static int
is_self(const struct hop *h)
{
	static struct conf servers;
	static int is_open;
	struct attrs a = ATTRS_INIT;
	char **names, key[300];
	size_t n, i;
	int self = 0;

	if (h->name != NULL && h->port == 0 &&
	    strcasecmp(h->name, conf_hostname()) == 0)
		return 1;
	if (!is_open && conf_open(&servers, "servers") == 0)
		is_open = 1;
	if (!is_open || conf_refresh(&servers) < 0 ||
	    conf_list(&servers, "servers", &names, &n) <= 0)
		return 0;
	for (i = 0; i < n && !self; i++) {
		snprintf(key, sizeof key, "server:%s", names[i]);
		if (conf_record(&servers, key, &a) == 1)
			self = server_is(&a, h);
		attrs_free(&a);
	}
	free(names);
	return self;
}

static int
smarthost_self(const char *list, long def_port)
{
	char item[ITEM_MAX], host[ITEM_MAX];
	struct hop h;
	int lit;

	while (attr_list_next(&list, item, sizeof item)) {
		hop_split(item, host, sizeof host, &h.port, def_port, &lit);
		h.ip = lit ? host : NULL;
		h.name = lit ? NULL : host;
		if (!lit && strchr(item, ':') == NULL)
			h.port = 0;	/* a name without a port: any port */
		if (is_self(&h))
			return 1;
	}
	return 0;
}

int
hops_is_self(const char *hops)
{
	char group[2048];
	long port = conf_setting_size("remote-port", 25);

	while (attr_word(&hops, group, sizeof group) == 1) {
		struct hop mx = { group + 3, NULL, 0 };
		if (strncmp(group, "mx:", 3) == 0 && is_self(&mx))
			return 1;
		if (strncmp(group, "smarthost:", 10) == 0 &&
		    smarthost_self(group + 10, port))
			return 1;
	}
	return 0;
}

static int
is_ip(const char *s)
{
	unsigned char bin[16];

	return inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1;
}

/* A fully qualified name: two labels or more of letters, digits and '-',
 * and not a dotted number. */
static int
is_fqdn(const char *s)
{
	size_t len = 0, nlabels = 1;
	int has_alpha = 0;

	for (; *s != '\0'; s++, len++) {
		if (*s == '.') {
			if (len == 0 || s[1] == '\0' || s[1] == '.')
				return 0;
			nlabels++;
		} else if (isalpha((unsigned char)*s))
			has_alpha = 1;
		else if (!isdigit((unsigned char)*s) && *s != '-')
			return 0;
	}
	return len > 0 && nlabels >= 2 && has_alpha;
}

int
hops_entry_valid(const char *s)
{
	char host[300];
	const char *end, *port = NULL;
	size_t n;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return 0;
		n = end - s - 1;
		port = end[1] == ':' ? end + 2 : end[1] == '\0' ? NULL : "";
	} else {
		n = strcspn(s, ":");
		port = s[n] == ':' ? s + n + 1 : NULL;
	}
	if (n == 0 || n >= sizeof host)
		return 0;
	memcpy(host, s + (*s == '['), n);
	host[n] = '\0';
	if (port != NULL && (*port == '\0' || strspn(port, "0123456789") !=
	    strlen(port) || atoi(port) == 0 || atoi(port) > 65535))
		return 0;
	return *s == '[' ? is_ip(host) : is_fqdn(host);
}
