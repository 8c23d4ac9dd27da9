#ifndef BH_NET_H
#define BH_NET_H
/*
 * net: buffered, bounded line I/O for one SMTP session, over a pair of file
 * descriptors (a socket twice, or stdin and stdout) or over an OpenSSL
 * connection on them. Every read waits at most timeout_sec. Output is
 * buffered and flushed when a read would block: replies to pipelined
 * commands go out together and in order (RFC 2920).
 */
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

enum {
	NET_BUF = 32768,
	NET_TOOLONG = -2,	/* line longer than the caller's buffer */
	NET_BARE = -3,		/* line held a bare CR or ended in a bare LF */
};

struct net {
	int rfd, wfd;
	SSL *ssl;		/* NULL: plaintext */
	int timeout_sec;	/* per read; 0 = wait forever */
	int is_eof;		/* EOF, error or deadline seen */
	/* When set: a wait for input ends (as at EOF) once *stop is true.
	 * Waits unblock every signal (ppoll), so a signal the caller keeps
	 * blocked elsewhere, such as SIGTERM, arrives only there. */
	volatile sig_atomic_t *stop;
	long long deadline_ms;	/* monotonic; 0 = none (set per command line) */
	size_t pos, len;	/* unread input is in[pos..len) */
	size_t olen;
	unsigned long long nread, nwritten;
	char in[NET_BUF];
	char out[NET_BUF];
};

void net_init(struct net *n, int rfd, int wfd, int timeout_sec);

/* Reads one line into line[cap] (cap > 1), CRLF removed, NUL-terminated.
 * Returns its length, NET_TOOLONG or NET_BARE (the rest of the line is
 * consumed, so the session stays in sync), or -1 on EOF, error or timeout.
 * Only CRLF ends a line cleanly; a bare LF also ends it (NET_BARE). The
 * whole line must arrive within timeout_sec: a client trickling a byte at
 * a time is cut off like a silent one. */
ssize_t net_line(struct net *n, char *line, size_t cap);

/* Copies exactly len bytes of input to sink in pieces (BDAT). sink may be
 * NULL to discard. 0, or -1 on EOF, timeout, or a sink that failed (the
 * input is still read through in that case; -1 only on EOF/timeout). */
int net_read_exact(struct net *n, unsigned long long len,
    int (*sink)(void *arg, const char *p, size_t len), void *arg);

/* Message data after DATA: reads until the line "." (CRLF "." CRLF, exactly),
 * undoes dot-stuffing and passes the bytes (CRLF line ends kept, the final
 * "." line not) to sink in pieces of up to NET_BUF bytes. */
struct net_data {
	size_t max_line;	/* longest line, CRLF included; 0 = no limit */
	unsigned long long nbytes;	/* bytes passed to sink */
	int has_bare;		/* a bare CR or LF was seen */
	int has_long_line;	/* a line over max_line */
	int sink_failed;	/* sink returned -1 once; later data dropped */
};
/* 0 when the end was found (check the flags), -1 on EOF or timeout. */
int net_data(struct net *n, struct net_data *d,
    int (*sink)(void *arg, const char *p, size_t len), void *arg);

/* Bytes of input already buffered (pipelined commands waiting). */
size_t net_pending(const struct net *n);

/* Drops buffered input: plaintext sent with STARTTLS must not be taken as
 * if it arrived under TLS. */
void net_discard(struct net *n);

/* Buffers output; flushes when the buffer fills. 0 or -1. */
int net_write(struct net *n, const void *p, size_t len);
int net_flush(struct net *n);

/* Runs the TLS server handshake with ssl (set up on rfd/wfd by the caller
 * or here) and switches the session to it. 0, or -1 (ssl freed). */
int net_tls_accept(struct net *n, SSL *ssl);

/* Closes the TLS layer politely (not the descriptors). */
void net_tls_end(struct net *n);

/* Copies bytes both ways between the session (its buffered input first)
 * and fd, until fd's side closes (0) or the session's does (fd gets EOF
 * for writing, 0), or nothing moves for timeout_sec or an error (-1).
 * For a program that takes the connection over (ATRN's role reversal),
 * whatever layer, TLS or not, the session runs on. */
int net_relay(struct net *n, int fd, int timeout_sec);

/* Network endpoints. */

/* A listening socket (non-blocking, close-on-exec) for "IP:PORT" or
 * "[IPv6]:PORT" ("0.0.0.0:PORT" = every address; an IPv6 socket is IPv6
 * only, so "[::]:25" and "0.0.0.0:25" can both be bound; a specific address
 * may be bound beside a wildcard one on the same port, and then gets the
 * connections made to it). fd, or -1. */
int net_listen(const char *addr);

/* The numeric text of an address; IPv4-mapped IPv6 is shown as IPv4. */
void net_peer_text(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Does ip (text) lie in entry, "NET/BITS" or "IP" (IPv4 or IPv6)? 1 or 0. */
int net_cidr_match(const char *entry, const char *ip);

/* The host name of ip by its reverse lookup, confirmed by a forward lookup
 * that leads back to ip (the resolver of the system). 0, or -1 when there
 * is none or it does not confirm. */
int net_confirmed_name(const char *ip, char *out, size_t cap);

#endif
