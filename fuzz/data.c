/*
 * fuzz-data: the session reader of lib/net over bytes as a client sends
 * them. Two passes over each input:
 *  1. The whole input as message data after DATA, checked against a
 *     reference model: the data ends at the first CR LF "." CR LF (the
 *     start of the data counting as a line start), every "." that starts a
 *     line is dropped, nothing else changes. Any other reading of bare CRs
 *     or LFs would let a client smuggle a second message (SMTP smuggling).
 *  2. A session: command lines (net_line), "DATA" lines followed by data,
 *     "BDAT N" lines followed by N bytes (net_read_exact), in any order.
 * The input is served from a memory file, so reads end at its end.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "net.h"

static struct net session;
static int null_fd = -1;

struct collect {
	char *p;
	size_t len, cap;
};

static int
collect_sink(void *arg, const char *p, size_t len)
{
	struct collect *c = arg;

	FUZZ_CHECK(len > 0 && len <= NET_BUF);
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		if ((c->p = realloc(c->p, c->cap)) == NULL)
			abort();
	}
	memcpy(c->p + c->len, p, len);
	c->len += len;
	return 0;
}

/* What the data reader must give for in[0..len): the bytes, unstuffed,
 * into out (len bytes at least). Returns their count, or -1 when the
 * input holds no end of data. */
static long
model_data(const uint8_t *in, size_t len, char *out)
{
	size_t i, n = 0;
	int at_bol = 1;

	for (i = 0; i < len; i++) {
		if (at_bol && in[i] == '.') {
			if (i + 2 < len + 0 && in[i + 1] == '\r' && in[i + 2] == '\n')
				return (long)n;
			at_bol = 0;
			continue;	/* a stuffed dot */
		}
		at_bol = 0;
		out[n++] = in[i];
		if (in[i] == '\n' && n >= 2 && i >= 1 && in[i - 1] == '\r')
			at_bol = 1;
	}
	return -1;
}

static void
net_open(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", 0);

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) < 0)
		abort();
	if (null_fd < 0 && (null_fd = open("/dev/null", O_WRONLY)) < 0)
		abort();
	net_init(&session, fd, null_fd, 0);
}

static void
fuzz_data(const uint8_t *data, size_t size)
{
	struct net_data d = { 1000, 0, 0, 0, 0 };
	struct collect c = { NULL, 0, 0 };
	char *want = malloc(size + 1);
	long nwant = model_data(data, size, want);
	int rc;

	net_open(data, size);
	rc = net_data(&session, &d, collect_sink, &c);
	FUZZ_CHECK(rc == (nwant < 0 ? -1 : 0));
	if (rc == 0) {
		FUZZ_CHECK(d.nbytes == (unsigned long long)nwant);
		FUZZ_CHECK(c.len == (size_t)nwant);
		FUZZ_CHECK(c.len == 0 || memcmp(c.p, want, c.len) == 0);
	}
	close(session.rfd);
	free(want);
	free(c.p);
}

/* One command line: DATA and BDAT read their message bytes. 0, -1 EOF. */
static int
fuzz_command(const char *line)
{
	struct net_data d = { 1000, 0, 0, 0, 0 };
	struct collect c = { NULL, 0, 0 };
	unsigned long long n;
	int rc = 0;

	if (strcmp(line, "DATA") == 0)
		rc = net_data(&session, &d, collect_sink, &c);
	else if (sscanf(line, "BDAT %llu", &n) == 1)
		rc = net_read_exact(&session, n % (1 << 20),
		    n & 1 ? collect_sink : NULL, &c);
	free(c.p);
	return rc;
}

static void
fuzz_session(const uint8_t *data, size_t size)
{
	char line[512];
	ssize_t len;
	unsigned long long before;

	net_open(data, size);
	for (;;) {
		before = session.nread - (session.len - session.pos);
		if ((len = net_line(&session, line, sizeof line)) == -1)
			break;
		FUZZ_CHECK(len == NET_TOOLONG || len == NET_BARE ||
		    (len >= 0 && (size_t)len < sizeof line &&
		    strlen(line) <= (size_t)len));
		FUZZ_CHECK(session.nread - (session.len - session.pos) > before);
		if (len >= 0 && fuzz_command(line) < 0)
			break;
		net_write(&session, "250 ok\r\n", 8);
	}
	FUZZ_CHECK(net_pending(&session) == 0);
	net_flush(&session);
	close(session.rfd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_data(data, size);
	fuzz_session(data, size);
	return 0;
}
