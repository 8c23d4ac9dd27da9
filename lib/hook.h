#ifndef BH_HOOK_H
#define BH_HOOK_H
/*
 * hook: runs an event sink program directly (execve, never a shell) with
 * facts in its environment, optionally the message on its stdin, and a time
 * limit; collects its exit code and the first line it prints.
 */
#include <stddef.h>

enum {
	HOOK_FAILED = -1,	/* could not be started */
	HOOK_TIMEOUT = -2,	/* killed at the deadline */
	HOOK_SIGNALED = -3,	/* died of a signal */
};

/* Runs path with argv { path, arg, NULL } and environment envp (NULL-ended
 * "NAME=value" strings). stdin_fd (-1: /dev/null) becomes its stdin as is
 * (the caller positions it). The first line of its stdout (without the line
 * end, cut to cap - 1) goes to line; the rest is read and dropped. After
 * timeout_sec the process group is killed. Returns the exit code 0-255, or
 * HOOK_FAILED, HOOK_TIMEOUT, HOOK_SIGNALED. */
int hook_run(const char *path, const char *arg, char *const envp[],
    int stdin_fd, int timeout_sec, char *line, size_t cap);

#endif
