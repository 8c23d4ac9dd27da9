#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "dsncode.h"

/*
 * The codes of the Exchange 2000 SMTP book's NDR table, explained for the
 * person who sent the message. Where the book gives a code a meaning of its
 * own (5.1.6, 5.2.1, 5.3.3, 5.4.8), the explanation follows the book. The
 * rows with an 'x' are the fallbacks for codes the table lacks.
 */
static const struct dsn_code codes[] = {
	{ "2.0.0", "The message was delivered.", "Nothing." },
	{ "4.3.1", "The receiving server ran short of memory or disk space "
	    "and could not store the message for now.",
	    "Nothing: delivery is retried. If it keeps happening, tell the "
	    "administrator of that server that it is out of resources." },
	{ "4.3.2", "The server holding the message is not sending it on: "
	    "its queue for this destination was frozen by an administrator.",
	    "Wait; the message goes out once the queue is released. Ask the "
	    "administrator if the delay matters." },
	{ "4.4.1", "The destination server did not answer: the connection "
	    "timed out or was refused.",
	    "Nothing for now: delivery is retried. If it lasts, the "
	    "destination may be down or a network between us is broken." },
	{ "4.4.2", "The connection to the destination server was dropped "
	    "before the message was accepted.",
	    "Nothing for now: delivery is retried. If it lasts, ask the "
	    "administrators to check the network between the servers." },
	{ "4.4.6", "The message passed through too many servers; a routing "
	    "loop is likely.",
	    "Ask the administrators to look for mail servers or connectors "
	    "that send this domain back and forth." },
	{ "4.4.7", "The message waited in the queue longer than allowed, "
	    "because the destination could not be reached all that time.",
	    "Check the address, then send again later. If it keeps "
	    "happening, the destination server is probably down." },
	{ "5.0.0", "A permanent error without a more exact code, often "
	    "because no route leads to the recipient's domain.",
	    "Check the address. If it is right, ask the administrator to "
	    "check the connectors and DNS for that domain." },
	{ "5.1.0", "The address could not be resolved: the recipient "
	    "entry in the directory is missing something or is wrong.",
	    "Check the address; if it is right, ask the administrator to "
	    "check that recipient in the directory." },
	{ "5.1.1", "The recipient's mailbox does not exist at the "
	    "destination.",
	    "Check the spelling of the address, or ask the recipient for "
	    "the right one, and send again." },
	{ "5.1.2", "The recipient's domain does not exist.",
	    "Check the part of the address after the '@'." },
	{ "5.1.3", "The recipient's address is not a valid address.",
	    "Correct the address (no spaces, one '@', a full domain) and "
	    "send again." },
	{ "5.1.4", "More than one recipient has this address, so the "
	    "server cannot tell whom it is for.",
	    "Ask the administrator to remove the duplicate address from "
	    "the directory." },
	{ "5.1.6", "The recipient's mailbox has moved or no longer has a "
	    "home on this system.",
	    "Ask the recipient for a current address, or ask the "
	    "administrator to update the recipient's entry." },
	{ "5.1.7", "Your own address, the sender address, is missing or "
	    "not valid, so the message was refused.",
	    "Check the address your mail program sends from." },
	{ "5.1.10", "The recipient's domain accepts no mail (it publishes "
	    "a null MX).",
	    "Check the domain of the address; it does not receive mail." },
	{ "5.2.1", "The recipient's mailbox is disabled and does not "
	    "accept messages now.",
	    "Reach the recipient another way, or ask their administrator." },
	{ "5.2.2", "The recipient's mailbox is full.",
	    "Tell the recipient another way, or send again after they make "
	    "room." },
	{ "5.2.3", "The message is larger than the recipient may receive.",
	    "Send a smaller message: leave out or compress attachments." },
	{ "5.3.3", "The receiving system lacks a feature the message needs, "
	    "or has no room to store it.",
	    "Send again later; if it keeps failing, tell the recipient's "
	    "administrator." },
	{ "5.3.4", "The message is larger than the server accepts.",
	    "Send a smaller message: leave out or compress attachments." },
	{ "5.3.5", "The mail system is configured to send this message back "
	    "to itself (for example a smart host that points to this "
	    "server).",
	    "Tell the administrator: the routing configuration loops." },
	{ "5.4.0", "The destination could not be found: a DNS lookup "
	    "failed for good, or the smart host is not valid.",
	    "Check the domain of the address; if it is right, ask the "
	    "administrator to check DNS and the smart host setting." },
	{ "5.4.4", "No route leads to the recipient's domain.",
	    "Check the domain of the address; if it is right, ask the "
	    "administrator to add a connector or DNS record for it." },
	{ "5.4.6", "The message went round in a loop (too many hops, or "
	    "addresses that forward to each other).",
	    "Ask the administrators to look for forwarding rules or "
	    "contacts that point back at each other." },
	{ "5.4.8", "The server takes the domain for its own name: a "
	    "recipient policy domain equals a server's full host name, so "
	    "the message loops.",
	    "Tell the administrator: a recipient policy must not use a "
	    "server's fully qualified name." },
	{ "5.5.0", "The servers failed to understand each other: an SMTP "
	    "protocol error.",
	    "Send again; if it keeps failing, tell the administrators." },
	{ "5.5.2", "The receiving server did not recognize a command it "
	    "was sent.",
	    "Tell the administrators: the servers do not speak the same "
	    "SMTP extensions." },
	{ "5.5.3", "The message had more recipients than the server "
	    "allows.",
	    "Send it again to fewer recipients at a time, or use a "
	    "distribution list." },
	{ "5.7.1", "Delivery was not allowed: the recipient does not "
	    "accept your mail, or the server does not relay for you.",
	    "Ask the recipient or their administrator to allow your "
	    "address; relaying needs you to authenticate first." },
	{ "5.1.x", "The address of the recipient is wrong.",
	    "Check the address and send again." },
	{ "5.2.x", "The recipient's mailbox cannot take the message.",
	    "Reach the recipient another way." },
	{ "5.3.x", "The receiving mail system cannot take the message.",
	    "Tell the recipient's administrator." },
	{ "5.4.x", "The network or routing to the destination failed.",
	    "Check the domain of the address; tell the administrator." },
	{ "5.5.x", "The mail servers had a protocol problem.",
	    "Tell the administrators." },
	{ "5.6.x", "The message content could not be handled.",
	    "Send it in another form (plain text, fewer attachments)." },
	{ "5.7.x", "A security or policy rule refused the message.",
	    "Ask the recipient's administrator why." },
	{ "4.x.x", "A temporary problem delays delivery.",
	    "Nothing: delivery is retried automatically." },
	{ "5.x.x", "The message could not be delivered.",
	    "Check the address; if it is right, tell the administrator." },
	{ "2.x.x", "The message reached its destination.", "Nothing." },
};

int
dsn_status_valid(const char *s)
{
	size_t n, part;

	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	s += 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; isdigit((unsigned char)s[n]); n++)
			;
		if (n == 0 || n > 3 || s[n] != (part == 0 ? '.' : '\0'))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* Row named by pattern: "5.1.x" is class + subject, "5.x.x" class only. */
static const struct dsn_code *
code_row(const char *pattern)
{
	size_t i;

	for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (strcmp(codes[i].code, pattern) == 0)
			return &codes[i];
	return NULL;
}

const struct dsn_code *
dsn_code_find(const char *status)
{
	const struct dsn_code *c;
	char pattern[16];
	const char *dot;

	if (status == NULL || !dsn_status_valid(status))
		return code_row("5.x.x");
	if ((c = code_row(status)) != NULL)
		return c;
	dot = strchr(status + 2, '.');
	snprintf(pattern, sizeof pattern, "%.*s.x", (int)(dot - status), status);
	if ((c = code_row(pattern)) != NULL)
		return c;
	snprintf(pattern, sizeof pattern, "%c.x.x", status[0]);
	return code_row(pattern);
}
