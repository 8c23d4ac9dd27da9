/*
 * fuzz-dns: DNS replies handed to lib/dns. A UDP server in a thread of the
 * fuzzer answers every query udns sends with a reply built from the input:
 * the query's id and question (so udns takes it), then the input's flags,
 * record counts and record bytes (so udns parses whatever a hostile or
 * broken server could send). lib/dns is compiled in, its settings lookup
 * pointed at that server.
 *
 * Input: a hops line as bh-route writes it ("mx:example.test"), "\n", then
 * replies, each a 2-byte big-endian length and that many bytes:
 *	byte 0  AA and RD bits (others masked: no TC, standard query)
 *	byte 1  RA, Z, AD, CD and RCODE
 *	byte 2, 3, 4  answer, authority and additional counts
 *	rest    the records (names may point at the question: 0xC0 0x0C)
 * Query k gets reply k modulo their number (none: SERVFAIL).
 * Checks: dns_resolve_hops returns within its deadline, with addresses
 * that fit, or with one of the documented codes and an explanation.
 */
#include <pthread.h>

#define conf_setting fuzz_conf_setting
#include "../lib/dns.c"
#undef conf_setting

#include "fuzz.h"

enum { REPLIES_MAX = 16, PACKET_MAX = 4096 };

static int server_fd = -1;
static char server_addr[64];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *reply[REPLIES_MAX];
static size_t reply_len[REPLIES_MAX], nreply, nquery;

int
fuzz_conf_setting(const char *key, const char *def, char *buf, size_t cap)
{
	if (strcmp(key, "dns") != 0)
		return 0;
	snprintf(buf, cap, "%s", server_addr);
	return 1;
}

/* The end of the question: header, name, type and class. 0 if bad. */
static size_t
question_end(const uint8_t *q, size_t len)
{
	size_t i = 12;

	while (i < len && q[i] != 0) {
		if (q[i] > 63)
			return 0;
		i += 1 + q[i];
	}
	return i + 5 <= len ? i + 5 : 0;
}

static size_t
answer(const uint8_t *q, size_t qlen, uint8_t *out)
{
	size_t qend = question_end(q, qlen), n, k;
	const uint8_t *r;

	if (qend == 0)
		return 0;
	memcpy(out, q, qend);
	out[2] = 0x80 | (q[2] & 0x01);
	out[3] = 0x80 | DNS_R_SERVFAIL;
	memset(out + 6, 0, 6);
	pthread_mutex_lock(&lock);
	k = nquery++;
	n = qend;
	if (nreply > 0) {
		r = reply[k % nreply];
		n = reply_len[k % nreply];
		out[2] = 0x80 | (n > 0 ? r[0] & 0x05 : 0);
		out[3] = n > 1 ? r[1] : 0;
		out[7] = n > 2 ? r[2] : 0;
		out[9] = n > 3 ? r[3] : 0;
		out[11] = n > 4 ? r[4] : 0;
		n = n > 5 ? n - 5 : 0;
		if (n > PACKET_MAX - qend)
			n = PACKET_MAX - qend;
		memcpy(out + qend, r + 5, n);
		n += qend;
	}
	pthread_mutex_unlock(&lock);
	return n;
}

static void *
server(void *arg)
{
	uint8_t q[PACKET_MAX], out[PACKET_MAX];
	struct sockaddr_storage from;
	socklen_t flen;
	ssize_t got;
	size_t n;

	for (;;) {
		flen = sizeof from;
		got = recvfrom(server_fd, q, sizeof q, 0,
		    (struct sockaddr *)&from, &flen);
		if (got > 0 && (n = answer(q, got, out)) > 0)
			sendto(server_fd, out, n, 0, (struct sockaddr *)&from,
			    flen);
	}
	return NULL;
}

static void
server_start(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	pthread_t t;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((server_fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0 ||
	    bind(server_fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(server_fd, (struct sockaddr *)&sin, &len) < 0 ||
	    pthread_create(&t, NULL, server, NULL) != 0)
		abort();
	snprintf(server_addr, sizeof server_addr, "127.0.0.1:%d",
	    ntohs(sin.sin_port));
}

/* The replies of the input after the hops line. */
static void
replies_set(const uint8_t *p, size_t len)
{
	size_t n;

	pthread_mutex_lock(&lock);
	nreply = nquery = 0;
	while (len >= 2 && nreply < REPLIES_MAX) {
		n = (size_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
		if (n > len)
			n = len;
		reply[nreply] = p;
		reply_len[nreply++] = n;
		p += n;
		len -= n;
	}
	pthread_mutex_unlock(&lock);
}

static void
result_check(int rc, const struct dns_hosts *out)
{
	static const char *codes[] = { "5.1.2", "5.1.10", "5.4.4", "5.4.0",
	    "4.4.3" };
	size_t i;
	int known = 0;

	if (rc == 1) {
		FUZZ_CHECK(out->n > 0 && out->n <= DNS_ADDRS_MAX);
		for (i = 0; i < out->n; i++)
			FUZZ_CHECK(out->v[i].text[0] == '[' && out->v[i].len > 0);
		return;
	}
	if (rc < 0)
		return;
	FUZZ_CHECK(out->n == 0 && out->error[0] != '\0');
	for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
		known |= strcmp(out->code, codes[i]) == 0;
	FUZZ_CHECK(known);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_hosts out;
	const uint8_t *rest;
	size_t nrest;
	char *hops = fuzz_split(data, size, '\n', &rest, &nrest);
	time_t start = time(NULL);
	int rc;

	if (server_fd < 0)
		server_start();
	replies_set(rest, nrest);
	rc = dns_resolve_hops(hops, 25, 2, &out);
	FUZZ_CHECK(time(NULL) - start <= 4);
	if (getenv("FUZZ_VERBOSE") != NULL)	/* to check a seed by hand */
		fprintf(stderr, "rc=%d n=%zu first=%s code=%s error=%s\n", rc,
		    out.n, out.n ? out.v[0].text : "", out.code, out.error);
	result_check(rc, &out);
	free(hops);
	return 0;
}
