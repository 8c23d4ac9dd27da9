#ifndef BH_SMTPD_MESSAGE_H
#define BH_SMTPD_MESSAGE_H
/*
 * smtpd_message: bh-smtpd's mail transaction and message: DATA and BDAT,
 * the content and its envelope made durable, the hand-over to
 * spool/incoming before the 250.
 */
struct session;

/* Ends the mail transaction: a message being received is removed. */
void smtpd_transaction_reset(struct session *s);

/* The most a message may hold now: max-size, and what is left of
 * max-session-size. 0 = no limit. */
unsigned long long smtpd_message_limit(const struct session *s);

/* DATA and BDAT, for the command table (v is the session). */
int smtpd_cmd_data(void *v, char *args);
int smtpd_cmd_bdat(void *v, char *args);

#endif
