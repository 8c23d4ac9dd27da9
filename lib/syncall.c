/*
 * syncall: fsync several descriptors at the same time (see syncall.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "syncall.h"

struct slot {
	pthread_t thread;
	int fd, has_work, err;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct slot slot[SYNCALL_MAX - 1];
	size_t nthreads, busy;
	pid_t pid;		/* threads belong to this process only */
} sa = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	PTHREAD_COND_INITIALIZER, { { 0 } }, 0, 0, 0 };

static void *
syncall_thread(void *arg)
{
	struct slot *s = arg;
	int fd, err;

	pthread_mutex_lock(&sa.mu);
	for (;;) {
		while (!s->has_work)
			pthread_cond_wait(&sa.work, &sa.mu);
		fd = s->fd;
		pthread_mutex_unlock(&sa.mu);
		err = fsync(fd) < 0 ? errno : 0;
		pthread_mutex_lock(&sa.mu);
		s->err = err;
		s->has_work = 0;
		if (--sa.busy == 0)
			pthread_cond_signal(&sa.done);
	}
	return NULL;
}

/* Helper threads for n - 1 descriptors: how many there are (after a
 * fork the parent's are gone). */
static size_t
syncall_threads(size_t want)
{
	sigset_t all, old;

	if (sa.pid != getpid()) {
		memset(sa.slot, 0, sizeof sa.slot);
		sa.nthreads = 0;
		sa.busy = 0;
		sa.pid = getpid();
	}
	if (sa.nthreads >= want)
		return sa.nthreads;	/* the usual case: no system call */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);	/* inherited by the thread */
	while (sa.nthreads < want && pthread_create(&sa.slot[sa.nthreads].thread,
	    NULL, syncall_thread, &sa.slot[sa.nthreads]) == 0)
		pthread_detach(sa.slot[sa.nthreads++].thread);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return sa.nthreads;
}

int
syncall(const int *fds, size_t n)
{
	size_t i, helpers = n > 1 ? n - 1 : 0;
	int err = 0;

	if (helpers > SYNCALL_MAX - 1)
		helpers = SYNCALL_MAX - 1;
	helpers = helpers > 0 ? syncall_threads(helpers) : 0;
	if (helpers > n - 1)
		helpers = n - 1;
	pthread_mutex_lock(&sa.mu);
	for (i = 0; i < helpers; i++) {
		sa.slot[i].fd = fds[i + 1];
		sa.slot[i].err = 0;
		sa.slot[i].has_work = 1;
	}
	sa.busy = helpers;
	pthread_cond_broadcast(&sa.work);
	pthread_mutex_unlock(&sa.mu);
	/* ours: the first, and any no thread could take */
	for (i = 0; i < n; i++)
		if ((i == 0 || i > helpers) && fsync(fds[i]) < 0 && err == 0)
			err = errno;
	pthread_mutex_lock(&sa.mu);
	while (sa.busy > 0)
		pthread_cond_wait(&sa.done, &sa.mu);
	for (i = 0; i < helpers; i++)
		if (sa.slot[i].err != 0 && err == 0)
			err = sa.slot[i].err;
	pthread_mutex_unlock(&sa.mu);
	errno = err;
	return err ? -1 : 0;
}
