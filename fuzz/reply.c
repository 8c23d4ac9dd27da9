/*
 * fuzz-reply: what a remote SMTP server answers bh-remote (lib/client): the
 * greeting, the EHLO reply with its extensions (SIZE, AUTH, ...), then the
 * replies to MAIL, RCPT and DATA, all read from the input as if a hostile
 * or broken server sent it. The input is written into one end of a socket
 * pair and that end closed, so the reader meets EOF, never a wait. Checks:
 * every result is a three-digit code or -1 (a failure with our own 4.x.x
 * explanation; a server's "979" or "099" comes back as is, and bh-remote
 * takes any class but 2 and 5 as temporary), the kept reply and status fit their buffers, the reply is
 * one line (a bare CR from the server may stay in it: every writer of a
 * reason, envelope, log and report, replaces control bytes), and the
 * status of a failure is a 4 or 5 code.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "dsn.h"
#include "fuzz.h"

static struct client c;

static void
result_check(int rc)
{
	size_t i;

	FUZZ_CHECK(rc == -1 || (rc >= 0 && rc <= 999));
	FUZZ_CHECK(strlen(c.reply) < sizeof c.reply);
	FUZZ_CHECK(strlen(c.status) < sizeof c.status);
	for (i = 0; c.reply[i] != '\0'; i++)
		FUZZ_CHECK(c.reply[i] != '\n');
	if (rc == -1)
		FUZZ_CHECK(client_status(&c)[0] == '4' ||
		    client_status(&c)[0] == '5');
	/* c.max_size may be negative ("SIZE -8"): bh-remote only uses it
	 * when above 0 */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], rc, sndbuf = 1 << 20;

	if (size > 200000 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	memset(&c, 0, sizeof c);
	rc = client_attach(&c, sv[0], "mx.example.test", "[127.0.0.1]:25", 1);
	result_check(rc);
	if (rc >= 200 && rc < 300) {
		result_check(rc = client_hello(&c, "bh.example", 0));
		if (rc >= 200 && rc < 300) {
			client_queue(&c, "MAIL FROM:<a@example.com>");
			client_queue(&c, "RCPT TO:<b@example.net>");
			result_check(client_reply(&c, 1));
			result_check(client_reply(&c, 1));
			client_queue(&c, "DATA");
			result_check(client_reply(&c, 1));
		}
	}
	client_close(&c, 0);
	close(sv[1]);
	return 0;
}
