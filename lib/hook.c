#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hook.h"

static _Noreturn void
hook_child(const char *path, const char *arg, char *const envp[],
    int stdin_fd, int out)
{
	char *argv[] = { (char *)path, (char *)arg, NULL };
	sigset_t none;
	int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);

	setpgid(0, 0);	/* so the deadline kills what it started too */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(126);
	execve(path, argv, envp);
	_exit(127);
}

/* Reads the child's output until EOF or the deadline: 0, or -1 timed out. */
static int
hook_collect(int fd, int timeout_sec, char *line, size_t cap)
{
	long long deadline = clock_ms() + timeout_sec * 1000LL;
	size_t n = 0;
	int is_done = 0;
	char buf[4096];

	line[0] = '\0';
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		long long left = deadline - clock_ms();
		ssize_t got;
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return -1;
		if ((got = read(fd, buf, sizeof buf)) < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		for (ssize_t i = 0; i < got && !is_done; i++) {
			if (buf[i] == '\n' || buf[i] == '\r')
				is_done = 1;
			else if (n + 1 < cap)
				line[n++] = buf[i];
		}
		line[n] = '\0';
	}
}

int
hook_run(const char *path, const char *arg, char *const envp[],
    int stdin_fd, int timeout_sec, char *line, size_t cap)
{
	int pipefd[2], status, is_late;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return HOOK_FAILED;
	if ((pid = fork()) < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return HOOK_FAILED;
	}
	if (pid == 0)
		hook_child(path, arg, envp, stdin_fd, pipefd[1]);
	close(pipefd[1]);
	is_late = hook_collect(pipefd[0], timeout_sec, line, cap) < 0;
	close(pipefd[0]);
	if (is_late) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return HOOK_FAILED;
	if (is_late)
		return HOOK_TIMEOUT;
	if (WIFSIGNALED(status))
		return HOOK_SIGNALED;
	return WEXITSTATUS(status) == 127 ? HOOK_FAILED : WEXITSTATUS(status);
}
