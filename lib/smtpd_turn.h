#ifndef BH_SMTPD_TURN_H
#define BH_SMTPD_TURN_H
/*
 * smtpd_turn: bh-smtpd's ETRN (RFC 1985: held and waiting mail moved to
 * spool/remote/new) and ATRN (RFC 2645: the connection turned around).
 */

/* For the command table (v is the session). */
int smtpd_cmd_etrn(void *v, char *args);
int smtpd_cmd_atrn(void *v, char *args);

#endif
