#ifndef BH_SMTPD_LISTEN_H
#define BH_SMTPD_LISTEN_H
/*
 * smtpd_listen: bh-smtpd's listener and its session processes, and the
 * inetd-style single session.
 */
struct server;

/* The listener's signals: SIGTERM and SIGINT stop, SIGHUP reloads,
 * SIGCHLD wakes it. */
void smtpd_signals_setup(void);

/* Accepts until SIGTERM, then lets the sessions in progress finish. */
void smtpd_serve(struct server *srv);

/* inetd style: one session on stdin/stdout; the peer from the socket,
 * else $TCPREMOTEIP (ucspi-tcp). */
void smtpd_serve_inetd(struct server *srv);

#endif
