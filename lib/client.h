#ifndef BH_CLIENT_H
#define BH_CLIENT_H
/*
 * client: the SMTP client side of one connection (used by bh-remote).
 *
 * Every read and write has a deadline: the RFC 5321 4.5.3.2 timeouts
 * below, each capped by settings "timeout" when that is set (tests use a
 * few seconds). Waits use ppoll with signals unblocked, so SIGTERM ends a
 * wait at once (spool_stop_requested). A reply is read line by line, each
 * line at most CLIENT_LINE_MAX bytes (the rest is drained), at most
 * CLIENT_LINES_MAX lines.
 *
 * Functions returning int give the reply code (200..599), or -1 when the
 * connection failed (refused, dropped, timed out, TLS error): then code is
 * 0 and reply/status hold our own explanation ("4.4.1 ...", "4.4.2 ...").
 */
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "buf.h"

enum {
	CLIENT_T_CONNECT = 60,
	CLIENT_T_GREETING = 300,
	CLIENT_T_MAIL = 300,
	CLIENT_T_RCPT = 300,
	CLIENT_T_DATA = 120,
	CLIENT_T_BLOCK = 180,
	CLIENT_T_DOT = 600,
	CLIENT_LINE_MAX = 1000,
	CLIENT_LINES_MAX = 200,
	CLIENT_REPLY_MAX = 1024,
};

struct client {
	int fd;
	SSL_CTX *ssl_ctx;
	SSL *ssl;
	char in[8192];
	size_t inpos, inlen;
	struct buf out;		/* commands not yet sent (PIPELINING) */
	int timeout_cap;	/* seconds, 0 = none */
	char peer[128];		/* "[IP]:PORT" */
	char host[256];		/* the server's name as we looked it up */
	/* what EHLO announced */
	int is_esmtp, is_tls, has_pipelining, has_8bitmime, has_binarymime,
	    has_chunking, has_dsn, has_starttls, has_auth_plain, has_auth_login,
	    has_etrn, has_size, has_smtputf8;
	long long max_size;	/* SIZE; 0 = no limit given */
	/* the last reply */
	int code;
	char status[16];	/* enhanced status code, e.g. "5.1.1" */
	char reply[CLIENT_REPLY_MAX];	/* "550 5.1.1 <x@y>: unknown" */
};

/* Connects to sa (binding bind_sa first when not NULL) and reads the
 * greeting. Returns the greeting's code, or -1 (4.4.1 refused or no
 * answer). host and peer name the server in replies and logs. */
int client_open(struct client *c, const struct sockaddr *sa, socklen_t len,
    const struct sockaddr *bind_sa, socklen_t bind_len, const char *host,
    const char *peer, int timeout_cap);

/* Takes over a connection that is already open (fd, read and write: the
 * role reversal of ATRN, RFC 2645) and reads the greeting. Code or -1. */
int client_attach(struct client *c, int fd, const char *host, const char *peer,
    int timeout_cap);

/* EHLO name (HELO when use_helo, or when EHLO is refused with 5xx: then
 * the session is plain SMTP). Reply code or -1. */
int client_hello(struct client *c, const char *name, int use_helo);

/* STARTTLS and the TLS handshake. Without ca_file no certificate check
 * (opportunistic TLS); with one (a PEM bundle) the server's chain must
 * verify against it, and its name must match the host we looked up
 * (unless that is an [IP] literal), else -1 with 4.7.5. The caller says
 * EHLO again afterwards. Reply code (220 = now TLS; any other: still
 * plain), or -1 (the connection is unusable). */
int client_starttls(struct client *c, const char *ca_file);

/* AUTH PLAIN (preferred) or LOGIN. 235 on success, else the code or -1. */
int client_auth(struct client *c, const char *user, const char *pass);

/* Queues a command line (CRLF added); sent by the next client_flush or
 * client_reply. 0, or -1 ENOMEM. */
int client_queue(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends what is queued. 0, or -1 (connection failed). */
int client_flush(struct client *c, int timeout_sec);

/* Sends what is queued, then reads one reply. Code or -1. */
int client_reply(struct client *c, int timeout_sec);

/* Sends the message from fd after a 354: dot-stuffed, every line ending
 * in CRLF (a bare CR or LF becomes CRLF), then ".". Reads the final reply.
 * Code or -1. */
int client_data(struct client *c, int fd);

/* Sends the message from fd with BDAT chunks, exactly as stored, the last
 * one with LAST. The final reply's code, or -1. */
int client_bdat(struct client *c, int fd);

/* QUIT (best effort) and closes; the struct may be opened again. */
void client_close(struct client *c, int say_quit);

/* The enhanced code of the last reply or failure as given, or class.0.0. */
const char *client_status(const struct client *c);

#endif
