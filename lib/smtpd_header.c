/*
 * smtpd_header: the header facts bh-smtpd keeps while a message streams
 * by (Received: lines against max-hops, Message-ID, Subject).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtpd_header.h"

/* ---- the message header: hops, Message-ID, Subject ---- */

void
smtpd_header_field(struct header_scan *h)
{
	const char *v;
	char *dst = NULL;

	h->line[h->len] = '\0';
	if (strncasecmp(h->line, "Received:", 9) == 0)
		h->nreceived++;
	else if (strncasecmp(h->line, "Message-ID:", 11) == 0 && !h->msgid[0])
		dst = h->msgid;
	else if (strncasecmp(h->line, "Subject:", 8) == 0 && !h->subject[0])
		dst = h->subject;
	if (dst != NULL) {
		v = strchr(h->line, ':') + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		snprintf(dst, sizeof h->msgid, "%s", v);
	}
	h->len = 0;
}

/* Feeds message bytes; stops looking at the first empty line. */
void
smtpd_header_feed(struct header_scan *h, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && !h->is_done; i++) {
		char c = p[i];
		if (h->at_bol) {
			h->at_bol = 0;
			if (c == '\r' || c == '\n') {
				smtpd_header_field(h);
				h->is_done = 1;
				break;
			}
			if (c != ' ' && c != '\t' && h->len > 0)
				smtpd_header_field(h);
		}
		if (c == '\n')
			h->at_bol = 1;
		else if (c != '\r' && h->len + 1 < sizeof h->line)
			h->line[h->len++] = c == '\t' ? ' ' : c;
	}
}
