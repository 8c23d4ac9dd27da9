/*
 * bh-runit: write the runit service directories of a root.
 *
 * usage   bh-runit DIR            services into DIR (bh-supervise uses
 *                                 ROOT/service)
 *         bh-runit --install SVDIR  services into ROOT/service, and a
 *                                 symbolic link SVDIR/bh-NAME to each, for a
 *                                 system-wide runsvdir (/etc/service)
 * reads   BINDIR/bh-{categorize,route,local,remote,ndr,smtpd} (a service is
 *         written only for a program that exists), cdb/servers.cdb (the
 *         "servers" list: one smtpd-NAME service per virtual server)
 * writes  DIR/NAME/run, DIR/NAME/log/run (each via a .tmp file and rename;
 *         a new service is built as DIR/.NAME.new and renamed into place, so
 *         runsvdir never sees half a service), ROOT/log/NAME/;
 *         retires DIR/NAME written by us earlier and no longer wanted
 *         (renamed to DIR/.NAME.gone, told to stop, removed once stopped)
 * exit    0 done; 100 bad usage; 111 a file or directory could not be written
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "log.h"
#include "root.h"
#include "spool.h"

/* The first lines of every run script we write: how we recognize our own
 * services among others in a shared directory such as /etc/service. */
#define RUNIT_MARK "#!/bin/sh\n# written by bh-runit"

#define RUNIT_MAX 256		/* services per root: stages + servers */
#define RUNIT_RETIRE_MSEC 5000	/* how long we wait for a retired runsv */

struct service {
	char name[80];		/* directory and log name */
	char prog[32];		/* bh-route, bh-smtpd */
	char arg[64];		/* server name for "-s", or "" */
};

struct runit {
	char root[PATH_MAX], bin[PATH_MAX];
	struct service v[RUNIT_MAX];
	size_t n;
};

static void
runit_path(char *buf, size_t cap, const char *fmt, const char *a,
    const char *b)
{
	if (snprintf(buf, cap, fmt, a, b) >= (int)cap)
		die(EXIT_PERM, ENAMETOOLONG, "path %s/%s", a, b);
}

/* Appends s single-quoted for sh: ' becomes '\''. */
static void
runit_quote(struct buf *b, const char *s)
{
	int rc = buf_addc(b, '\'');

	for (; *s != '\0' && rc == 0; s++)
		rc = *s == '\'' ? buf_adds(b, "'\\''") : buf_addc(b, *s);
	if (rc < 0 || buf_addc(b, '\'') < 0)
		die(EXIT_TEMP, ENOMEM, "run script");
}

static void
runit_text(struct buf *b, const char *s)
{
	if (buf_adds(b, s) < 0)
		die(EXIT_TEMP, ENOMEM, "run script");
}

/* ROOT/bin are made absolute: the scripts run in the service directory. */
static void
runit_locate(struct runit *r)
{
	if (realpath(root_dir(), r->root) == NULL)
		die(EXIT_TEMP, errno, "root %s", root_dir());
	if (realpath(root_bindir(), r->bin) == NULL)
		die(EXIT_TEMP, errno, "bin directory %s", root_bindir());
}

static int
runit_has_prog(const struct runit *r, const char *prog)
{
	char path[PATH_MAX];

	runit_path(path, sizeof path, "%s/%s", r->bin, prog);
	return access(path, X_OK) == 0;
}

static void
runit_want(struct runit *r, const char *name, const char *prog,
    const char *arg)
{
	struct service *s;

	if (r->n == RUNIT_MAX) {
		log_event("skip", "service=%s reason=\"too many services\"",
		    log_quote(name));
		return;
	}
	s = &r->v[r->n++];
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->prog, sizeof s->prog, "%s", prog);
	snprintf(s->arg, sizeof s->arg, "%s", arg);
}

static void
runit_want_stages(struct runit *r)
{
	static const char *stages[] = {
		"categorize", "route", "local", "remote", "ndr"
	};
	char prog[32];
	size_t i;

	for (i = 0; i < sizeof stages / sizeof stages[0]; i++) {
		snprintf(prog, sizeof prog, "bh-%s", stages[i]);
		if (runit_has_prog(r, prog))
			runit_want(r, stages[i], prog, "");
	}
}

/* A server name becomes a directory name and a shell word: plain
 * characters only, and never a dot first (runsvdir skips those). */
static int
runit_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 60 || s[0] == '.')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") == n;
}

static void
runit_want_servers(struct runit *r)
{
	struct conf c;
	char **names, svc[80];
	size_t n, i;
	int rc;

	if (!runit_has_prog(r, "bh-smtpd"))
		return;
	if (conf_open(&c, "servers") < 0)
		die(EXIT_TEMP, errno, "unable to open cdb/servers.cdb");
	if ((rc = conf_list(&c, "servers", &names, &n)) < 0)
		die(EXIT_TEMP, errno, "unable to read cdb/servers.cdb");
	for (i = 0; rc == 1 && i < n; i++) {
		if (!runit_name_ok(names[i])) {
			log_event("skip", "server=%s reason=\"bad name\"",
			    log_quote(names[i]));
			continue;
		}
		snprintf(svc, sizeof svc, "smtpd-%s", names[i]);
		runit_want(r, svc, "bh-smtpd", names[i]);
	}
	if (rc == 1)
		free(names);
	conf_close(&c);
}

static void
runit_header(struct buf *b, const struct runit *r, const char *name)
{
	runit_text(b, RUNIT_MARK " for service ");
	runit_text(b, name);
	runit_text(b, "; bh-runit rewrites it\nBH_ROOT=");
	runit_quote(b, r->root);
	runit_text(b, "\nBH_BIN=");
	runit_quote(b, r->bin);
	runit_text(b, "\nexport BH_ROOT BH_BIN\n");
}

/* run: the stage in the foreground, its stderr into the log pipe. */
static void
runit_run_script(struct buf *b, const struct runit *r, const struct service *s)
{
	char prog[PATH_MAX];

	runit_header(b, r, s->name);
	runit_path(prog, sizeof prog, "%s/%s", r->bin, s->prog);
	runit_text(b, "exec 2>&1\nexec ");
	runit_quote(b, prog);
	if (s->arg[0] != '\0') {
		runit_text(b, " -s ");
		runit_quote(b, s->arg);
	}
	runit_text(b, "\n");
}

/* log/run: svlogd with a time stamp on every line (-tt: UTC, readable). */
static void
runit_log_script(struct buf *b, const struct runit *r, const struct service *s)
{
	char dir[PATH_MAX];

	runit_header(b, r, s->name);
	runit_path(dir, sizeof dir, "%s/log/%s", r->root, s->name);
	runit_text(b, "PATH=${PATH:-/usr/bin:/bin}\nmkdir -p ");
	runit_quote(b, dir);
	runit_text(b, "\nexec svlogd -tt ");
	runit_quote(b, dir);
	runit_text(b, "\n");
}

/* 1 when path holds exactly text. */
static int
runit_same(const char *path, const struct buf *text)
{
	char old[8192];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, old, sizeof old);
	close(fd);
	return n >= 0 && (size_t)n == text->len &&
	    memcmp(old, text->data, n) == 0;
}

/* Writes an executable file via path.tmp and rename, unless it already
 * holds text: runsv reads run only when it starts the service, but it must
 * never find half a script. */
static void
runit_put(const char *path, const struct buf *text)
{
	char tmp[PATH_MAX + 8];
	int fd;

	if (runit_same(path, text))
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755)) < 0)
		die(EXIT_TEMP, errno, "unable to create %s", tmp);
	if (write_all(fd, text->data, text->len) < 0 || fchmod(fd, 0755) < 0 ||
	    fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0)
		die(EXIT_TEMP, errno, "unable to write %s", path);
}

static void
runit_mkdir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(EXIT_TEMP, errno, "unable to create %s", path);
}

static int
runit_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf, never following symbolic links. */
static int
runit_remove_tree(const char *path)
{
	if (nftw(path, runit_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 &&
	    errno != ENOENT)
		return -1;
	return 0;
}

/* Writes run and log/run into the service directory dir. */
static void
runit_fill(const struct runit *r, const struct service *s, const char *dir)
{
	struct buf b = BUF_INIT;
	char path[PATH_MAX];

	runit_path(path, sizeof path, "%s/%s", dir, "log");
	runit_mkdir(path);
	runit_run_script(&b, r, s);
	runit_path(path, sizeof path, "%s/%s", dir, "run");
	runit_put(path, &b);
	buf_reset(&b);
	runit_log_script(&b, r, s);
	runit_path(path, sizeof path, "%s/%s", dir, "log/run");
	runit_put(path, &b);
	buf_free(&b);
}

/* An existing service is updated in place; a new one is built under a dot
 * name, which runsvdir ignores, and renamed in whole. */
static void
runit_service(const struct runit *r, const char *svdir,
    const struct service *s)
{
	char dir[PATH_MAX], fresh[PATH_MAX];
	struct stat st;

	runit_path(dir, sizeof dir, "%s/log/%s", r->root, s->name);
	runit_mkdir(dir);
	runit_path(dir, sizeof dir, "%s/%s", svdir, s->name);
	if (stat(dir, &st) == 0) {
		runit_fill(r, s, dir);
		return;
	}
	runit_path(fresh, sizeof fresh, "%s/.%s.new", svdir, s->name);
	if (runit_remove_tree(fresh) < 0)
		die(EXIT_TEMP, errno, "unable to remove %s", fresh);
	runit_mkdir(fresh);
	runit_fill(r, s, fresh);
	if (rename(fresh, dir) < 0)
		die(EXIT_TEMP, errno, "unable to rename %s to %s", fresh, dir);
	log_event("add", "service=%s", log_quote(s->name));
}

static int
runit_wanted(const struct runit *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->v[i].name, name) == 0)
			return 1;
	return 0;
}

/* 1 when svdir/name is a service directory whose run script we wrote. */
static int
runit_ours(const char *svdir, const char *name)
{
	char path[PATH_MAX], head[sizeof RUNIT_MARK];
	ssize_t n;
	int fd;

	runit_path(path, sizeof path, "%s/%s/run", svdir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, head, sizeof head - 1);
	close(fd);
	return n == (ssize_t)sizeof head - 1 &&
	    memcmp(head, RUNIT_MARK, sizeof head - 1) == 0;
}

/* 1 while a runsv still supervises dir: it holds supervise/ok open for
 * reading, so opening it for writing succeeds (ENXIO when nobody does). */
static int
runit_supervised(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	runit_path(path, sizeof path, "%s/%s", dir, "supervise/ok");
	if ((fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		return 0;
	close(fd);
	return 1;
}

/* Takes a service out of runsvdir's sight (a dot name) and tells its runsv
 * to stop the service (d) and exit (x); runsvdir would TERM it on its next
 * scan anyway, up to five seconds later. */
static void
runit_retire(const char *svdir, const char *name)
{
	char dir[PATH_MAX], gone[PATH_MAX], ctl[PATH_MAX];
	int fd;

	runit_path(dir, sizeof dir, "%s/%s", svdir, name);
	runit_path(gone, sizeof gone, "%s/.%s.gone", svdir, name);
	if (runit_supervised(gone) || runit_remove_tree(gone) < 0 ||
	    rename(dir, gone) < 0) {
		log_event("warning", "service=%s msg=\"unable to retire\"",
		    log_quote(name));
		return;
	}
	log_event("remove", "service=%s", log_quote(name));
	runit_path(ctl, sizeof ctl, "%s/%s", gone, "supervise/control");
	if ((fd = open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		return;
	(void)!write(fd, "dx", 2);
	close(fd);
}

/* Removes retired services whose runsv has gone; 1 if some remain. */
static int
runit_sweep(const char *svdir)
{
	char path[PATH_MAX];
	struct dirent *d;
	size_t len;
	DIR *dir;
	int left = 0;

	if ((dir = opendir(svdir)) == NULL)
		die(EXIT_TEMP, errno, "unable to read %s", svdir);
	while ((d = readdir(dir)) != NULL) {
		len = strlen(d->d_name);
		if (d->d_name[0] != '.' || len < 6 ||
		    strcmp(d->d_name + len - 5, ".gone") != 0)
			continue;
		runit_path(path, sizeof path, "%s/%s", svdir, d->d_name);
		if (runit_supervised(path))
			left = 1;
		else if (runit_remove_tree(path) < 0)
			log_event("warning", "msg=\"unable to remove %s\"",
			    log_quote(path));
	}
	closedir(dir);
	return left;
}

static void
runit_prune(const struct runit *r, const char *svdir)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	struct dirent *d;
	DIR *dir;
	int i;

	if ((dir = opendir(svdir)) == NULL)
		die(EXIT_TEMP, errno, "unable to read %s", svdir);
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.' && !runit_wanted(r, d->d_name) &&
		    runit_ours(svdir, d->d_name))
			runit_retire(svdir, d->d_name);
	closedir(dir);
	/* a bounded wait, only while a reconfiguration retires something */
	for (i = 0; runit_sweep(svdir) && i < RUNIT_RETIRE_MSEC / 100; i++)
		nanosleep(&pause, NULL);
}

static void
runit_write(struct runit *r, const char *svdir)
{
	size_t i;

	runit_want_stages(r);
	runit_want_servers(r);
	runit_mkdir(svdir);
	for (i = 0; i < r->n; i++)
		runit_service(r, svdir, &r->v[i]);
	runit_prune(r, svdir);
}

/* 1 when link is a symbolic link into target_dir/. */
static int
runit_links_into(const char *link, const char *target_dir)
{
	char to[PATH_MAX];
	size_t len = strlen(target_dir);
	ssize_t n;

	if ((n = readlink(link, to, sizeof to - 1)) < 0)
		return 0;
	to[n] = '\0';
	return strncmp(to, target_dir, len) == 0 && to[len] == '/';
}

static void
runit_link(const char *svdir, const char *prefix, const char *rootsv,
    const char *name)
{
	char link[PATH_MAX], tmp[PATH_MAX], to[PATH_MAX], base[160];

	snprintf(base, sizeof base, "%s%s", prefix, name);
	runit_path(link, sizeof link, "%s/%s", svdir, base);
	runit_path(tmp, sizeof tmp, "%s/.%s.tmp", svdir, base);
	runit_path(to, sizeof to, "%s/%s", rootsv, name);
	if (access(link, F_OK) == 0 && !runit_links_into(link, rootsv)) {
		log_event("warning", "msg=\"%s exists and is not ours\"",
		    log_quote(link));
		return;
	}
	unlink(tmp);
	if (symlink(to, tmp) < 0 || rename(tmp, link) < 0)
		die(EXIT_TEMP, errno, "unable to link %s", link);
}

/* Links PREFIXNAME in svdir to each service of the root, and removes our
 * links to services no longer wanted. */
static void
runit_install(const struct runit *r, const char *svdir, const char *prefix,
    const char *rootsv)
{
	char path[PATH_MAX];
	size_t len = strlen(prefix), i;
	struct dirent *d;
	DIR *dir;

	for (i = 0; i < r->n; i++)
		runit_link(svdir, prefix, rootsv, r->v[i].name);
	if ((dir = opendir(svdir)) == NULL)
		die(EXIT_TEMP, errno, "unable to read %s", svdir);
	while ((d = readdir(dir)) != NULL) {
		if (strncmp(d->d_name, prefix, len) != 0 ||
		    runit_wanted(r, d->d_name + len))
			continue;
		runit_path(path, sizeof path, "%s/%s", svdir, d->d_name);
		if (runit_links_into(path, rootsv) && unlink(path) == 0)
			log_event("unlink", "link=%s", log_quote(path));
	}
	closedir(dir);
}

static struct runit runit;

int
main(int argc, char **argv)
{
	char rootsv[PATH_MAX];
	const char *prefix;

	log_init("runit");
	runit_locate(&runit);
	if (argc == 2 && argv[1][0] != '-') {
		runit_write(&runit, argv[1]);
		return EXIT_DONE;
	}
	if ((argc != 3 && argc != 4) || strcmp(argv[1], "--install") != 0)
		die(EXIT_PERM, 0, "usage: bh-runit DIR | "
		    "bh-runit --install SVDIR [PREFIX]");
	prefix = argc == 4 ? argv[3] : "bh-";
	if (strlen(prefix) > 64 || strchr(prefix, '/') != NULL)
		die(EXIT_PERM, 0, "bad prefix %s", log_quote(prefix));
	runit_path(rootsv, sizeof rootsv, "%s/%s", runit.root, "service");
	runit_write(&runit, rootsv);
	runit_install(&runit, argv[2], prefix, rootsv);
	return EXIT_DONE;
}
