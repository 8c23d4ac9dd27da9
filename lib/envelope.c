#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"

enum { FIELD_MAX = 4096 };

static int
set_string(char **dst, const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

int
envelope_set_sender(struct envelope *e, const char *addr)
{
	return set_string(&e->sender, addr);
}

struct rcpt *
envelope_add_rcpt(struct envelope *e, const char *addr)
{
	struct rcpt *r;

	if (e->nrcpt == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4;
		if ((r = realloc(e->rcpt, cap * sizeof *r)) == NULL)
			return NULL;
		e->rcpt = r;
		e->cap = cap;
	}
	r = &e->rcpt[e->nrcpt];
	memset(r, 0, sizeof *r);
	if ((r->addr = strdup(addr)) == NULL)
		return NULL;
	e->nrcpt++;
	return r;
}

/* "rcpt ADDR name=value ..." after the "rcpt " */
static int
parse_rcpt(struct envelope *e, const char *p)
{
	char addr[FIELD_MAX], name[64], value[FIELD_MAX];
	struct rcpt *r;
	int rc;

	if (attr_word(&p, addr, sizeof addr) != 1)
		return -1;
	if ((r = envelope_add_rcpt(e, addr)) == NULL)
		return -1;
	while ((rc = attr_pair(&p, name, sizeof name, value, sizeof value)) == 1)
		if (attrs_set(&r->attrs, name, value) < 0)
			return -1;
	return rc;
}

static int
parse_line(struct envelope *e, const char *line)
{
	char key[64];
	const char *sp = strchr(line, ' ');
	size_t klen = sp ? (size_t)(sp - line) : strlen(line);
	const char *value = sp ? sp + 1 : "";

	if (klen == 0 || klen >= sizeof key)
		return -1;
	memcpy(key, line, klen);
	key[klen] = '\0';
	if (strcmp(key, "rcpt") == 0)
		return parse_rcpt(e, value);
	if (strcmp(key, "sender") == 0)
		return envelope_set_sender(e, strcmp(value, "<>") == 0 ? "" : value);
	return attrs_set(&e->fields, key, value);
}

int
envelope_parse(struct envelope *e, const char *text, size_t len)
{
	char line[3 * FIELD_MAX];
	size_t start = 0, end;

	while (start < len) {
		for (end = start; end < len && text[end] != '\n'; end++)
			;
		if (end - start >= sizeof line || memchr(text + start, '\0',
		    end - start) != NULL)
			goto bad;
		memcpy(line, text + start, end - start);
		line[end - start] = '\0';
		if (line[0] != '\0' && line[0] != '#' && parse_line(e, line) < 0)
			goto bad;
		start = end + 1;
	}
	if (e->sender == NULL)
		goto bad;
	return 0;
bad:
	if (errno != ENOMEM)
		errno = EINVAL;
	return -1;
}

int
envelope_read(struct envelope *e, int dirfd, const char *name)
{
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd, rc, err;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_size > ENVELOPE_MAX) {
		err = errno ? errno : EFBIG;
		close(fd);
		errno = st.st_size > ENVELOPE_MAX ? EFBIG : err;
		return -1;
	}
	if ((text = malloc(st.st_size + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size &&
	    (n = read(fd, text + got, st.st_size - got)) > 0)
		got += n;
	close(fd);
	rc = envelope_parse(e, text, got);
	err = errno;
	free(text);
	errno = err;
	return rc;
}

/* Field values are one line: control bytes become '?'. */
static int
add_line_value(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		if (buf_addc(b, (unsigned char)*s < ' ' ? '?' : *s) < 0)
			return -1;
	return buf_addc(b, '\n');
}

int
envelope_format(const struct envelope *e, struct buf *b)
{
	size_t i;

	if (buf_adds(b, "sender ") < 0 ||
	    add_line_value(b, e->sender && *e->sender ? e->sender : "<>") < 0)
		return -1;
	for (i = 0; i < e->fields.n; i++)
		if (buf_printf(b, "%s ", e->fields.v[i].name) < 0 ||
		    add_line_value(b, e->fields.v[i].value) < 0)
			return -1;
	for (i = 0; i < e->nrcpt; i++)
		if (buf_adds(b, "rcpt ") < 0 ||
		    attr_quote(b, e->rcpt[i].addr) < 0 ||
		    attrs_format(&e->rcpt[i].attrs, b) < 0 ||
		    buf_addc(b, '\n') < 0)
			return -1;
	return 0;
}

const char *
envelope_get(const struct envelope *e, const char *key)
{
	return attrs_get(&e->fields, key);
}

int
envelope_set(struct envelope *e, const char *key, const char *value)
{
	return attrs_set(&e->fields, key, value);
}

const char *
rcpt_get(const struct rcpt *r, const char *key)
{
	return attrs_get(&r->attrs, key);
}

int
rcpt_set(struct rcpt *r, const char *key, const char *value)
{
	return attrs_set(&r->attrs, key, value);
}

int
rcpt_outcome(struct rcpt *r, const char *state, const char *code,
    const char *reason)
{
	if (rcpt_set(r, "state", state) < 0 || rcpt_set(r, "code", code) < 0)
		return -1;
	return rcpt_set(r, "reason", reason);
}

int
envelope_copy_head(struct envelope *dst, const struct envelope *src)
{
	size_t i;

	if (envelope_set_sender(dst, src->sender ? src->sender : "") < 0)
		return -1;
	for (i = 0; i < src->fields.n; i++)
		if (attrs_set(&dst->fields, src->fields.v[i].name,
		    src->fields.v[i].value) < 0)
			return -1;
	return 0;
}

int
envelope_copy_rcpt(struct envelope *e, const struct rcpt *r)
{
	struct rcpt *copy = envelope_add_rcpt(e, r->addr);
	size_t i;

	if (copy == NULL)
		return -1;
	for (i = 0; i < r->attrs.n; i++)
		if (attrs_set(&copy->attrs, r->attrs.v[i].name,
		    r->attrs.v[i].value) < 0)
			return -1;
	return 0;
}

void
envelope_free(struct envelope *e)
{
	size_t i;

	free(e->sender);
	attrs_free(&e->fields);
	for (i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].addr);
		attrs_free(&e->rcpt[i].attrs);
	}
	free(e->rcpt);
	memset(e, 0, sizeof *e);
}
