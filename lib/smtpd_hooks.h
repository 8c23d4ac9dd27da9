#ifndef BH_SMTPD_HOOKS_H
#define BH_SMTPD_HOOKS_H
/*
 * smtpd_hooks: bh-smtpd's protocol hooks (hooks=): the facts each one
 * sees, and its answer turned into a reply.
 */
struct session;

/* Runs the server's hooks for an event in order (stdin_fd: the message,
 * or -1). 0 every hook accepted; -1 one refused and the reply was sent. */
int smtpd_hooks_run(struct session *s, const char *event, const char *rcpt,
    int stdin_fd);

#endif
