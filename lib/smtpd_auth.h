#ifndef BH_SMTPD_AUTH_H
#define BH_SMTPD_AUTH_H
/*
 * smtpd_auth: bh-smtpd's STARTTLS (RFC 3207) and AUTH PLAIN and LOGIN
 * (RFC 4954) against the directory's mailbox passwords.
 */

/* For the command table (v is the session). */
int smtpd_cmd_starttls(void *v, char *args);
int smtpd_cmd_auth(void *v, char *args);

#endif
