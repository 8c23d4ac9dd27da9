#ifndef BH_PRIV_H
#define BH_PRIV_H
/*
 * priv: least privilege. With `settings user NAME`, a program started as
 * root becomes NAME (its groups, gid and uid, for good) before it touches
 * the spool: the queue stages at start, bh-smtpd once its listening sockets
 * are bound, bh-inject before it queues. The root's spool/, log/ and
 * mailroot/ must then belong to NAME (chown -R NAME ROOT/spool ROOT/log
 * ROOT/mailroot); bh-check says when they do not.
 */

/* Drops to settings user when running as root and it is set; dies 111
 * (never goes on as root) when the account is missing or a call fails. */
void priv_drop(void);

/* The configured user name into buf: 1 set, 0 not set. */
int priv_user(char *buf, unsigned cap);

#endif
