#ifndef BH_SMTPD_SESSION_H
#define BH_SMTPD_SESSION_H
/*
 * smtpd_session: one bh-smtpd session: connection control, replies and
 * the protocol log, the command loop, and the files a session reads.
 */
#include <netinet/in.h>
#include <signal.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "connector.h"
#include "directory.h"
#include "envelope.h"
#include "id.h"
#include "net.h"
#include "smtp.h"
#include "smtpd_header.h"
#include "smtpd_server.h"

enum { LINE_MAX_CMD = 4096 };

struct session {
	struct server *srv;
	struct net *net;
	char peer[INET6_ADDRSTRLEN], rdns[256];
	int has_rdns;
	char helo[256];
	int is_ehlo, is_relay_client;
	char auth_user[256], auth_box[256];
	char tls_desc[160];
	SSL_CTX *tls_ctx;
	int nerrors, nauth_failures, is_closing;
	long long nmessages;
	unsigned long long nbytes;
	/* the mail transaction */
	int has_mail;
	struct smtp_mail_params mail;
	struct envelope env;
	/* the message being received */
	char id[ID_MAX];
	int fd, is_oversize, is_write_failed, has_bdat;
	unsigned long long msg_bytes, content_bytes;
	struct header_scan hdr;
};

/* The directory, connectors and filters a session reads: opened by a
 * process's first session, brought up to date by each later one. */
extern struct directory smtpd_dir;
extern struct connectors smtpd_connectors;
extern struct conf smtpd_filters_cdb;

/* Set by SIGTERM in a session process (smtpd_session_signals). */
extern volatile sig_atomic_t smtpd_session_stopping;

/* A refusal that counts toward max-errors; past it the session ends with
 * 421 (a client looping on errors is not served forever). */
int smtpd_reply_error(struct session *s, int code, const char *ecode,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

int smtpd_reply_smtp_error(struct session *s, const struct smtp_error *err);

/* SIGTERM ends a session process at its next idle point; it stays blocked
 * except while waiting for input. */
void smtpd_session_signals(void);

/* Serves one connection (rfd, wfd) from peer to its end. */
void smtpd_session_run(struct server *srv, int rfd, int wfd, const char *peer);

#endif
