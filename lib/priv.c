#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "priv.h"

int
priv_user(char *buf, unsigned cap)
{
	return conf_setting("user", NULL, buf, cap) == 1 && buf[0] != '\0';
}

void
priv_drop(void)
{
	struct passwd *pw;
	char user[64];

	if (geteuid() != 0 || !priv_user(user, sizeof user))
		return;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		die(EXIT_TEMP, errno, "settings user %s: no such account", user);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		die(EXIT_TEMP, errno, "unable to become %s", user);
	/* setuid from root is for good: make sure it cannot be undone */
	if (pw->pw_uid != 0 && setuid(0) == 0)
		die(EXIT_TEMP, 0, "still able to regain root after becoming %s", user);
}
