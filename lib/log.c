#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loglevel.h"

static const char *log_stage = "bh", *log_category = "bh";

void
log_init(const char *stage)
{
	log_stage = stage;
	log_category = strcmp(stage, "smtpd") == 0 ? "smtp" : stage;
}

static int
log_wanted(const char *event, int level)
{
	if (strcmp(event, "fatal") == 0 || strcmp(event, "error") == 0 ||
	    strcmp(event, "warning") == 0)
		return 1;
	return loglevel_on(log_category, level);
}

static void
log_vline(const char *event, const char *tail, const char *fmt, va_list ap)
{
	char line[4096];
	int n, m;

	n = snprintf(line, sizeof line, "stage=%s event=%s ", log_stage, event);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	m = vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (m < 0)
		return;
	n = (size_t)(n + m) >= sizeof line - 1 ? (int)sizeof line - 2 : n + m;
	if (tail != NULL) {
		m = snprintf(line + n, sizeof line - n, "%s", tail);
		n = (size_t)(n + m) >= sizeof line - 1 ? (int)sizeof line - 2 : n + m;
	}
	line[n++] = '\n';
	/* one write: lines of concurrent processes never interleave */
	(void)!write(2, line, n);
}

void
log_event(const char *event, const char *fmt, ...)
{
	va_list ap;

	if (!log_wanted(event, LOGLEVEL_MIN))
		return;
	va_start(ap, fmt);
	log_vline(event, NULL, fmt, ap);
	va_end(ap);
}

void
log_detail(int level, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (!log_wanted(event, level))
		return;
	va_start(ap, fmt);
	log_vline(event, NULL, fmt, ap);
	va_end(ap);
}

void
die(int code, int err, const char *fmt, ...)
{
	char msg[2048], head[64], tail[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(head, sizeof head, "exit=%d msg=", code);
	tail[0] = '\0';
	if (err != 0)
		snprintf(tail, sizeof tail, " error=%s", log_quote(strerror(err)));
	log_event("fatal", "%s%s%s", head, log_quote(msg), tail);
	exit(code);
}

const char *
log_quote(const char *s)
{
	static char ring[8][1024];
	static unsigned next;
	char *out = ring[next++ % 8];
	size_t n = 0, cap = sizeof ring[0] - 4;
	const char *p;
	int plain = *s != '\0';

	for (p = s; *p != '\0'; p++)
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' || *p == 0x7f)
			plain = 0;
	if (plain) {
		snprintf(out, sizeof ring[0], "%s", s);
		return out;
	}
	out[n++] = '"';
	for (p = s; *p != '\0' && n < cap; p++) {
		unsigned char c = *p;
		if (c == '"' || c == '\\')
			out[n++] = '\\';
		out[n++] = (c < ' ' || c == 0x7f) ? '?' : c;
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}
