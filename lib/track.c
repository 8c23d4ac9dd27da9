#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "root.h"
#include "spool.h"
#include "track.h"

static int
tracking_on(const char *key, int def)
{
	char buf[16];
	int on;

	if (conf_setting(key, NULL, buf, sizeof buf) <= 0)
		return def;
	return (on = conf_parse_bool(buf)) < 0 ? def : on;
}

static void
add_kv(struct buf *b, const char *key, const char *value)
{
	if (value != NULL && *value != '\0')
		buf_printf(b, " %s=%s", key, log_quote(value));
}

/* "YYYY-MM-DD" as the UTC time of its midnight, or -1. */
static time_t
day_start(const char *name)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof tm);
	if (strlen(name) != 10 || (end = strptime(name, "%Y-%m-%d", &tm)) == NULL ||
	    *end != '\0')
		return -1;
	return timegm(&tm);
}

int
track_expire(void (*removed)(const char *name))
{
	long long days = conf_setting_size("tracking-days", 7);
	time_t now = time(NULL), day;
	char dir[PATH_MAX];
	struct dirent *d;
	DIR *dp;

	if (days <= 0 || root_path(dir, sizeof dir, "log/track") < 0)
		return 0;
	if ((dp = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((d = readdir(dp)) != NULL) {
		if ((day = day_start(d->d_name)) < 0 ||
		    day + 86400 + days * 86400 > now)
			continue;
		if (unlinkat(dirfd(dp), d->d_name, 0) < 0 && errno != ENOENT) {
			int err = errno;
			closedir(dp);
			errno = err;
			return -1;
		}
		if (removed != NULL)
			removed(d->d_name);
	}
	closedir(dp);
	return 0;
}

/* Opens today's file; the first line of a new day also expires old days. */
static int
track_open(const struct tm *tm)
{
	char path[PATH_MAX];
	int fd;

	if (root_path(path, sizeof path, "log/track/%04d-%02d-%02d",
	    tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday) < 0)
		return -1;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) >= 0)
		return fd;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd >= 0)
		track_expire(NULL);
	if (fd < 0 && errno == ENOENT) {
		char dir[PATH_MAX];
		if (root_path(dir, sizeof dir, "log") == 0)
			mkdir(dir, 0750);
		if (root_path(dir, sizeof dir, "log/track") == 0)
			mkdir(dir, 0750);
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	}
	return fd;
}

/* Today's file stays open between lines: reopened when the day changes,
 * or when it was removed (looked at once a second). */
static struct {
	int fd;
	int year, yday;
	time_t checked;
} today = { -1, 0, 0, 0 };

static int
track_fd(const struct tm *tm, time_t now)
{
	struct stat st;

	if (today.fd >= 0 && (today.year != tm->tm_year ||
	    today.yday != tm->tm_yday || (now != today.checked &&
	    (fstat(today.fd, &st) < 0 || st.st_nlink == 0)))) {
		close(today.fd);
		today.fd = -1;
	}
	today.checked = now;
	if (today.fd < 0 && (today.fd = track_open(tm)) >= 0) {
		today.year = tm->tm_year;
		today.yday = tm->tm_yday;
	}
	return today.fd;
}

void
track(const char *event, const char *name, const struct envelope *e,
    const struct rcpt *r, const char *status)
{
	struct buf b = BUF_INIT;
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	int fd;

	if (!tracking_on("tracking", 1))
		return;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_printf(&b, "time=%s event=%s", stamp, event);
	add_kv(&b, "id", name);
	add_kv(&b, "msgid", envelope_get(e, "msgid"));
	buf_printf(&b, " sender=%s", e->sender && *e->sender ?
	    log_quote(e->sender) : "<>");
	if (r != NULL)
		add_kv(&b, "rcpt", r->addr);
	add_kv(&b, "size", envelope_get(e, "size"));
	add_kv(&b, "server", envelope_get(e, "server"));
	add_kv(&b, "peer", envelope_get(e, "peer"));
	if (r != NULL)
		add_kv(&b, "code", rcpt_get(r, "code"));
	add_kv(&b, "status", status);
	if (tracking_on("tracking-subjects", 0))
		add_kv(&b, "subject", envelope_get(e, "subject"));
	buf_addc(&b, '\n');
	if (b.data == NULL || (fd = track_fd(&tm, now)) < 0) {
		log_event("warning", "msg=\"message tracking unavailable\"");
		buf_free(&b);
		return;
	}
	/* O_APPEND and one write: lines of concurrent stages never mix */
	if (write_all(fd, b.data, b.len) < 0)
		log_event("warning", "msg=\"message tracking write failed\"");
	buf_free(&b);
}
