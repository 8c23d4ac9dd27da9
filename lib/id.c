#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

#include "id.h"

void
id_new(char *buf, size_t cap)
{
	static unsigned counter;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(buf, cap, "%010lld%06ld-%d-%u", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (int)getpid(), counter++);
}
