#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arrival.h"
#include "clock.h"
#include "conf.h"
#include "content.h"
#include "log.h"
#include "root.h"
#include "spool.h"
#include "stage.h"

enum {
	HOOK_ARGS_MAX = 16,
	HOOK_ENV_MAX = 20,
	HOOK_RCPTS_MAX = 100000,	/* bytes of BH_RCPTS (one env string) */
	HEADER_MAX = 1 << 20,		/* header bytes we read to rewrite */
	HOOK_TIMEOUT = -2,
	HOOK_SIGNALED = -3
};

static const char *
envelope_value(const struct envelope *e, const char *key)
{
	const char *v = envelope_get(e, key);

	return v ? v : "";
}

void
arrival_init(struct arrival *a, const char *name)
{
	memset(a, 0, sizeof *a);
	snprintf(a->name, sizeof a->name, "%s", name);
	snprintf(a->current, sizeof a->current, "%s", name);
}

int
arrival_is_replaced(const struct arrival *a)
{
	return strcmp(a->name, a->current) != 0;
}

void
arrival_discard(struct arrival *a)
{
	if (arrival_is_replaced(a))
		content_unlink(a->current);
	snprintf(a->current, sizeof a->current, "%s", a->name);
}

/* Opens spool/msg/NAME.SUFFIX for a replacement; a leftover of an attempt
 * that crashed is removed first. fd, or -1. */
static int
replacement_create(const struct arrival *a, const char *suffix, char *newname,
    size_t cap)
{
	if (stage_child_name(newname, cap, a->name, suffix) < 0)
		return -1;
	content_unlink(newname);
	return content_create(newname);
}

/* The replacement becomes the message: durable first, then the previous
 * replacement (never the input's own content) is removed. */
static int
replacement_adopt(struct arrival *a, struct envelope *e, int fd,
    const char *newname)
{
	struct stat sb;
	char size[32];

	if (fstat(fd, &sb) < 0 || content_commit(fd) < 0)
		return -1;
	if (arrival_is_replaced(a))
		content_unlink(a->current);
	snprintf(a->current, sizeof a->current, "%s", newname);
	snprintf(size, sizeof size, "%lld", (long long)sb.st_size);
	return envelope_set(e, "size", size);
}

/* "NAME=value" in malloc'ed memory, value cut to max bytes. */
static char *
env_pair(const char *name, const char *value, size_t max)
{
	size_t len = strlen(value) < max ? strlen(value) : max;
	char *s = malloc(strlen(name) + len + 2);

	if (s != NULL)
		sprintf(s, "%s=%.*s", name, (int)len, value);
	return s;
}

static char *
env_rcpts(const struct envelope *e)
{
	struct buf b = BUF_INIT;
	size_t i;
	char *s;

	buf_adds(&b, "");
	for (i = 0; i < e->nrcpt; i++) {
		if (b.len + strlen(e->rcpt[i].addr) + 1 > HOOK_RCPTS_MAX)
			break;
		buf_printf(&b, "%s%s", i ? " " : "", e->rcpt[i].addr);
	}
	s = env_pair("BH_RCPTS", b.data ? b.data : "", HOOK_RCPTS_MAX);
	buf_free(&b);
	return s;
}

/* The hook's environment: facts of the envelope, nothing else of ours. */
static int
env_build(const struct arrival *a, const struct envelope *e, char **env)
{
	static const char *fields[][2] = {
		{ "BH_SIZE", "size" }, { "BH_MSGID", "msgid" },
		{ "BH_SUBJECT", "subject" }, { "BH_PEER", "peer" },
		{ "BH_HELO", "helo" }, { "BH_AUTH", "auth" },
		{ "BH_SERVER", "server" }, { "BH_SUBMITTER", "submitter" },
	};
	const char *path = getenv("PATH");
	size_t n = 0, i;

	env[n++] = env_pair("PATH", path ? path : "/usr/bin:/bin", 4096);
	env[n++] = env_pair("BH_ROOT", root_dir(), PATH_MAX);
	env[n++] = env_pair("BH_ID", a->name, ARRIVAL_NAME_MAX);
	env[n++] = env_pair("BH_SENDER", e->sender ? e->sender : "", 4096);
	env[n++] = env_rcpts(e);
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		env[n++] = env_pair(fields[i][0], envelope_value(e, fields[i][1]),
		    4096);
	env[n] = NULL;
	for (i = 0; i < n; i++)
		if (env[i] == NULL)
			return -1;
	return 0;
}

static void
env_free(char **env)
{
	size_t i;

	for (i = 0; i < HOOK_ENV_MAX; i++)
		free(env[i]);
}

/* In the child: a clean signal state, the message on stdin, the
 * replacement on stdout, a size limit on what it writes, then exec. */
static _Noreturn void
hook_child(char *const argv[], char *const env[], int in, int out,
    long long max_bytes)
{
	struct rlimit limit = { (rlim_t)max_bytes, (rlim_t)max_bytes };
	sigset_t none;

	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(111);
	syscall(SYS_close_range, 3, ~0U, 0);
	setrlimit(RLIMIT_FSIZE, &limit);
	execve(argv[0], argv, env);
	dprintf(2, "stage=categorize event=error msg=\"unable to run hook "
	    "%s\" error=\"%s\"\n", argv[0], strerror(errno));
	_exit(111);
}

/* Waits for pid at most timeout_sec (a pidfd lets the wait sleep in the
 * kernel). The exit code, HOOK_SIGNALED or HOOK_TIMEOUT; the process group
 * is killed in any case, so nothing the hook started lingers. */
static int
hook_wait(pid_t pid, long long timeout_sec)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
	int is_timeout = 0;
	long long deadline = clock_ms() + timeout_sec * 1000, left;
	struct pollfd p = { pfd, POLLIN, 0 };

	while (waitpid(pid, &status, WNOHANG) != pid) {
		if ((left = deadline - clock_ms()) <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			is_timeout = 1;
			break;
		}
		if (pfd < 0 || poll(&p, 1, left > INT_MAX ? INT_MAX : left) < 0)
			usleep(20000);	/* no pidfd, or EINTR */
	}
	if (pfd >= 0)
		close(pfd);
	kill(-pid, SIGKILL);
	if (is_timeout)
		return HOOK_TIMEOUT;
	return WIFEXITED(status) ? WEXITSTATUS(status) : HOOK_SIGNALED;
}

/* The first line of spool/msg/name into out (line end removed). */
static void
first_line(const char *name, char *out, size_t cap)
{
	int fd = content_open(name);
	ssize_t n = fd < 0 ? -1 : read(fd, out, cap - 1);

	if (fd >= 0)
		close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
}

/* Splits a hook item into argv (in words, at blanks); a relative program
 * is under the root. 0, or -1 when empty. */
static int
hook_argv(char *item, char *path, size_t cap, char **argv)
{
	size_t n = 0;
	char *word, *save = NULL;

	for (word = strtok_r(item, " \t", &save);
	    word != NULL && n < HOOK_ARGS_MAX; word = strtok_r(NULL, " \t", &save))
		argv[n++] = word;
	argv[n] = NULL;
	if (n == 0)
		return -1;
	if (argv[0][0] != '/') {
		if (root_path(path, cap, "%s", argv[0]) < 0)
			return -1;
		argv[0] = path;
	}
	return 0;
}

/* What a hook's exit means; the reason for a retry goes to a->line. */
static int
hook_decision(struct arrival *a, int code, long long timeout_sec)
{
	switch (code) {
	case 0:
		return ARRIVAL_PASS;
	case 100:
		return ARRIVAL_REJECT;
	case 99:
		return ARRIVAL_DROP;
	case HOOK_TIMEOUT:
		snprintf(a->line, sizeof a->line, "hook did not finish within "
		    "%llds and was killed", timeout_sec);
		break;
	case HOOK_SIGNALED:
		snprintf(a->line, sizeof a->line, "hook died of a signal");
		break;
	default:
		snprintf(a->line, sizeof a->line, "hook exited %d", code);
	}
	return ARRIVAL_RETRY;
}

/* "hook exited N: FIRST LINE" when the hook said why. */
static void
retry_reason(struct arrival *a, const char *output)
{
	char line[512];
	size_t len = strlen(a->line);

	first_line(output, line, sizeof line);
	if (*line != '\0')
		snprintf(a->line + len, sizeof a->line - len, ": %s", line);
}

/* Runs one hook on the current content and adopts its output on a pass.
 * Its decision, or -1 on a system error. */
static int
hook_run(struct arrival *a, struct envelope *e, char *item, int index,
    long long timeout_sec)
{
	char path[PATH_MAX], *argv[HOOK_ARGS_MAX + 1], suffix[16];
	char *env[HOOK_ENV_MAX + 1] = { NULL }, newname[ARRIVAL_NAME_MAX];
	long long size = atoll(envelope_value(e, "size"));
	int in = -1, out = -1, code, rc = -1;
	struct stat sb;
	pid_t pid;

	snprintf(a->hook, sizeof a->hook, "%.1000s", item);
	if (hook_argv(item, path, sizeof path, argv) < 0)
		return ARRIVAL_PASS;
	snprintf(suffix, sizeof suffix, "h%d", index + 1);
	if ((in = content_open(a->current)) < 0 ||
	    (out = replacement_create(a, suffix, newname, sizeof newname)) < 0 ||
	    env_build(a, e, env) < 0 || (pid = fork()) < 0)
		goto out;
	if (pid == 0)	/* a replacement may be 4 times the message, or 16M */
		hook_child(argv, env, in, out, 4 * size + (16 << 20));
	code = hook_wait(pid, timeout_sec);
	log_event("hook", "id=%s hook=%s exit=%d", a->name, log_quote(a->hook),
	    code);
	a->line[0] = '\0';
	if ((rc = hook_decision(a, code, timeout_sec)) == ARRIVAL_REJECT)
		first_line(newname, a->line, sizeof a->line);
	else if (rc == ARRIVAL_RETRY && code >= 0)
		retry_reason(a, newname);
	if (rc == ARRIVAL_PASS && fstat(out, &sb) == 0 && sb.st_size > 0) {
		code = replacement_adopt(a, e, out, newname);
		out = -1;	/* closed by the commit */
		if (code < 0)
			rc = -1;
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0) {
		close(out);
		content_unlink(newname);
	}
	env_free(env);
	return rc;
}

/* The hook items: settings hooks, then the virtual server's hooks=. */
static size_t
hook_items(const struct envelope *e, char items[][1024], size_t max)
{
	static struct conf servers;
	static int is_open;
	struct attrs a = ATTRS_INIT;
	char list[2][8192], key[300], *item, *save;
	const char *server = envelope_get(e, "server");
	size_t n = 0, i;

	conf_setting("hooks", "", list[0], sizeof list[0]);
	list[1][0] = '\0';
	if (!is_open && conf_open(&servers, "servers") == 0)
		is_open = 1;
	if (is_open && server != NULL && conf_refresh(&servers) == 0 &&
	    snprintf(key, sizeof key, "server:%s", server) < (int)sizeof key &&
	    conf_record(&servers, key, &a) == 1 && attrs_get(&a, "hooks"))
		snprintf(list[1], sizeof list[1], "%s", attrs_get(&a, "hooks"));
	attrs_free(&a);
	for (i = 0; i < 2; i++)
		for (item = strtok_r(list[i], ",", &save); item != NULL && n < max;
		    item = strtok_r(NULL, ",", &save))
			if (item[strspn(item, " \t")] != '\0')
				snprintf(items[n++], 1024, "%s", item);
	return n;
}

int
arrival_hooks(struct arrival *a, struct envelope *e)
{
	char items[ARRIVAL_MAX_HOOKS][1024];
	long long timeout_sec = conf_setting_time("hook-timeout", 30);
	size_t n = hook_items(e, items, ARRIVAL_MAX_HOOKS), i;
	int rc;

	for (i = 0; i < n; i++)
		if ((rc = hook_run(a, e, items[i], (int)i, timeout_sec)) !=
		    ARRIVAL_PASS)
			return rc;
	return ARRIVAL_PASS;
}

/* Reads the header section of spool/msg/name (up to the blank line, at
 * most HEADER_MAX bytes) into b. Its length with the blank line, 0 when
 * there is none within the limit, -1 on error. The fd stays open in *fdp
 * (positioned anywhere) for the caller to copy the rest. */
static ssize_t
header_read(const char *name, struct buf *b, int *fdp)
{
	char chunk[8192], *end;
	ssize_t n;

	if ((*fdp = content_open(name)) < 0)
		return -1;
	while (b->len < HEADER_MAX && (n = read(*fdp, chunk, sizeof chunk)) > 0) {
		if (buf_add(b, chunk, n) < 0)
			return -1;
		if ((end = strstr(b->data, "\r\n\r\n")) != NULL)
			return end + 4 - b->data;
		if (strncmp(b->data, "\r\n", 2) == 0)
			return 2;
	}
	return 0;
}

/* The field in the header text h[0..len): its start and length (with its
 * continuation lines and line end). 1 found, 0 not. */
static int
header_find(const char *h, size_t len, const char *field, size_t *at,
    size_t *flen)
{
	size_t pos = 0, nlen = strlen(field), end;

	while (pos < len) {
		end = pos;
		do {	/* one field: its line and every folded line after it */
			const char *nl = memchr(h + end, '\n', len - end);
			end = nl ? (size_t)(nl - h) + 1 : len;
		} while (end < len && (h[end] == ' ' || h[end] == '\t'));
		if (end - pos > nlen && strncasecmp(h + pos, field, nlen) == 0 &&
		    h[pos + nlen] == ':') {
			*at = pos;
			*flen = end - pos;
			return 1;
		}
		pos = end;
	}
	return 0;
}

int
arrival_header(const struct arrival *a, const char *field, char *out,
    size_t cap)
{
	struct buf b = BUF_INIT;
	size_t at, flen, n = 0, i;
	ssize_t hlen;
	int fd = -1, rc = 0;

	hlen = header_read(a->current, &b, &fd);
	if (fd >= 0)
		close(fd);
	if (hlen < 0)
		rc = -1;
	else if (hlen > 0 && header_find(b.data, hlen, field, &at, &flen)) {
		for (i = at + strlen(field) + 1; i < at + flen && n + 1 < cap; i++)
			if (b.data[i] != '\r' && b.data[i] != '\n')
				out[n++] = b.data[i] == '\t' ? ' ' : b.data[i];
		out[n] = '\0';
		while (n > 0 && out[n - 1] == ' ')
			out[--n] = '\0';
		memmove(out, out + strspn(out, " "), n + 1 - strspn(out, " "));
		rc = 1;
	}
	buf_free(&b);
	return rc;
}

/* Copies the rest of in, from offset, to out. 0 or -1. */
static int
copy_from(int in, off_t offset, int out)
{
	char chunk[65536];
	ssize_t n;

	if (lseek(in, offset, SEEK_SET) < 0)
		return -1;
	while ((n = read(in, chunk, sizeof chunk)) > 0)
		if (write_all(out, chunk, n) < 0)
			return -1;
	return n < 0 ? -1 : 0;
}

int
arrival_rewrite_header(struct arrival *a, struct envelope *e,
    const char *field, const char *value)
{
	struct buf b = BUF_INIT, line = BUF_INIT;
	char newname[ARRIVAL_NAME_MAX];
	size_t at, flen;
	ssize_t hlen;
	int in = -1, out = -1, rc = -1;

	if ((hlen = header_read(a->current, &b, &in)) <= 0 ||
	    !header_find(b.data, hlen, field, &at, &flen)) {
		rc = hlen < 0 ? -1 : 0;
		goto out;
	}
	if (buf_printf(&line, "%s: %s\r\n", field, value) < 0 ||
	    (out = replacement_create(a, "f", newname, sizeof newname)) < 0)
		goto out;
	if (write_all(out, b.data, at) < 0 ||
	    write_all(out, line.data, line.len) < 0 ||
	    write_all(out, b.data + at + flen, hlen - at - flen) < 0 ||
	    copy_from(in, hlen, out) < 0) {
		close(out);
		content_unlink(newname);
		goto out;
	}
	rc = replacement_adopt(a, e, out, newname) < 0 ? -1 : 1;
out:
	if (in >= 0)
		close(in);
	buf_free(&b);
	buf_free(&line);
	return rc;
}
