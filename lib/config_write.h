#ifndef BH_CONFIG_WRITE_H
#define BH_CONFIG_WRITE_H
/*
 * config_write: bh-config's writing of the databases: NAME.cdb for each
 * source marked is_wanted, all written aside first, then renamed into
 * place and the folder synced, so a failure part way leaves every old one
 * (and no NAME.cdb.tmp: die exits through the cleanup). Dies EXIT_TEMP on
 * trouble.
 */

void config_write_all(void);

#endif
