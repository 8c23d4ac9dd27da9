/* t/lib/failfsync.c: an LD_PRELOAD shim for the tests: fsync fails with
 * EIO for a descriptor whose path contains $BH_FAIL_FSYNC. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
fsync(int fd)
{
	static int (*real)(int);
	const char *want = getenv("BH_FAIL_FSYNC");
	char link[64], path[4096];
	ssize_t n;

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if (want != NULL && *want && (n = readlink(link, path, sizeof path - 1)) > 0) {
		path[n] = '\0';
		if (strstr(path, want) != NULL) {
			errno = EIO;
			return -1;
		}
	}
	return real(fd);
}
