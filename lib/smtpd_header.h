#ifndef BH_SMTPD_HEADER_H
#define BH_SMTPD_HEADER_H
/*
 * smtpd_header: the header facts bh-smtpd keeps while a message streams
 * by (Received: lines against max-hops, Message-ID, Subject).
 */
#include <stddef.h>

/* The header facts we keep while the message streams by. */
struct header_scan {
	int is_done, at_bol, nreceived;
	size_t len;
	char line[1024];
	char msgid[256], subject[256];
};

/* Feeds message bytes; stops looking at the first empty line. A scan
 * starts zeroed with at_bol set. */
void smtpd_header_feed(struct header_scan *h, const char *p, size_t len);

/* Takes in the field held in h->line (len > 0): for a message that ends
 * within its header. */
void smtpd_header_field(struct header_scan *h);

#endif
