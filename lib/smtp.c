#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "smtp.h"

void (*smtp_trace)(int is_reply, const char *line);

static int
smtp_reply_line(struct net *n, int code, const char *ecode, int is_last,
    const char *text, size_t len)
{
	char line[1100];
	int m;

	if (len > 900)
		len = 900;	/* RFC 5321 §4.5.3.1.5: 512 is the floor */
	m = snprintf(line, sizeof line, "%03d%c%s%s%.*s", code,
	    is_last ? ' ' : '-', ecode ? ecode : "", ecode ? " " : "",
	    (int)len, text);
	if (smtp_trace != NULL)
		smtp_trace(1, line);
	line[m++] = '\r';
	line[m++] = '\n';
	return net_write(n, line, m);
}

int
smtp_reply(struct net *n, int code, const char *ecode, const char *fmt, ...)
{
	char text[4096];
	const char *p = text, *nl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	while ((nl = strchr(p, '\n')) != NULL) {
		if (smtp_reply_line(n, code, ecode, 0, p, nl - p) < 0)
			return -1;
		p = nl + 1;
	}
	return smtp_reply_line(n, code, ecode, 1, p, strlen(p));
}

const struct smtp_command *
smtp_command_find(const struct smtp_command *table, char *line, char **args)
{
	for (; table->name != NULL; table++) {
		size_t len = strlen(table->name);
		if (strncasecmp(line, table->name, len) != 0 ||
		    (line[len] != '\0' && line[len] != ' '))
			continue;
		line += len;
		while (*line == ' ')
			line++;
		*args = line;
		return table;
	}
	return NULL;
}

/* The closing '>' of a path, skipping quoted strings. */
static const char *
smtp_path_end(const char *s)
{
	int is_quoted = 0;

	for (; *s != '\0'; s++) {
		if (is_quoted && *s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			is_quoted = !is_quoted;
		else if (*s == '>' && !is_quoted)
			return s;
	}
	return NULL;
}

int
smtp_path(const char **p, const char *keyword, char *path, size_t cap)
{
	size_t klen = strlen(keyword), len;
	const char *s = *p, *end;

	if (strncasecmp(s, keyword, klen) != 0 || s[klen] != ':')
		return -1;
	s += klen + 1;
	while (*s == ' ')
		s++;
	if (*s != '<' || (end = smtp_path_end(s + 1)) == NULL)
		return -1;
	if ((len = end - s - 1) >= cap)
		return -1;
	memcpy(path, s + 1, len);
	path[len] = '\0';
	*p = end + 1;
	return 0;
}

/* The next " KEY[=VALUE]". 1, 0 at the end, -1 when malformed. */
static int
smtp_param(const char **p, char *key, size_t kcap, char *value, size_t vcap)
{
	const char *s = *p;
	size_t n = 0;

	if (*s == '\0')
		return 0;
	if (*s != ' ')
		return -1;
	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	while (isalnum((unsigned char)*s) || *s == '-')
		if (n + 1 < kcap)
			key[n++] = *s++;
		else
			return -1;
	key[n] = '\0';
	value[0] = '\0';
	if (n == 0 || (*s != '=' && *s != ' ' && *s != '\0'))
		return -1;
	if (*s == '=') {
		s++;
		for (n = 0; *s != '\0' && *s != ' '; s++) {
			if (n + 1 >= vcap || (unsigned char)*s < 33 ||
			    (unsigned char)*s > 126)
				return -1;
			value[n++] = *s;
		}
		value[n] = '\0';
		if (n == 0)
			return -1;
	}
	*p = s;
	return 1;
}

int
smtp_xtext_valid(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = *s;
		if (c == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) || islower((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return 1;
}

int
smtp_xtext_decode(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (!smtp_xtext_valid(s))
		return -1;
	for (; *s != '\0'; s++) {
		char c = *s;
		if (c == '+') {
			char hex[3] = { s[1], s[2], 0 };
			c = (char)strtol(hex, NULL, 16);
			s += 2;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

static int
smtp_fail(struct smtp_error *err, int code, const char *text)
{
	err->code = code;
	err->ecode = "5.5.4";
	err->text = text;
	return -1;
}

/* Copies a parameter value once: a second occurrence is an error. */
static int
smtp_once(char *dst, size_t cap, const char *value)
{
	if (dst[0] != '\0' || strlen(value) >= cap)
		return -1;
	strcpy(dst, value);
	return 0;
}

static int
smtp_size_param(struct smtp_mail_params *m, const char *v)
{
	char *end;

	if (m->size != 0 || !isdigit((unsigned char)*v) || strlen(v) > 20)
		return -1;
	errno = 0;
	m->size = strtoull(v, &end, 10);
	return (*end != '\0' || errno != 0) ? -1 : 0;
}

static int
smtp_body_param(struct smtp_mail_params *m, const char *v)
{
	static const char *bodies[] = { "7BIT", "8BITMIME", "BINARYMIME" };
	size_t i;

	for (i = 0; i < 3; i++)
		if (strcasecmp(v, bodies[i]) == 0)
			return smtp_once(m->body, sizeof m->body, bodies[i]);
	return -1;
}

static int
smtp_auth_param(struct smtp_mail_params *m, const char *v)
{
	char mailbox[ADDR_MAX], check[ADDR_MAX];

	if (m->auth[0] != '\0' || smtp_xtext_decode(v, mailbox, sizeof mailbox) < 0)
		return -1;
	/* RFC 4954 §5: "<>" or an addr-spec */
	if (strcmp(mailbox, "<>") != 0 &&
	    addr_parse(mailbox, check, sizeof check, 0) < 0)
		return -1;
	return smtp_once(m->auth, sizeof m->auth, mailbox);
}

static int
smtp_mail_one(struct smtp_mail_params *m, const char *key, const char *v)
{
	if (strcasecmp(key, "SIZE") == 0)
		return smtp_size_param(m, v);
	if (strcasecmp(key, "BODY") == 0)
		return smtp_body_param(m, v);
	if (strcasecmp(key, "RET") == 0) {
		if (strcasecmp(v, "FULL") == 0)
			return smtp_once(m->ret, sizeof m->ret, "FULL");
		if (strcasecmp(v, "HDRS") == 0)
			return smtp_once(m->ret, sizeof m->ret, "HDRS");
		return -1;
	}
	if (strcasecmp(key, "ENVID") == 0)
		return (*v && smtp_xtext_valid(v) && strlen(v) <= 100) ?
		    smtp_once(m->envid, sizeof m->envid, v) : -1;
	if (strcasecmp(key, "AUTH") == 0)
		return smtp_auth_param(m, v);
	return -2;
}

int
smtp_mail_parse(const char *p, struct smtp_mail_params *m,
    struct smtp_error *err)
{
	char key[32] = "", value[600] = "";
	int rc;

	memset(m, 0, sizeof *m);
	while ((rc = smtp_param(&p, key, sizeof key, value, sizeof value)) == 1) {
		if (strcasecmp(key, "SMTPUTF8") == 0 && value[0] == '\0')
			m->has_smtputf8 = 1;
		else if ((rc = smtp_mail_one(m, key, value)) == -2)
			return smtp_fail(err, 555, "Unsupported MAIL parameter");
		else if (rc < 0)
			return smtp_fail(err, 501, "Bad MAIL parameter value");
	}
	if (rc < 0)
		return smtp_fail(err, 501, "Bad MAIL parameter syntax");
	return 0;
}

/* NEVER alone, or a list of SUCCESS, FAILURE, DELAY, each at most once. */
static int
smtp_notify_valid(const char *v)
{
	char copy[48], *item, *save;
	int seen = 0, bit;

	if (strlen(v) >= sizeof copy)
		return 0;
	strcpy(copy, v);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(item, "NEVER") == 0)
			bit = 8;
		else if (strcasecmp(item, "SUCCESS") == 0)
			bit = 1;
		else if (strcasecmp(item, "FAILURE") == 0)
			bit = 2;
		else if (strcasecmp(item, "DELAY") == 0)
			bit = 4;
		else
			return 0;
		if (seen & bit)
			return 0;
		seen |= bit;
	}
	return seen != 0 && (seen == 8 || !(seen & 8)) && v[strlen(v) - 1] != ',';
}

/* addr-type ";" xtext, addr-type an atom ("rfc822", "utf-8"). */
static int
smtp_orcpt_valid(const char *v)
{
	const char *semi = strchr(v, ';');
	const char *s;

	if (semi == NULL || semi == v || semi[1] == '\0' || strlen(v) > 500)
		return 0;
	for (s = v; s < semi; s++)
		if (!isalnum((unsigned char)*s) && *s != '-')
			return 0;
	return smtp_xtext_valid(semi + 1);
}

static void
smtp_upper(char *s)
{
	for (; *s != '\0'; s++)
		*s = toupper((unsigned char)*s);
}

int
smtp_rcpt_parse(const char *p, struct smtp_rcpt_params *r,
    struct smtp_error *err)
{
	char key[32] = "", value[600] = "";
	int rc;

	memset(r, 0, sizeof *r);
	while ((rc = smtp_param(&p, key, sizeof key, value, sizeof value)) == 1) {
		if (strcasecmp(key, "NOTIFY") == 0) {
			if (!smtp_notify_valid(value) ||
			    smtp_once(r->notify, sizeof r->notify, value) < 0)
				return smtp_fail(err, 501, "Bad NOTIFY parameter");
			smtp_upper(r->notify);
		} else if (strcasecmp(key, "ORCPT") == 0) {
			if (!smtp_orcpt_valid(value) ||
			    smtp_once(r->orcpt, sizeof r->orcpt, value) < 0)
				return smtp_fail(err, 501, "Bad ORCPT parameter");
		} else
			return smtp_fail(err, 555, "Unsupported RCPT parameter");
	}
	if (rc < 0)
		return smtp_fail(err, 501, "Bad RCPT parameter syntax");
	return 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

int
smtp_base64_decode(const char *s, unsigned char *out, size_t cap, size_t *len)
{
	size_t slen = strlen(s), i, n = 0;

	if (slen % 4 != 0)
		return -1;
	for (i = 0; i < slen; i += 4) {
		int v[4], k, pad = 0;
		for (k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == slen && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad || (v[k] = b64_value(s[i + k])) < 0)
				return -1;
		}
		if (n + 3 - pad > cap)
			return -1;
		out[n++] = v[0] << 2 | v[1] >> 4;
		if (pad < 2)
			out[n++] = (v[1] & 15) << 4 | v[2] >> 2;
		if (pad < 1)
			out[n++] = (v[2] & 3) << 6 | v[3];
	}
	*len = n;
	return 0;
}

int
smtp_base64_encode(const unsigned char *p, size_t len, char *out, size_t cap)
{
	size_t i, n = 0;

	if ((len + 2) / 3 * 4 + 1 > cap)
		return -1;
	for (i = 0; i < len; i += 3) {
		unsigned v = p[i] << 16;
		if (i + 1 < len)
			v |= p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[n++] = b64[v >> 18 & 63];
		out[n++] = b64[v >> 12 & 63];
		out[n++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? b64[v & 63] : '=';
	}
	out[n] = '\0';
	return 0;
}
