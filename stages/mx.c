/*
 * bh-mx: shows where bh-remote would deliver mail for a domain (the
 * nslookup check of the book), resolved exactly as the stage resolves it.
 *
 *	bh-mx DOMAIN             MX records with preferences and addresses
 *	bh-mx --connector NAME   the connector's smart host chain (or, for
 *	                         route=dns, that it goes by MX)
 *	bh-mx --hops HOPS        any next-hop text as bh-route writes it
 *
 * output  one line per address to try, in order:
 *	        "mx PREF HOST [IP]:PORT" or "smarthost HOST [IP]:PORT";
 *	        on failure one line "error CODE TEXT"
 * config  settings dns, remote-port; connectors.cdb
 * exit    0 addresses found; 100 permanent failure (5.x.x) or bad usage;
 *         111 temporary failure (4.4.3) or system trouble
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "connector.h"
#include "dns.h"
#include "log.h"

/* Hops of a connector: its smart host list as written (no shuffle). */
static void
connector_hops_text(const char *name, struct buf *hops)
{
	struct conf c;
	struct attrs a = ATTRS_INIT;
	char key[300];
	const char *sh, *route;
	int rc;

	snprintf(key, sizeof key, "connector:%s", name);
	if (conf_open(&c, "connectors") < 0 || (rc = conf_record(&c, key, &a)) < 0)
		die(EXIT_TEMP, errno, "unable to read connectors.cdb");
	if (rc == 0)
		die(EXIT_PERM, 0, "no connector %s", name);
	sh = attrs_get(&a, "smarthost");
	route = attrs_get(&a, "route");
	if (sh == NULL || *sh == '\0') {
		printf("connector %s routes by DNS MX of each recipient domain%s\n",
		    name, route ? "" : " (no smarthost=)");
		exit(EXIT_DONE);
	}
	if (buf_printf(hops, "smarthost:%s", sh) < 0)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	attrs_free(&a);
	conf_close(&c);
}

static void
print_hosts(const struct dns_hosts *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (h->v[i].pref < 0)
			printf("smarthost %s %s\n", h->v[i].host, h->v[i].text);
		else
			printf("mx %d %s %s\n", h->v[i].pref, h->v[i].host,
			    h->v[i].text);
}

int
main(int argc, char **argv)
{
	struct buf hops = BUF_INIT;
	struct dns_hosts h;
	int rc, port = conf_setting_size("remote-port", 25);

	log_init("mx");
	if (argc == 3 && strcmp(argv[1], "--connector") == 0)
		connector_hops_text(argv[2], &hops);
	else if (argc == 3 && strcmp(argv[1], "--hops") == 0)
		rc = buf_adds(&hops, argv[2]);
	else if (argc == 2 && argv[1][0] != '-')
		rc = buf_printf(&hops, "mx:%s", argv[1]);
	else
		die(EXIT_PERM, 0, "usage: bh-mx DOMAIN | --connector NAME | --hops HOPS");
	if (hops.data == NULL)
		die(EXIT_TEMP, ENOMEM, "out of memory");
	if ((rc = dns_resolve_hops(hops.data, port, 30, &h)) < 0)
		die(errno == EINVAL ? EXIT_PERM : EXIT_TEMP, errno,
		    "unable to resolve %s", hops.data);
	if (rc == 0) {
		printf("error %s %s\n", h.code, h.error);
		return h.code[0] == '5' ? EXIT_PERM : EXIT_TEMP;
	}
	print_hosts(&h);
	buf_free(&hops);
	return EXIT_DONE;
}
