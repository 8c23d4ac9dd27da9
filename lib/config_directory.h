#ifndef BH_CONFIG_DIRECTORY_H
#define BH_CONFIG_DIRECTORY_H
/*
 * config_directory: bh-config's checks of the directory source (mailboxes,
 * contacts, groups and aliases: their names, their given addresses, the
 * names they refer to), collected into config_recips, and the recipient
 * policies of the domains source applied to them (lib/policy). Errors go
 * to config_error_at.
 */
#include "confspec.h"
#include "policy.h"

struct config_kind {
	const char *name, *plural;
	const struct confspec *spec;
};

extern const struct config_kind config_kinds[POLICY_NKINDS];
extern struct policy_dir config_recips;

void config_check_directory(void);
void config_apply_policies(void);

#endif
