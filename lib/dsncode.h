#ifndef BH_DSNCODE_H
#define BH_DSNCODE_H
/*
 * dsncode: the table of enhanced status codes (RFC 3463) with a plain
 * explanation and a suggested fix for each, after the NDR table of the
 * Exchange 2000 SMTP book, which delivery reports quote (dsn.h includes
 * this: its names keep the dsn_ prefix their callers know).
 */

/* A code of the table: what it means and what the sender can do. */
struct dsn_code {
	const char *code;	/* "5.1.1"; "5.1.x"-style class rows end the table */
	const char *meaning;
	const char *fix;
};

/* The entry for an enhanced status code: the exact code when the table has
 * it, else the row for its class and subject (5.1.*), else for its class
 * (2, 4, 5). Never NULL. */
const struct dsn_code *dsn_code_find(const char *status);

/* 1 when s is an enhanced status code "C.S.D" (C 2, 4 or 5; S up to 3
 * digits; D up to 3 digits), else 0. */
int dsn_status_valid(const char *s);

#endif
