/*
 * bh-supervise: run a root under runit, in the foreground.
 *
 * runs    BINDIR/bh-runit ROOT/service (at start and on SIGHUP), then
 *         runsvdir ROOT/service as a child in its own session; runsvdir
 *         starts one runsv per service, which runs the stage and svlogd
 * writes  ROOT/service/.supervise.lock (one bh-supervise per root)
 * signals TERM, INT: HUP to runsvdir (it TERMs every runsv, which stops its
 *         service and logger), wait until no descendant remains (KILL what
 *         is left after a grace period), exit 0.
 *         HUP: rewrite the service directories, then HUP each running
 *         smtpd-NAME service through its runsv control pipe (bh-smtpd
 *         rereads its listen= on HUP, which a rewritten run script alone
 *         would not make it do); never passed to runsvdir, for which HUP
 *         means stop everything.
 * runsvdir dying: we are a child subreaper, so its orphaned runsv processes
 *         become our children: they are stopped (TERM, then KILL) and reaped
 *         before a new runsvdir starts, so no stage ever runs twice. If we
 *         die, runsvdir gets HUP (parent-death signal) and stops everything.
 * exit    0 stopped by a signal; 100 bad usage; 111 system trouble
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "root.h"

#define SUPERVISE_GRACE_SEC 20	/* stages finish their message, then KILL */
#define SUPERVISE_ORPHAN_SEC 10	/* orphans of a dead runsvdir: TERM, then KILL */

struct supervise {
	char svdir[PATH_MAX];
	sigset_t set, orig;	/* signals we take by sigwaitinfo; the mask before */
	pid_t runsvdir;		/* 0 when not running */
	time_t started;
	int is_stopping;	/* TERM or INT received */
};

static time_t
supervise_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Children see the same absolute root and bin directory we do. */
static void
supervise_environment(struct supervise *sv)
{
	char path[PATH_MAX];

	if (realpath(root_dir(), path) == NULL)
		die(EXIT_TEMP, errno, "root %s", root_dir());
	if (setenv("BH_ROOT", path, 1) < 0)
		die(EXIT_TEMP, errno, "setenv");
	if (snprintf(sv->svdir, sizeof sv->svdir, "%s/service", path) >=
	    (int)sizeof sv->svdir)
		die(EXIT_PERM, ENAMETOOLONG, "%s/service", path);
	if (realpath(root_bindir(), path) == NULL)
		die(EXIT_TEMP, errno, "bin directory %s", root_bindir());
	if (setenv("BH_BIN", path, 1) < 0)
		die(EXIT_TEMP, errno, "setenv");
}

/* Holds ROOT/service/.supervise.lock for our life (a dot name: runsvdir
 * ignores it). A second bh-supervise on the root would start a second
 * runsvdir whose runsv processes fail on their locks, over and over. */
static void
supervise_lock(const struct supervise *sv)
{
	char path[PATH_MAX + 32];
	int fd;

	if (mkdir(sv->svdir, 0755) < 0 && errno != EEXIST)
		die(EXIT_TEMP, errno, "unable to create %s", sv->svdir);
	snprintf(path, sizeof path, "%s/.supervise.lock", sv->svdir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		die(EXIT_TEMP, errno, "unable to open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		die(EXIT_TEMP, errno, "root already supervised: %s", path);
}

static void
supervise_signals(struct supervise *sv)
{
	signal(SIGCHLD, SIG_DFL);	/* SIG_IGN would reap for us */
	signal(SIGPIPE, SIG_IGN);	/* a closed stderr must not kill us */
	sigemptyset(&sv->set);
	sigaddset(&sv->set, SIGCHLD);
	sigaddset(&sv->set, SIGTERM);
	sigaddset(&sv->set, SIGINT);
	sigaddset(&sv->set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &sv->set, &sv->orig) < 0)
		die(EXIT_TEMP, errno, "sigprocmask");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die(EXIT_TEMP, errno, "unable to become a child subreaper");
}

/* fork + exec; the child gets the signal mask we started with. runsvdir
 * also gets its own session (a terminal's Ctrl-C and hangup reach us, not
 * it) and HUP should we die, which makes it stop every service. */
static pid_t
supervise_spawn(const struct supervise *sv, char *const argv[], int is_runsvdir)
{
	pid_t parent = getpid(), pid;

	if ((pid = fork()) < 0) {
		log_event("warning", "msg=\"unable to fork\" error=%s",
		    log_quote(strerror(errno)));
		return -1;
	}
	if (pid > 0)
		return pid;
	sigprocmask(SIG_SETMASK, &sv->orig, NULL);
	signal(SIGPIPE, SIG_DFL);	/* an ignored signal stays so across exec */
	if (is_runsvdir) {
		setsid();
		prctl(PR_SET_PDEATHSIG, SIGHUP);
		if (getppid() != parent)	/* we died before prctl */
			_exit(EXIT_TEMP);
	}
	execvp(argv[0], argv);
	log_event("fatal", "exit=111 msg=\"unable to run %s\" error=%s",
	    argv[0], log_quote(strerror(errno)));
	_exit(EXIT_TEMP);
}

/* Runs bh-runit ROOT/service and waits for it. 0 when it succeeded. */
static int
supervise_rewrite(const struct supervise *sv)
{
	char prog[PATH_MAX];
	char *argv[] = { prog, (char *)sv->svdir, NULL };
	pid_t pid;
	int status;

	if (root_prog(prog, sizeof prog, "bh-runit") < 0 ||
	    (pid = supervise_spawn(sv, argv, 0)) < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void
supervise_runsvdir(struct supervise *sv)
{
	char *argv[] = { "runsvdir", sv->svdir, NULL };

	if ((sv->runsvdir = supervise_spawn(sv, argv, 1)) < 0)
		sv->runsvdir = 0;
	sv->started = supervise_now();
	if (sv->runsvdir > 0)
		log_event("runsvdir", "pid=%ld svdir=%s", (long)sv->runsvdir,
		    log_quote(sv->svdir));
}

/* Reaps every exited child. 1 while children remain, 0 when none. */
static int
supervise_reap(struct supervise *sv)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != sv->runsvdir)
			continue;	/* an orphan we adopted */
		sv->runsvdir = 0;
		if (WIFSIGNALED(status))
			log_event("runsvdir-exit", "pid=%ld signal=%d",
			    (long)pid, WTERMSIG(status));
		else
			log_event("runsvdir-exit", "pid=%ld status=%d",
			    (long)pid, WEXITSTATUS(status));
	}
	return pid == 0;
}

/* The parent pid from /proc/PID/stat, or -1. The command name may hold
 * spaces and parentheses: the fields after it follow the last ')'. */
static long
supervise_ppid(const char *pid)
{
	char path[64], line[512], *p;
	long ppid = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n <= 0)
		return -1;
	line[n] = '\0';
	if ((p = strrchr(line, ')')) == NULL || sscanf(p + 1, " %*c %ld",
	    &ppid) != 1)
		return -1;
	return ppid;
}

/* Sends sig to each of our children (runsvdir's orphans among them). */
static void
supervise_signal_children(int sig)
{
	long self = getpid();
	struct dirent *d;
	DIR *proc;

	if ((proc = opendir("/proc")) == NULL)
		return;
	while ((d = readdir(proc)) != NULL)
		if (d->d_name[0] >= '1' && d->d_name[0] <= '9' &&
		    supervise_ppid(d->d_name) == self)
			kill(atol(d->d_name), sig);
	closedir(proc);
}

/* Waits up to msec for SIGCHLD or a stop request: the signal, or -1. */
static int
supervise_pause(struct supervise *sv, long msec)
{
	struct timespec ts = { msec / 1000, msec % 1000 * 1000000L };
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sig = sigtimedwait(&set, NULL, &ts);
	if (sig == SIGTERM || sig == SIGINT)
		sv->is_stopping = 1;
	return sig;
}

/* Waits until no child of ours remains. After grace_sec, or at once on a
 * further TERM/INT, KILLs them; the orphans that leaves (a killed runsv's
 * stage) become ours and are killed in the next round. */
static void
supervise_drain(struct supervise *sv, time_t grace_sec)
{
	time_t deadline = supervise_now() + grace_sec;
	int was_stopping = sv->is_stopping, is_killing = 0, sig;

	while (supervise_reap(sv)) {
		if (!is_killing && supervise_now() >= deadline) {
			log_event("kill", "msg=\"services still running\"");
			is_killing = 1;
		}
		if (is_killing)
			supervise_signal_children(SIGKILL);
		sig = supervise_pause(sv, is_killing ? 100 : 1000);
		if ((sig == SIGTERM || sig == SIGINT) && was_stopping)
			deadline = 0;	/* asked twice: no more patience */
		was_stopping = sv->is_stopping;
	}
}

/* runsvdir died: its runsv processes, now ours, are stopped before another
 * runsvdir may start theirs again. */
static void
supervise_orphans(struct supervise *sv)
{
	if (sv->started != 0)
		log_event("orphans", "msg=\"stopping the services of the "
		    "dead runsvdir\"");
	supervise_signal_children(SIGTERM);
	supervise_drain(sv, SUPERVISE_ORPHAN_SEC);
	/* a runsvdir that dies at once is not restarted in a busy loop */
	if (supervise_now() - sv->started < 1 && !sv->is_stopping)
		supervise_pause(sv, 1000);
}

static _Noreturn void
supervise_stop(struct supervise *sv)
{
	log_event("stop", "svdir=%s", log_quote(sv->svdir));
	if (sv->runsvdir > 0)
		kill(sv->runsvdir, SIGHUP);	/* TERM to every runsv */
	else
		supervise_signal_children(SIGTERM);
	supervise_drain(sv, SUPERVISE_GRACE_SEC);
	log_event("stopped", "svdir=%s", log_quote(sv->svdir));
	exit(EXIT_DONE);
}

/* Tells each smtpd-NAME service's runsv to send its server HUP ('h' on
 * the control pipe). A service whose runsv is not up yet is skipped: it
 * will read the new configuration when it starts. */
static void
supervise_hup_servers(const struct supervise *sv)
{
	char control[PATH_MAX + 300];
	struct dirent *d;
	DIR *dp;
	int fd;

	if ((dp = opendir(sv->svdir)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL) {
		if (strncmp(d->d_name, "smtpd-", 6) != 0)
			continue;
		snprintf(control, sizeof control, "%s/%s/supervise/control",
		    sv->svdir, d->d_name);
		if ((fd = open(control, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
			continue;
		if (write(fd, "h", 1) != 1)
			log_event("warning", "service=%s msg=\"unable to send HUP\"",
			    d->d_name);
		close(fd);
	}
	closedir(dp);
}

static void
supervise_on(struct supervise *sv, int sig)
{
	if (sig == SIGTERM || sig == SIGINT)
		sv->is_stopping = 1;
	else if (sig == SIGHUP) {
		log_event("reload", "svdir=%s", log_quote(sv->svdir));
		if (supervise_rewrite(sv) < 0)
			log_event("warning", "msg=\"bh-runit failed: the "
			    "services stay as they were\"");
		else
			supervise_hup_servers(sv);
	}
	else if (sig == SIGCHLD)
		supervise_reap(sv);
}

static struct supervise supervise;

int
main(int argc, char **argv)
{
	struct supervise *sv = &supervise;

	log_init("supervise");
	if (argc != 1)
		die(EXIT_PERM, 0, "usage: bh-supervise");
	supervise_environment(sv);
	supervise_lock(sv);
	supervise_signals(sv);
	if (supervise_rewrite(sv) < 0)
		die(EXIT_TEMP, 0, "unable to write the services (bh-runit)");
	for (;;) {
		if (sv->is_stopping)
			supervise_stop(sv);
		if (sv->runsvdir == 0) {
			supervise_orphans(sv);
			if (!sv->is_stopping)
				supervise_runsvdir(sv);
			continue;
		}
		supervise_on(sv, sigwaitinfo(&sv->set, NULL));
	}
}
