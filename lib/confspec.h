#ifndef BH_CONFSPEC_H
#define BH_CONFSPEC_H
/*
 * confspec: what each configuration source may hold, attribute by
 * attribute (the tables bh-config checks against and the README
 * documents): the value type, whether it is a list, whether it is
 * required. Each table ends with a NULL name.
 */
#include "valuetype.h"

struct confspec {
	const char *name;
	unsigned char kind, is_list, is_required;	/* kind: enum valuetype */
	const char *choices;		/* VT_ENUM: "a|b|c" */
};

extern const struct confspec confspec_settings[];
extern const struct confspec confspec_server[];
extern const struct confspec confspec_domain[];
extern const struct confspec confspec_policy[];
extern const struct confspec confspec_mailbox[];
extern const struct confspec confspec_contact[];
extern const struct confspec confspec_group[];
extern const struct confspec confspec_alias[];
extern const struct confspec confspec_connector[];

/* The entry for attribute name in spec, or NULL. */
const struct confspec *confspec_find(const struct confspec *spec,
    const char *name);

/* Checks value (each item of a list). 0 good; -1 bad, with *item the
 * first bad item (valid until the next call) and *why what was expected,
 * or *why NULL for an empty item in a list. */
int confspec_check(const struct confspec *sp, const char *value,
    const char **item, const char **why);

#endif
