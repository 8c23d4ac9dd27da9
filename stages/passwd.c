/*
 * bh-passwd: print a password hash for password= in cdb/directory.
 *
 * reads   the password: from the terminal without echo (asked twice), or
 *         the first line of standard input when it is not a terminal
 * writes  a SHA-512 crypt hash ("$6$" + 16 random salt characters) and a
 *         newline on standard output
 * exit    0 printed; 100 empty or mistyped password, or bad usage;
 *         111 no randomness or crypt failed
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"

enum { PASSWORD_MAX = 1024 };

/* Reads one line into buf without its line end. 0, or -1 on end of file
 * before any byte, or a line longer than cap - 2. */
static int
read_line(FILE *in, char *buf, size_t cap)
{
	size_t n;

	if (fgets(buf, cap, in) == NULL)
		return -1;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (n == cap - 1)
		return -1;		/* too long: refuse rather than cut */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/* Asks on the terminal with echo off; the terminal is restored before
 * returning, also when reading fails. */
static int
ask(const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	int rc;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(0, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(0, TCSAFLUSH, &quiet) < 0)
		return -1;
	rc = read_line(stdin, buf, cap);
	tcsetattr(0, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return rc;
}

static void
read_password(char *buf, size_t cap)
{
	char again[PASSWORD_MAX + 2];

	if (!isatty(0)) {
		if (read_line(stdin, buf, cap) < 0)
			die(EXIT_PERM, 0, "no password on standard input (one "
			    "line, at most %d bytes)", PASSWORD_MAX);
		return;
	}
	if (ask("Password: ", buf, cap) < 0 ||
	    ask("Again: ", again, sizeof again) < 0)
		die(EXIT_PERM, errno, "unable to read the password");
	if (strcmp(buf, again) != 0)
		die(EXIT_PERM, 0, "the passwords differ");
	explicit_bzero(again, sizeof again);
}

/* "$6$" and 16 characters of the crypt alphabet from the kernel's
 * random source. */
static void
make_salt(char *salt, size_t cap)
{
	static const char abc[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char random[16];
	size_t i;

	if (cap < sizeof random + 4 ||
	    getrandom(random, sizeof random, 0) != (ssize_t)sizeof random)
		die(EXIT_TEMP, errno, "unable to get random bytes");
	memcpy(salt, "$6$", 3);
	for (i = 0; i < sizeof random; i++)
		salt[3 + i] = abc[random[i] % 64];
	salt[3 + sizeof random] = '\0';
}

int
main(int argc, char **argv)
{
	char password[PASSWORD_MAX + 2], salt[32];
	struct crypt_data data;
	const char *hash;

	log_init("passwd");
	if (argc != 1)
		die(EXIT_PERM, 0, "usage: bh-passwd < password, or bh-passwd "
		    "on a terminal");
	read_password(password, sizeof password);
	if (password[0] == '\0')
		die(EXIT_PERM, 0, "empty password");
	make_salt(salt, sizeof salt);
	memset(&data, 0, sizeof data);
	hash = crypt_r(password, salt, &data);
	explicit_bzero(password, sizeof password);
	if (hash == NULL || hash[0] != '$')
		die(EXIT_TEMP, errno, "crypt failed");
	printf("%s\n", hash);
	return fflush(stdout) == 0 && !ferror(stdout) ? EXIT_DONE : EXIT_TEMP;
}
