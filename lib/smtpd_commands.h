#ifndef BH_SMTPD_COMMANDS_H
#define BH_SMTPD_COMMANDS_H
/*
 * smtpd_commands: bh-smtpd's HELO, EHLO, MAIL, RCPT and the small
 * commands (RSET NOOP QUIT HELP VRFY, and the refusal of EXPN and TURN).
 */
struct session;

/* What EHLO offers this session: AUTH, STARTTLS. */
int smtpd_auth_offered(const struct session *s);
int smtpd_tls_offered(const struct session *s);

/* Do we take mail for domain from anyone? 1 authoritative, 2 shared or a
 * connector with relay=yes, 0 no. */
int smtpd_domain_accepted(const char *domain);

/* For the command table (v is the session). */
int smtpd_cmd_ehlo(void *v, char *args);
int smtpd_cmd_helo(void *v, char *args);
int smtpd_cmd_mail(void *v, char *args);
int smtpd_cmd_rcpt(void *v, char *args);
int smtpd_cmd_rset(void *v, char *args);
int smtpd_cmd_noop(void *v, char *args);
int smtpd_cmd_quit(void *v, char *args);
int smtpd_cmd_help(void *v, char *args);
int smtpd_cmd_vrfy(void *v, char *args);
int smtpd_cmd_not_implemented(void *v, char *args);

#endif
