/*
 * bh-smtpd: an SMTP virtual server (RFC 5321 with PIPELINING, SIZE, DSN,
 * 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8, STARTTLS, AUTH,
 * ENHANCEDSTATUSCODES, ETRN, ATRN).
 *
 * usage   bh-smtpd [-s SERVER]     listen on the server's listen= addresses;
 *                                  session processes serve the connections
 *         bh-smtpd [-s SERVER] -i  one session on stdin/stdout (inetd style;
 *                                  the peer is $TCPREMOTEIP when not a socket)
 * reads   the SMTP session; spool/remote/{hold,retry}/ (ETRN, ATRN)
 * writes  spool/msg/ID (the message with our Received: line first) and
 *         spool/incoming/new/ID (its envelope), both fsync'ed before the 250;
 *         spool/remote/new/ (ETRN moves); log/track (received)
 * runs    protocol hooks (hooks=); bh-remote --turn after ATRN
 * config  cdb/servers.cdb "server:NAME" (default "default"), domains.cdb,
 *         directory.cdb, connectors.cdb, filters.cdb, settings.cdb
 *         (hostname, max-hops, postmaster, unresolved-host, log-level)
 * exit    0 after SIGTERM once every session ended; 100 bad usage or no such
 *         server; 111 cannot listen
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include "log.h"
#include "smtp.h"
#include "smtpd_auth.h"
#include "smtpd_commands.h"
#include "smtpd_listen.h"
#include "smtpd_message.h"
#include "smtpd_server.h"
#include "smtpd_turn.h"

/* What a session serves: each command is in the module named by its
 * header above. */
static const struct smtp_command commands[] = {
	{ "EHLO", smtpd_cmd_ehlo }, { "HELO", smtpd_cmd_helo },
	{ "MAIL", smtpd_cmd_mail }, { "RCPT", smtpd_cmd_rcpt },
	{ "DATA", smtpd_cmd_data }, { "BDAT", smtpd_cmd_bdat },
	{ "RSET", smtpd_cmd_rset }, { "NOOP", smtpd_cmd_noop },
	{ "QUIT", smtpd_cmd_quit }, { "HELP", smtpd_cmd_help },
	{ "VRFY", smtpd_cmd_vrfy }, { "STARTTLS", smtpd_cmd_starttls },
	{ "AUTH", smtpd_cmd_auth }, { "ETRN", smtpd_cmd_etrn },
	/* EXPN gives away lists, TURN hands mail to whoever asks */
	{ "ATRN", smtpd_cmd_atrn },
	{ "EXPN", smtpd_cmd_not_implemented },
	{ "TURN", smtpd_cmd_not_implemented },
	{ NULL, NULL }
};

int
main(int argc, char **argv)
{
	static struct server srv;
	const char *name = "default";
	int opt, is_inetd = 0, rc;

	log_init("smtpd");
	while ((opt = getopt(argc, argv, "is:")) != -1) {
		if (opt == 'i')
			is_inetd = 1;
		else if (opt == 's')
			name = optarg;
		else
			die(EXIT_PERM, 0, "usage: bh-smtpd [-s SERVER] [-i]");
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* a file size limit is a write error */
	if (smtpd_server_open() < 0 ||
	    (rc = smtpd_server_load(&srv, name)) < 0)
		die(EXIT_TEMP, errno, "unable to read servers.cdb");
	if (rc == 0 && !is_inetd)
		die(EXIT_PERM, 0, "no server %s in servers.cdb", name);
	srv.commands = commands;
	if (is_inetd)
		smtpd_serve_inetd(&srv);
	else {
		smtpd_signals_setup();
		smtpd_serve(&srv);
	}
	return EXIT_DONE;
}
