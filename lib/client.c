#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "client.h"
#include "spool.h"

enum { CHUNK_MAX = 1 << 20 };

/* Our own explanation of a failed connection, as a reply without a code. */
static int
client_fail(struct client *c, const char *status, const char *fmt, ...)
{
	va_list ap;
	int n;

	c->code = 0;
	snprintf(c->status, sizeof c->status, "%s", status);
	n = snprintf(c->reply, sizeof c->reply, "%s ", status);
	va_start(ap, fmt);
	vsnprintf(c->reply + n, sizeof c->reply - n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
timeout_of(const struct client *c, int sec)
{
	return c->timeout_cap > 0 && c->timeout_cap < sec ? c->timeout_cap : sec;
}

/* Waits until fd is ready for events or the deadline. 1 ready, 0 timeout,
 * -1 stop requested. Signals are unblocked only inside ppoll. */
static int
wait_fd(int fd, short events, time_t deadline)
{
	struct pollfd pfd = { fd, events, 0 };
	struct timespec ts;
	sigset_t none;
	time_t now;

	sigemptyset(&none);
	for (;;) {
		if (spool_stop_requested)
			return -1;
		if ((now = time(NULL)) >= deadline)
			return 0;
		ts.tv_sec = deadline - now;
		ts.tv_nsec = 0;
		if (ppoll(&pfd, 1, &ts, &none) > 0)
			return 1;
	}
}

/* Reads some bytes into c->in. >0, 0 EOF, -1 error/timeout/stop. */
static ssize_t
fill(struct client *c, time_t deadline)
{
	ssize_t n;
	int err, rc;

	for (;;) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_read(c->ssl, c->in, sizeof c->in);
			if (n > 0)
				return n;
			err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
				return err == SSL_ERROR_SYSCALL && n == 0 ? 0 : -1;
			rc = wait_fd(c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			    deadline);
		} else {
			n = read(c->fd, c->in, sizeof c->in);
			if (n >= 0)
				return n;
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			rc = wait_fd(c->fd, POLLIN, deadline);
		}
		if (rc <= 0) {
			errno = rc == 0 ? ETIMEDOUT : EINTR;
			return -1;
		}
	}
}

static int
send_bytes(struct client *c, const char *p, size_t len, time_t deadline)
{
	ssize_t n;
	int err, rc;

	while (len > 0) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_write(c->ssl, p, len);
			if (n <= 0) {
				err = SSL_get_error(c->ssl, n);
				if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
					return -1;
				rc = wait_fd(c->fd, err == SSL_ERROR_WANT_READ ?
				    POLLIN : POLLOUT, deadline);
				if (rc <= 0)
					return -1;
				continue;
			}
		} else if ((n = write(c->fd, p, len)) < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			if (wait_fd(c->fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int
dropped(struct client *c, const char *what)
{
	if (spool_stop_requested)
		return client_fail(c, "4.4.2", "delivery to %s interrupted (stopping)",
		    c->peer);
	if (errno == ETIMEDOUT)
		return client_fail(c, "4.4.2", "timeout %s %s", what, c->peer);
	return client_fail(c, "4.4.2", "connection to %s dropped %s", c->peer,
	    what);
}

int
client_flush(struct client *c, int timeout_sec)
{
	time_t deadline = time(NULL) + timeout_of(c, timeout_sec);
	int rc;

	if (c->out.len == 0)
		return 0;
	errno = 0;
	rc = send_bytes(c, c->out.data, c->out.len, deadline);
	buf_reset(&c->out);
	if (rc < 0) {
		if (errno == 0)
			errno = ETIMEDOUT;
		return dropped(c, "while sending");
	}
	return 0;
}

int
client_queue(struct client *c, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2) {
		errno = EINVAL;
		return -1;
	}
	return buf_add(&c->out, line, n) < 0 ? -1 : buf_add(&c->out, "\r\n", 2);
}

/* One reply line (CRLF removed, cut at CLIENT_LINE_MAX). Length, or -1. */
static ssize_t
read_line(struct client *c, char *line, time_t deadline)
{
	size_t n = 0;
	ssize_t got;
	char ch;

	for (;;) {
		if (c->inpos == c->inlen) {
			if ((got = fill(c, deadline)) <= 0) {
				if (got == 0)
					errno = EPIPE;
				return -1;
			}
			c->inpos = 0;
			c->inlen = got;
		}
		ch = c->in[c->inpos++];
		if (ch == '\n')
			break;
		if (n < CLIENT_LINE_MAX)
			line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return n;
}

/* EHLO keywords, one line at a time. */
static void
parse_extension(struct client *c, const char *kw)
{
	const char *arg = kw + strcspn(kw, " =");

	if (strncasecmp(kw, "PIPELINING", 10) == 0)
		c->has_pipelining = 1;
	else if (strncasecmp(kw, "8BITMIME", 8) == 0)
		c->has_8bitmime = 1;
	else if (strncasecmp(kw, "BINARYMIME", 10) == 0)
		c->has_binarymime = 1;
	else if (strncasecmp(kw, "CHUNKING", 8) == 0)
		c->has_chunking = 1;
	else if (strncasecmp(kw, "DSN", 3) == 0 && kw[3] == '\0')
		c->has_dsn = 1;
	else if (strncasecmp(kw, "STARTTLS", 8) == 0)
		c->has_starttls = 1;
	else if (strncasecmp(kw, "ETRN", 4) == 0)
		c->has_etrn = 1;
	else if (strncasecmp(kw, "SMTPUTF8", 8) == 0 && kw[8] == '\0')
		c->has_smtputf8 = 1;
	else if (strncasecmp(kw, "SIZE", 4) == 0 && (kw[4] == ' ' || kw[4] == '\0')) {
		char *end;
		long long n;
		errno = 0;
		n = strtoll(arg, &end, 10);
		c->has_size = 1;
		/* a limit we cannot read is no limit: the server still
		 * answers 552 if the message is too big for it */
		c->max_size = errno == 0 && n > 0 && end != arg ? n : 0;
	}
	else if (strncasecmp(kw, "AUTH", 4) == 0 && (kw[4] == ' ' || kw[4] == '=')) {
		for (; *arg != '\0'; arg++)
			if (strncasecmp(arg, "PLAIN", 5) == 0)
				c->has_auth_plain = 1;
			else if (strncasecmp(arg, "LOGIN", 5) == 0)
				c->has_auth_login = 1;
	}
}

static void
status_of(struct client *c, char class, const char *text)
{
	const char *p = text;
	size_t n = 0;

	if (p[0] == class && (p[0] == '2' || p[0] == '4' || p[0] == '5') &&
	    p[1] == '.') {
		n = 2 + strspn(p + 2, "0123456789");
		if (p[n] == '.' && isdigit((unsigned char)p[n + 1]))
			n += 1 + strspn(p + n + 1, "0123456789");
		else
			n = 0;
	}
	if (n > 0 && n < sizeof c->status && (p[n] == ' ' || p[n] == '\0'))
		snprintf(c->status, sizeof c->status, "%.*s", (int)n, p);
	else
		snprintf(c->status, sizeof c->status, "%c.0.0", class);
}

/* Reads one whole reply. With is_ehlo, the lines after the first are
 * extensions. Code or -1. */
static int
read_reply(struct client *c, int timeout_sec, int is_ehlo)
{
	time_t deadline = time(NULL) + timeout_of(c, timeout_sec);
	char line[CLIENT_LINE_MAX + 1];
	size_t used = 0;
	ssize_t len;
	int nlines;

	for (nlines = 0; nlines < CLIENT_LINES_MAX; nlines++) {
		errno = 0;
		if ((len = read_line(c, line, deadline)) < 0)
			return dropped(c, "while reading a reply from");
		if (len < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
		    (len > 3 && line[3] != ' ' && line[3] != '-'))
			return client_fail(c, "4.4.2", "bad reply from %s: %s",
			    c->peer, line);
		if (nlines == 0) {
			c->code = atoi(line);
			used = snprintf(c->reply, sizeof c->reply, "%s", line);
			status_of(c, line[0], line + (line[3] ? 4 : 3));
		} else {
			if (is_ehlo)
				parse_extension(c, line + 4);
			else if (used + 2 < sizeof c->reply)
				used += snprintf(c->reply + used, sizeof c->reply - used,
				    " %s", line + 4);
		}
		if (line[3] != '-')
			return c->code;
	}
	return client_fail(c, "4.4.2", "reply from %s too long", c->peer);
}

int
client_reply(struct client *c, int timeout_sec)
{
	if (client_flush(c, timeout_sec) < 0)
		return -1;
	return read_reply(c, timeout_sec, 0);
}

static int
connect_fd(struct client *c, const struct sockaddr *sa, socklen_t len,
    const struct sockaddr *bind_sa, socklen_t bind_len)
{
	time_t deadline = time(NULL) + timeout_of(c, CLIENT_T_CONNECT);
	socklen_t elen = sizeof(int);
	int err = 0, rc;

	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return client_fail(c, "4.4.1", "no socket for %s: %s", c->peer,
		    strerror(errno));
	/* we write whole commands and blocks ourselves: Nagle would only
	 * hold the last small piece back until the peer's delayed ACK */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (bind_sa != NULL && bind(c->fd, bind_sa, bind_len) < 0)
		return client_fail(c, "4.4.1", "unable to bind the source address: %s",
		    strerror(errno));
	if (connect(c->fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return client_fail(c, "4.4.1", "connect to %s: %s", c->peer,
			    strerror(errno));
		if ((rc = wait_fd(c->fd, POLLOUT, deadline)) <= 0)
			return client_fail(c, "4.4.1", "connect to %s: %s", c->peer,
			    rc == 0 ? "timed out" : "interrupted");
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err != 0)
			return client_fail(c, "4.4.1", "connect to %s: %s", c->peer,
			    strerror(err));
	}
	return 0;
}

static void
client_init(struct client *c, const char *host, const char *peer,
    int timeout_cap)
{
	struct buf out = c->out;

	memset(c, 0, sizeof *c);
	c->out = out;
	buf_reset(&c->out);
	c->fd = -1;
	c->timeout_cap = timeout_cap;
	snprintf(c->host, sizeof c->host, "%s", host);
	snprintf(c->peer, sizeof c->peer, "%s", peer);
}

int
client_open(struct client *c, const struct sockaddr *sa, socklen_t len,
    const struct sockaddr *bind_sa, socklen_t bind_len, const char *host,
    const char *peer, int timeout_cap)
{
	client_init(c, host, peer, timeout_cap);
	if (connect_fd(c, sa, len, bind_sa, bind_len) < 0)
		return -1;
	if (read_reply(c, CLIENT_T_GREETING, 0) < 0) {
		/* a greeting never came: the host is not answering */
		snprintf(c->status, sizeof c->status, "4.4.1");
		memcpy(c->reply, "4.4.1", 5);
		return -1;
	}
	return c->code;
}

int
client_attach(struct client *c, int fd, const char *host, const char *peer,
    int timeout_cap)
{
	int flags = fcntl(fd, F_GETFL);

	client_init(c, host, peer, timeout_cap);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return client_fail(c, "4.4.2", "unusable connection: %s",
		    strerror(errno));
	c->fd = fd;
	return read_reply(c, CLIENT_T_GREETING, 0);
}

static void
reset_extensions(struct client *c)
{
	c->is_esmtp = c->has_pipelining = c->has_8bitmime = c->has_binarymime = 0;
	c->has_chunking = c->has_dsn = c->has_starttls = c->has_auth_plain = 0;
	c->has_auth_login = c->has_etrn = c->has_size = c->has_smtputf8 = 0;
	c->max_size = 0;
}

int
client_hello(struct client *c, const char *name, int use_helo)
{
	int code = -1;

	reset_extensions(c);
	if (!use_helo) {
		if (client_queue(c, "EHLO %s", name) < 0 ||
		    client_flush(c, CLIENT_T_MAIL) < 0)
			return -1;
		code = read_reply(c, CLIENT_T_MAIL, 1);
		if (code / 100 == 2)
			c->is_esmtp = 1;
		if (code < 0 || code / 100 != 5)
			return code;
		reset_extensions(c);
	}
	if (client_queue(c, "HELO %s", name) < 0)
		return -1;
	return client_reply(c, CLIENT_T_MAIL);
}

/* The TLS objects, with verification when a CA bundle is given. */
static int
tls_setup(struct client *c, const char *ca_file)
{
	if ((c->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return client_fail(c, "4.7.0", "TLS setup failed");
	if (ca_file != NULL && *ca_file != '\0' &&
	    SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1)
		return client_fail(c, "4.7.5", "unable to load CA bundle %s",
		    ca_file);
	if ((c->ssl = SSL_new(c->ssl_ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return client_fail(c, "4.7.0", "TLS setup failed");
	if (c->host[0] != '[')
		SSL_set_tlsext_host_name(c->ssl, c->host);
	if (ca_file == NULL || *ca_file == '\0') {
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	if (c->host[0] != '[' && SSL_set1_host(c->ssl, c->host) != 1)
		return client_fail(c, "4.7.0", "TLS setup failed");
	return 0;
}

int
client_starttls(struct client *c, const char *ca_file)
{
	time_t deadline;
	int code = -1, rc, err;
	long verify;

	if (client_queue(c, "STARTTLS") < 0 ||
	    (code = client_reply(c, CLIENT_T_MAIL)) != 220)
		return code;
	if (c->inpos != c->inlen)	/* bytes sent before TLS: an injection */
		return client_fail(c, "4.7.0", "%s sent data before TLS", c->peer);
	if (tls_setup(c, ca_file) < 0)
		return -1;
	deadline = time(NULL) + timeout_of(c, CLIENT_T_MAIL);
	for (;;) {
		ERR_clear_error();
		if ((rc = SSL_connect(c->ssl)) == 1)
			break;
		err = SSL_get_error(c->ssl, rc);
		if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) &&
		    wait_fd(c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
		    deadline) > 0)
			continue;
		if ((verify = SSL_get_verify_result(c->ssl)) != X509_V_OK)
			return client_fail(c, "4.7.5", "certificate of %s not "
			    "trusted: %s", c->peer,
			    X509_verify_cert_error_string(verify));
		return client_fail(c, "4.7.0", "TLS handshake with %s failed",
		    c->peer);
	}
	c->is_tls = 1;
	return 220;
}

static int
base64(const char *in, size_t len, char *out, size_t cap)
{
	if ((len + 2) / 3 * 4 + 1 > cap)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, len);
	return 0;
}

int
client_auth(struct client *c, const char *user, const char *pass)
{
	char plain[600], enc[820];
	size_t ul = strlen(user), pl = strlen(pass);
	int code = -1;

	if (ul + pl + 2 > sizeof plain)
		return client_fail(c, "5.7.8", "credentials too long");
	if (c->has_auth_plain || !c->has_auth_login) {
		plain[0] = '\0';
		memcpy(plain + 1, user, ul);
		plain[ul + 1] = '\0';
		memcpy(plain + ul + 2, pass, pl);
		if (base64(plain, ul + pl + 2, enc, sizeof enc) < 0 ||
		    client_queue(c, "AUTH PLAIN %s", enc) < 0)
			return -1;
		return client_reply(c, CLIENT_T_MAIL);
	}
	if (client_queue(c, "AUTH LOGIN") < 0 ||
	    (code = client_reply(c, CLIENT_T_MAIL)) != 334)
		return code;
	if (base64(user, ul, enc, sizeof enc) < 0 || client_queue(c, "%s", enc) < 0 ||
	    (code = client_reply(c, CLIENT_T_MAIL)) != 334)
		return code;
	if (base64(pass, pl, enc, sizeof enc) < 0 || client_queue(c, "%s", enc) < 0)
		return -1;
	return client_reply(c, CLIENT_T_MAIL);
}

/* Appends one byte of message text, keeping SMTP's line rules: CRLF line
 * ends only, a leading "." doubled. *state: 0 line start, 1 inside a line,
 * 2 after a CR. */
static int
stuff_byte(struct buf *b, int *state, char ch)
{
	if (*state == 2) {
		*state = 0;
		if (buf_add(b, "\r\n", 2) < 0)
			return -1;
		if (ch == '\n')
			return 0;
	}
	if (ch == '\r') {
		*state = 2;
		return 0;
	}
	if (ch == '\n') {
		*state = 0;
		return buf_add(b, "\r\n", 2);
	}
	if (*state == 0 && ch == '.' && buf_addc(b, '.') < 0)
		return -1;
	*state = 1;
	return buf_addc(b, ch);
}

int
client_data(struct client *c, int fd)
{
	char chunk[65536];
	ssize_t n, i;
	int state = 0;

	while ((n = read(fd, chunk, sizeof chunk)) > 0) {
		for (i = 0; i < n; i++)
			if (stuff_byte(&c->out, &state, chunk[i]) < 0)
				return client_fail(c, "4.3.0", "out of memory");
		/* the last piece leaves with the final dot, in one write */
		if (c->out.len >= sizeof chunk && client_flush(c, CLIENT_T_BLOCK) < 0)
			return -1;
	}
	if (n < 0)
		return client_fail(c, "4.3.0", "unable to read the message: %s",
		    strerror(errno));
	if ((state == 2 && buf_add(&c->out, "\r\n", 2) < 0) ||
	    (state == 1 && buf_add(&c->out, "\r\n", 2) < 0) ||
	    buf_add(&c->out, ".\r\n", 3) < 0)
		return client_fail(c, "4.3.0", "out of memory");
	if (client_flush(c, CLIENT_T_BLOCK) < 0)
		return -1;
	return read_reply(c, CLIENT_T_DOT, 0);
}

int
client_bdat(struct client *c, int fd)
{
	static char chunk[CHUNK_MAX];
	off_t size = lseek(fd, 0, SEEK_END), sent = 0;
	ssize_t n;
	int code = -1;

	if (size < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return client_fail(c, "4.3.0", "unable to read the message");
	do {
		if ((n = read(fd, chunk, sizeof chunk)) < 0)
			return client_fail(c, "4.3.0", "unable to read the message");
		sent += n;
		if (client_queue(c, "BDAT %zd%s", n, sent >= size ? " LAST" : "") < 0 ||
		    client_flush(c, CLIENT_T_BLOCK) < 0)
			return -1;
		if (send_bytes(c, chunk, n, time(NULL) +
		    timeout_of(c, CLIENT_T_BLOCK)) < 0)
			return dropped(c, "while sending to");
		code = read_reply(c, sent >= size ? CLIENT_T_DOT : CLIENT_T_BLOCK, 0);
		if (code != 250)
			return code;
	} while (sent < size && n > 0);
	return code;
}

void
client_close(struct client *c, int say_quit)
{
	struct client saved;

	/* the caller may still want the last reply: QUIT must not clobber it */
	memcpy(saved.status, c->status, sizeof saved.status);
	memcpy(saved.reply, c->reply, sizeof saved.reply);
	saved.code = c->code;
	if (say_quit && c->fd >= 0 && client_queue(c, "QUIT") == 0)
		client_reply(c, 5);
	memcpy(c->status, saved.status, sizeof saved.status);
	memcpy(c->reply, saved.reply, sizeof saved.reply);
	c->code = saved.code;
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ssl_ctx != NULL)
		SSL_CTX_free(c->ssl_ctx);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->ssl_ctx = NULL;
	c->fd = -1;
	buf_free(&c->out);
}

const char *
client_status(const struct client *c)
{
	return c->status;
}
