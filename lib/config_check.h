#ifndef BH_CONFIG_CHECK_H
#define BH_CONFIG_CHECK_H
/*
 * config_check: bh-config's checks of the settings, servers, domains,
 * connectors and filters sources, each record on its own, and the checks
 * that span files (a policy domain equal to a server's FQDN, a connector's
 * source= naming no server). Errors go to config_error_at.
 */
#include "strtable.h"

/* settings key -> its record (the last one given), for settings.cdb */
extern struct strtable config_settings_seen;

void config_check_settings(void);
void config_check_servers(void);
void config_check_domains(void);
void config_check_connectors(void);
void config_check_filters(void);

/* after config_apply_policies (lib/config_directory.h) */
void config_check_policy_hosts(void);
void config_check_connector_sources(void);

#endif
