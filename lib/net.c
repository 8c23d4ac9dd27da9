#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "clock.h"
#include "net.h"

/* write(2) until all of p is out. 0 or -1. */
static int
write_some_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= w;
	}
	return 0;
}

void
net_init(struct net *n, int rfd, int wfd, int timeout_sec)
{
	struct timeval tv = { timeout_sec, 0 };

	memset(n, 0, offsetof(struct net, in));
	n->rfd = rfd;
	n->wfd = wfd;
	n->timeout_sec = timeout_sec;
	/* a backstop under TLS, where one record may arrive in pieces and
	 * SSL_read would otherwise wait for the rest without a deadline;
	 * not a socket (inetd style over pipes) is fine */
	if (timeout_sec > 0) {
		setsockopt(rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(wfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
}

/* Waits until rfd is readable: 1, or 0 at the timeout, the line's
 * deadline or a stop. */
static int
net_wait(struct net *n)
{
	struct pollfd p = { n->rfd, POLLIN, 0 };
	struct timespec ts;
	long long ms;
	sigset_t none;
	int rc;

	sigemptyset(&none);
	do {
		if (n->stop != NULL && *n->stop)
			return 0;
		ms = n->timeout_sec > 0 ? n->timeout_sec * 1000LL : -1;
		if (n->deadline_ms > 0) {
			long long left = n->deadline_ms - clock_ms();
			if (left <= 0)
				return 0;
			if (ms < 0 || left < ms)
				ms = left;
		}
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = ms % 1000 * 1000000;
		rc = ppoll(&p, 1, ms >= 0 ? &ts : NULL, &none);
	} while (rc < 0 && errno == EINTR);
	return rc > 0;
}

static ssize_t
net_read_some(struct net *n, char *p, size_t cap)
{
	ssize_t got;

	if (n->ssl != NULL) {
		if (SSL_pending(n->ssl) == 0 && !net_wait(n))
			return -1;
		got = SSL_read(n->ssl, p, cap);
		return got > 0 ? got : -1;
	}
	if (!net_wait(n))
		return -1;
	do
		got = read(n->rfd, p, cap);
	while (got < 0 && errno == EINTR);
	return got > 0 ? got : -1;
}

/* Refills the input buffer when it is empty: replies wait in the output
 * buffer until we would block, so pipelined replies leave in one write.
 * 1 there is input, 0 EOF/timeout/error. */
static int
net_fill(struct net *n)
{
	ssize_t got;

	if (n->pos < n->len)
		return 1;
	if (n->is_eof)
		return 0;
	if (net_flush(n) < 0) {
		n->is_eof = 1;
		return 0;
	}
	n->pos = n->len = 0;
	if ((got = net_read_some(n, n->in, sizeof n->in)) < 0) {
		n->is_eof = 1;
		return 0;
	}
	n->len = got;
	n->nread += got;
	return 1;
}

/* Scans one line: copies what fits, notes every CR that is not the one
 * right before the LF. */
static ssize_t
net_line_scan(struct net *n, char *line, size_t cap)
{
	size_t len = 0;
	int is_toolong = 0, ncr = 0, last_cr = 0;

	for (;;) {
		char *start, *lf;
		size_t avail, take, i;

		if (!net_fill(n))
			return -1;
		start = n->in + n->pos;
		avail = n->len - n->pos;
		lf = memchr(start, '\n', avail);
		take = lf ? (size_t)(lf - start) : avail;
		for (i = 0; i < take; i++) {
			if (start[i] == '\r')
				ncr++;
			if (len + 1 < cap)
				line[len++] = start[i];
			else
				is_toolong = 1;
		}
		if (take > 0)
			last_cr = start[take - 1] == '\r';
		n->pos += take + (lf != NULL);
		if (lf != NULL)
			break;
	}
	if (last_cr) {
		ncr--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
	}
	line[len] = '\0';
	if (!last_cr || ncr > 0)
		return NET_BARE;
	return is_toolong ? NET_TOOLONG : (ssize_t)len;
}

ssize_t
net_line(struct net *n, char *line, size_t cap)
{
	ssize_t rc;

	n->deadline_ms = n->timeout_sec > 0 ? clock_ms() +
	    n->timeout_sec * 1000LL : 0;
	rc = net_line_scan(n, line, cap);
	n->deadline_ms = 0;
	return rc;
}

int
net_read_exact(struct net *n, unsigned long long len,
    int (*sink)(void *arg, const char *p, size_t len), void *arg)
{
	int is_failed = 0;

	while (len > 0) {
		size_t take;

		if (!net_fill(n))
			return -1;
		take = n->len - n->pos;
		if (take > len)
			take = len;
		if (sink != NULL && !is_failed &&
		    sink(arg, n->in + n->pos, take) < 0)
			is_failed = 1;
		n->pos += take;
		len -= take;
	}
	return is_failed ? -1 : 0;
}

enum { D_BOL, D_TEXT, D_CR, D_DOT, D_DOTCR };

struct data_out {
	struct net_data *d;
	int (*sink)(void *, const char *, size_t);
	void *arg;
	size_t len, linelen;
	char buf[NET_BUF];
};

static void
data_flush(struct data_out *o)
{
	if (o->len == 0)
		return;
	if (!o->d->sink_failed && o->sink(o->arg, o->buf, o->len) < 0)
		o->d->sink_failed = 1;
	o->d->nbytes += o->len;
	o->len = 0;
}

static void
data_put(struct data_out *o, char c)
{
	if (o->len == sizeof o->buf)
		data_flush(o);
	o->buf[o->len++] = c;
	if (o->d->max_line > 0 && ++o->linelen > o->d->max_line)
		o->d->has_long_line = 1;
}

/* A run of ordinary bytes in the middle of a line. */
static void
data_put_run(struct data_out *o, const char *p, size_t len)
{
	size_t take;

	o->linelen += len;
	if (o->d->max_line > 0 && o->linelen > o->d->max_line)
		o->d->has_long_line = 1;
	while (len > 0) {
		if (o->len == sizeof o->buf)
			data_flush(o);
		take = sizeof o->buf - o->len;
		if (take > len)
			take = len;
		memcpy(o->buf + o->len, p, take);
		o->len += take;
		p += take;
		len -= take;
	}
}

/* The length of the run of bytes other than CR and LF at p[0..len). */
static size_t
data_run(const char *p, size_t len)
{
	const char *cr = memchr(p, '\r', len);
	const char *lf = memchr(p, '\n', cr != NULL ? (size_t)(cr - p) : len);

	return lf != NULL ? (size_t)(lf - p) : cr != NULL ? (size_t)(cr - p) : len;
}

/* One byte of the middle of a line. */
static int
data_text(struct data_out *o, char c)
{
	if (c == '\r')
		return D_CR;
	if (c == '\n')
		o->d->has_bare = 1;	/* a bare LF never ends a line */
	data_put(o, c);
	return D_TEXT;
}

/* The state machine of the data reader. Only CR LF "." CR LF ends the
 * data: every other spelling of a line end is kept as data and flagged,
 * so no sequence of bare CRs and LFs can end a message or start one. */
static int
data_step(struct data_out *o, int state, char c)
{
	switch (state) {
	case D_BOL:
		if (c == '.')
			return D_DOT;
		return data_text(o, c);
	case D_CR:
		if (c == '\n') {
			data_put(o, '\r');
			data_put(o, '\n');
			o->linelen = 0;
			return D_BOL;
		}
		o->d->has_bare = 1;
		data_put(o, '\r');
		return data_text(o, c);
	case D_DOT:
		if (c == '\r')
			return D_DOTCR;
		return data_text(o, c);	/* the stuffed dot is dropped */
	case D_DOTCR:
		if (c == '\n')
			return -1;	/* the end */
		o->d->has_bare = 1;
		data_put(o, '\r');
		return data_text(o, c);
	default:
		return data_text(o, c);
	}
}

int
net_data(struct net *n, struct net_data *d,
    int (*sink)(void *arg, const char *p, size_t len), void *arg)
{
	static struct data_out o;	/* 32 KB: kept off the stack */
	int state = D_BOL;

	o.d = d;
	o.sink = sink;
	o.arg = arg;
	o.len = o.linelen = 0;
	for (;;) {
		if (!net_fill(n))
			return -1;
		while (n->pos < n->len) {
			char c;
			/* fast path: ordinary bytes in the middle of a line */
			if (state == D_TEXT) {
				size_t run = data_run(n->in + n->pos,
				    n->len - n->pos);
				data_put_run(&o, n->in + n->pos, run);
				if ((n->pos += run) == n->len)
					break;
			}
			c = n->in[n->pos++];
			if ((state = data_step(&o, state, c)) < 0) {
				data_flush(&o);
				return 0;
			}
		}
	}
}

/* One piece from the session's side of a relay: > 0 bytes, 0 closed. */
static ssize_t
net_relay_in(struct net *n, char *buf, size_t cap)
{
	ssize_t got;

	if (n->ssl != NULL)
		return (got = SSL_read(n->ssl, buf, cap)) > 0 ? got : 0;
	do
		got = read(n->rfd, buf, cap);
	while (got < 0 && errno == EINTR);
	return got > 0 ? got : 0;
}

int
net_relay(struct net *n, int fd, int timeout_sec)
{
	static char buf[NET_BUF];
	ssize_t got;

	if ((n->pos < n->len && write_some_all(fd, n->in + n->pos,
	    n->len - n->pos) < 0) || net_flush(n) < 0)
		return -1;
	n->pos = n->len = 0;
	for (;;) {
		struct pollfd p[2] = { { n->rfd, POLLIN, 0 }, { fd, POLLIN, 0 } };
		int rc = 1, is_tls_ready = n->ssl && SSL_pending(n->ssl) > 0;
		if (!is_tls_ready && (rc = poll(p, 2, timeout_sec > 0 ?
		    timeout_sec * 1000 : -1)) < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		if (is_tls_ready || p[0].revents) {
			if ((got = net_relay_in(n, buf, sizeof buf)) == 0) {
				shutdown(fd, SHUT_WR);
				return 0;
			}
			if (write_some_all(fd, buf, got) < 0)
				return -1;
		}
		if (p[1].revents) {
			if ((got = read(fd, buf, sizeof buf)) <= 0)
				return got == 0 ? 0 : -1;
			if (net_write(n, buf, got) < 0 || net_flush(n) < 0)
				return -1;
		}
	}
}

size_t
net_pending(const struct net *n)
{
	return n->len - n->pos + (n->ssl ? (size_t)SSL_pending(n->ssl) : 0);
}

void
net_discard(struct net *n)
{
	n->pos = n->len = 0;
}

int
net_flush(struct net *n)
{
	size_t done = 0;

	while (done < n->olen) {
		ssize_t w;
		if (n->ssl != NULL)
			w = SSL_write(n->ssl, n->out + done, n->olen - done);
		else
			w = write(n->wfd, n->out + done, n->olen - done);
		if (w <= 0) {
			if (w < 0 && errno == EINTR && n->ssl == NULL)
				continue;
			n->olen = 0;
			n->is_eof = 1;
			return -1;
		}
		done += w;
	}
	n->nwritten += n->olen;
	n->olen = 0;
	return 0;
}

int
net_write(struct net *n, const void *p, size_t len)
{
	const char *s = p;

	while (len > 0) {
		size_t take = sizeof n->out - n->olen;
		if (take == 0) {
			if (net_flush(n) < 0)
				return -1;
			continue;
		}
		if (take > len)
			take = len;
		memcpy(n->out + n->olen, s, take);
		n->olen += take;
		s += take;
		len -= take;
	}
	return 0;
}

int
net_tls_accept(struct net *n, SSL *ssl)
{
	if (net_flush(n) < 0 || !SSL_set_rfd(ssl, n->rfd) ||
	    !SSL_set_wfd(ssl, n->wfd) || SSL_accept(ssl) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		return -1;
	}
	net_discard(n);
	n->ssl = ssl;
	return 0;
}

void
net_tls_end(struct net *n)
{
	if (n->ssl == NULL)
		return;
	net_flush(n);
	SSL_shutdown(n->ssl);
	SSL_free(n->ssl);
	n->ssl = NULL;
}

int
net_listen(const char *addr)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { 0 }, *ai;
	int fd, on = 1, is_bracketed = addr[0] == '[';
	size_t hlen;

	if (colon == NULL || (hlen = colon - addr) >= sizeof host ||
	    hlen < 2 * (size_t)is_bracketed)
		return -1;
	memcpy(host, addr + is_bracketed, hlen - 2 * is_bracketed);
	host[hlen - 2 * is_bracketed] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
	/* SO_REUSEPORT lets "0.0.0.0:25" of one virtual server and
	 * "192.0.2.1:25" of another coexist (the book's "All Unassigned"):
	 * Linux hands a connection to the most specific listener */
	if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
	    sizeof on) < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof on) < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(fd, 256) < 0)) {
		int err = errno;
		close(fd);
		errno = err;
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

void
net_peer_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	out[0] = '\0';
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
		    out, cap);
	else if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], out, cap);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &in6->sin6_addr, out, cap);
}

int
net_cidr_match(const char *entry, const char *ip)
{
	unsigned char net[16], addr[16];
	char host[64];
	const char *slash = strchr(entry, '/');
	size_t hlen = slash ? (size_t)(slash - entry) : strlen(entry);
	int family = strchr(entry, ':') ? AF_INET6 : AF_INET;
	int bits = family == AF_INET ? 32 : 128, i;

	if (hlen >= sizeof host)
		return 0;
	memcpy(host, entry, hlen);
	host[hlen] = '\0';
	if (slash != NULL)
		bits = atoi(slash + 1);
	if (inet_pton(family, host, net) != 1 || inet_pton(family, ip, addr) != 1 ||
	    bits < 0 || bits > (family == AF_INET ? 32 : 128))
		return 0;
	for (i = 0; bits >= 8; i++, bits -= 8)
		if (net[i] != addr[i])
			return 0;
	return bits == 0 || ((net[i] ^ addr[i]) & (0xff00 >> bits)) == 0;
}

/* ip as a socket address for getnameinfo. Its length, or 0. */
static socklen_t
net_sockaddr(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return sizeof(struct sockaddr_in);
	}
	if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return sizeof(struct sockaddr_in6);
	}
	return 0;
}

int
net_confirmed_name(const char *ip, char *out, size_t cap)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char name[256], back[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;
	socklen_t len = net_sockaddr(ip, &ss);
	int rc = -1;

	if (len == 0 || getnameinfo((struct sockaddr *)&ss, len, name,
	    sizeof name, NULL, 0, NI_NAMEREQD) != 0)
		return -1;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(name, NULL, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL && rc < 0; ai = ai->ai_next)
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, back, sizeof back,
		    NULL, 0, NI_NUMERICHOST) == 0 && strcmp(back, ip) == 0)
			rc = snprintf(out, cap, "%s", name) < (int)cap ? 0 : -1;
	freeaddrinfo(res);
	return rc;
}
