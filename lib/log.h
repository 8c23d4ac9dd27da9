#ifndef BH_LOG_H
#define BH_LOG_H
/*
 * log: one key=value line per event on stderr (svlogd files it), and the
 * error helper every program uses.
 */
#include <stdarg.h>

enum { EXIT_DONE = 0, EXIT_PERM = 100, EXIT_TEMP = 111 };

/* Names the program in every line: "stage=NAME". Its log-level category
 * (lib/loglevel.h) is the same name, but "smtp" for smtpd. */
void log_init(const char *stage);

/* Writes "stage=S event=EVENT " followed by the formatted rest and a newline,
 * in one write(2). Values that may hold spaces go through log_quote.
 * Events named fatal, error and warning are always written; the others
 * only when the stage's log level (settings log-level) is min or more. */
void log_event(const char *event, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like log_event, written only when the stage's log level is at least
 * level (LOGLEVEL_MEDIUM: per recipient and connection; LOGLEVEL_MAX: the
 * protocol and every lookup). */
void log_detail(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a fatal line (msg, and error=strerror(err) when err != 0) and exits. */
_Noreturn void die(int code, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns s as a log value: bare when it is a plain word, else double-quoted
 * with '"' and '\' escaped and control bytes shown as '?'. The result lives
 * in one of 8 rotating static buffers of 1024 bytes (longer values are cut). */
const char *log_quote(const char *s);

#endif
