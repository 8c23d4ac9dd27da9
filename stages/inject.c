/*
 * bh-inject: local submission (the sendmail interface of bin/sendmail).
 *
 *	bh-inject [-t] [-i] [-f SENDER] [-F FULLNAME] [RCPT...] < message
 *
 * reads   the message on stdin (LF or CRLF line ends; a line "." alone ends
 *         it unless -i/-oi); cdb/settings.cdb (hostname, default-domain,
 *         max-size)
 * writes  spool/msg/ID (CRLF line ends, a Received line first, Message-ID,
 *         Date and From added when missing, Bcc removed), then the envelope
 *         spool/incoming/new/ID; both fsync'ed before exit 0
 * exit    0 queued; 100 bad usage, no recipient, message too big;
 *         111 spool trouble (nothing queued)
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "conf.h"
#include "content.h"
#include "envelope.h"
#include "id.h"
#include "log.h"
#include "priv.h"
#include "spool.h"
#include "track.h"

struct inject {
	int from_headers;	/* -t */
	int dot_ends;		/* no -i: a lone "." line ends the message */
	const char *sender;	/* -f */
	const char *fullname;	/* -F */
	char user[64];
	struct envelope env;
	struct buf head, body;	/* header section and body, CRLF ends */
	int has_msgid, has_date, has_from;
	char msgid[512], subject[512];
};

static void
usage(void)
{
	die(EXIT_PERM, 0, "usage: bh-inject [-t] [-i] [-f SENDER] [-F NAME] [RCPT...]");
}

/* Appends an address, completing an unqualified one with default-domain. */
static void
add_rcpt(struct inject *in, const char *addr)
{
	char domain[256], full[1024];

	if (*addr == '\0')
		return;
	if (strchr(addr, '@') == NULL) {
		conf_setting("default-domain", "localhost", domain, sizeof domain);
		snprintf(full, sizeof full, "%s@%s", addr, domain);
		addr = full;
	}
	if (strlen(addr) > 320 || strpbrk(addr, " \t\r\n<>") != NULL)
		die(EXIT_PERM, 0, "bad recipient address: %s", addr);
	if (envelope_add_rcpt(&in->env, addr) == NULL ||
	    rcpt_set(&in->env.rcpt[in->env.nrcpt - 1], "state", "new") < 0)
		die(EXIT_TEMP, errno, "out of memory");
}

/* Addresses from a header value: "Name <a@b>, c@d, "x, y" <e@f>". */
static void
add_header_rcpts(struct inject *in, const char *value)
{
	char addr[1024];
	const char *p = value;

	while (*p != '\0') {
		size_t n = 0;
		int quoted = 0, angle = 0;
		const char *start = NULL;

		for (; *p != '\0' && (quoted || *p != ','); p++) {
			if (*p == '"')
				quoted = !quoted;
			else if (!quoted && *p == '<') {
				angle = 1;
				start = p + 1;
			} else if (!quoted && *p == '>' && angle && start != NULL) {
				n = p - start;
				angle = 2;
			}
		}
		if (angle == 2 && n < sizeof addr) {
			memcpy(addr, start, n);
			addr[n] = '\0';
		} else if (angle != 2) {
			const char *s = p;
			while (s > value && s[-1] != ',')
				s--;
			while (isspace((unsigned char)*s))
				s++;
			n = p - s;
			while (n > 0 && isspace((unsigned char)s[n - 1]))
				n--;
			if (n >= sizeof addr)
				n = 0;
			memcpy(addr, s, n);
			addr[n] = '\0';
		} else
			addr[0] = '\0';
		if (strchr(addr, '@') != NULL)
			add_rcpt(in, addr);
		if (*p == ',')
			p++;
	}
}

static int
header_is(const char *line, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Keeps a copy of a header value (unfolded) for the envelope. */
static void
keep_value(char *dst, size_t cap, const char *field)
{
	const char *v = strchr(field, ':') + 1;
	size_t n = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v != '\0' && n + 1 < cap; v++)
		if (*v != '\r' && *v != '\n')
			dst[n++] = *v == '\t' ? ' ' : *v;
	dst[n] = '\0';
}

/* One whole header field (with continuation lines, CRLF ends). */
static void
header_field(struct inject *in, const char *field, size_t len)
{
	if (header_is(field, "Message-ID")) {
		in->has_msgid = 1;
		keep_value(in->msgid, sizeof in->msgid, field);
	} else if (header_is(field, "Date"))
		in->has_date = 1;
	else if (header_is(field, "From"))
		in->has_from = 1;
	else if (header_is(field, "Subject"))
		keep_value(in->subject, sizeof in->subject, field);
	if (in->from_headers && (header_is(field, "To") ||
	    header_is(field, "Cc") || header_is(field, "Bcc"))) {
		char value[8192];
		keep_value(value, sizeof value, field);
		add_header_rcpts(in, value);
	}
	if (header_is(field, "Bcc"))
		return;	/* never shown to the other recipients */
	if (buf_add(&in->head, field, len) < 0)
		die(EXIT_TEMP, errno, "out of memory");
}

/* Reads stdin into head and body with CRLF line ends. */
static void
read_message(struct inject *in, long long max_bytes)
{
	struct buf field = BUF_INIT;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int in_head = 1;
	long long total = 0;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		total += n;
		if (total > max_bytes)
			die(EXIT_PERM, 0, "message larger than %lld bytes", max_bytes);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (in->dot_ends && strcmp(line, ".") == 0)
			break;
		if (in_head && (n == 0 || (line[0] != ' ' && line[0] != '\t' &&
		    strchr(line, ':') == NULL))) {
			/* end of the header section (or a body with no blank line) */
			if (field.len > 0)
				header_field(in, field.data, field.len);
			in_head = 0;
			if (n == 0)
				continue;
		}
		if (in_head && line[0] != ' ' && line[0] != '\t' && field.len > 0) {
			header_field(in, field.data, field.len);
			buf_reset(&field);
		}
		if (buf_add(in_head ? &field : &in->body, line, n) < 0 ||
		    buf_add(in_head ? &field : &in->body, "\r\n", 2) < 0)
			die(EXIT_TEMP, errno, "out of memory");
	}
	if (in_head && field.len > 0)
		header_field(in, field.data, field.len);
	free(line);
	buf_free(&field);
}

/* Received, then the headers we add, the original header and the body. */
static void
compose(struct inject *in, const char *id, struct buf *out)
{
	const char *host = conf_hostname();
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_printf(out, "Received: (bridgehead %d invoked by uid %d);\r\n\t%s\r\n",
	    (int)getpid(), (int)getuid(), date);
	if (!in->has_msgid) {
		snprintf(in->msgid, sizeof in->msgid, "<%s@%s>", id, host);
		buf_printf(out, "Message-ID: %s\r\n", in->msgid);
	}
	if (!in->has_date)
		buf_printf(out, "Date: %s\r\n", date);
	if (!in->has_from && in->fullname != NULL)
		buf_printf(out, "From: \"%s\" <%s>\r\n", in->fullname, in->sender);
	else if (!in->has_from)
		buf_printf(out, "From: %s\r\n", in->sender);
	buf_add(out, in->head.data, in->head.len);
	buf_add(out, "\r\n", 2);
	if (buf_add(out, in->body.data, in->body.len) < 0)
		die(EXIT_TEMP, errno, "out of memory");
}

static void
parse_args(struct inject *in, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "-t") == 0)
			in->from_headers = 1;
		else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
			in->dot_ends = 0;
		else if (strncmp(a, "-f", 2) == 0 || strncmp(a, "-F", 2) == 0) {
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (v == NULL)
				usage();
			if (a[1] == 'f')
				in->sender = v;
			else
				in->fullname = v;
		} else if (strncmp(a, "-o", 2) == 0 || strcmp(a, "-U") == 0)
			; /* other sendmail options: accepted, without effect */
		else
			usage();
	}
	for (; i < argc; i++)
		add_rcpt(in, argv[i]);
}

static char sender_buf[512];

static void
default_sender(struct inject *in)
{
	struct passwd *pw = getpwuid(getuid());

	snprintf(in->user, sizeof in->user, "%s", pw ? pw->pw_name : "nobody");
	if (in->sender == NULL) {
		snprintf(sender_buf, sizeof sender_buf, "%s@%s", in->user,
		    conf_hostname());
		in->sender = sender_buf;
	}
	if (strcmp(in->sender, "<>") == 0)
		in->sender = "";
}

static void
queue_message(struct inject *in)
{
	struct buf msg = BUF_INIT, env = BUF_INIT;
	struct spool incoming;
	char id[ID_MAX], num[32];
	int fd;

	id_new(id, sizeof id);
	compose(in, id, &msg);
	if (spool_open(&incoming, "incoming") < 0)
		die(EXIT_TEMP, errno, "unable to open spool/incoming");
	if ((fd = content_create(id)) < 0)
		die(EXIT_TEMP, errno, "unable to create spool/msg/%s", id);
	if (write_all(fd, msg.data, msg.len) < 0 || content_commit(fd) < 0) {
		content_unlink(id);
		die(EXIT_TEMP, errno, "unable to write spool/msg/%s", id);
	}
	snprintf(num, sizeof num, "%lld", (long long)time(NULL));
	envelope_set_sender(&in->env, in->sender);
	envelope_set(&in->env, "arrived", num);
	snprintf(num, sizeof num, "%zu", msg.len);
	envelope_set(&in->env, "size", num);
	envelope_set(&in->env, "msgid", in->msgid);
	if (in->subject[0] != '\0')
		envelope_set(&in->env, "subject", in->subject);
	envelope_set(&in->env, "submitter", in->user);
	envelope_set(&in->env, "server", "inject");
	if (envelope_format(&in->env, &env) < 0 ||
	    spool_handover(&incoming, id, env.data, env.len) < 0) {
		content_unlink(id);
		die(EXIT_TEMP, errno, "unable to queue %s", id);
	}
	track("received", id, &in->env, NULL, "queued by bh-inject");
	buf_free(&msg);
	buf_free(&env);
}

int
main(int argc, char **argv)
{
	static struct inject in = { .dot_ends = 1, .env = ENVELOPE_INIT };

	log_init("inject");
	parse_args(&in, argc, argv);
	default_sender(&in);	/* the invoking user, before any drop */
	priv_drop();
	read_message(&in, conf_setting_size("max-inject-size", 64LL << 20));
	if (in.env.nrcpt == 0)
		die(EXIT_PERM, 0, "no recipients");
	queue_message(&in);
	envelope_free(&in.env);
	return EXIT_DONE;
}
