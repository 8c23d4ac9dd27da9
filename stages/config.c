/*
 * bh-config: check the configuration sources as one set and compile them
 * into constant databases.
 *
 * usage   bh-config [-n] [SOURCE...]
 * reads   DIR/settings servers domains directory connectors filters, all
 *         six every time (a missing one reads as empty); DIR is the folder
 *         of the SOURCE arguments (the current one for bare names), or
 *         $BH_ROOT/cdb without arguments
 * writes  DIR/NAME.cdb for each SOURCE named (without arguments: each whose
 *         .cdb is missing or older than its source), through NAME.cdb.tmp,
 *         fsync and rename, so a reader sees the old or the new database;
 *         -n checks only and writes nothing
 * exit    0 written; 100 bad usage, or errors in the sources (each printed
 *         as FILE:LINE: message on stderr) and nothing written; 111 system
 *         trouble (nothing renamed into place)
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config_check.h"
#include "config_directory.h"
#include "config_source.h"
#include "config_write.h"
#include "log.h"
#include "root.h"

/* ---- arguments ---- */

static int
file_index(const char *name)
{
	int f;

	for (f = 0; f < CONFIG_NFILES; f++)
		if (strcmp(config_files[f].name, name) == 0)
			return f;
	return -1;
}

/* Each SOURCE names a file in one folder: "directory", "cdb/directory"
 * or "directory.cdb" (make's target). */
static void
want(const char *arg)
{
	const char *slash = strrchr(arg, '/');
	char name[64], folder[PATH_MAX];
	size_t n;
	int f;

	snprintf(folder, sizeof folder, "%.*s", slash ? (int)(slash - arg) : 1,
	    slash ? arg : ".");
	if (slash == arg)
		snprintf(folder, sizeof folder, "/");
	if (config_dir[0] != '\0' && strcmp(config_dir, folder) != 0)
		die(EXIT_PERM, 0, "sources in two folders: %s and %s",
		    config_dir, folder);
	snprintf(config_dir, sizeof config_dir, "%s", folder);
	n = strlen(slash ? slash + 1 : arg);
	snprintf(name, sizeof name, "%s", slash ? slash + 1 : arg);
	if (n > 4 && n < sizeof name && strcmp(name + n - 4, ".cdb") == 0)
		name[n - 4] = '\0';
	if ((f = file_index(name)) < 0)
		die(EXIT_PERM, 0, "unknown source %s (settings, servers, domains, "
		    "directory, connectors or filters)", arg);
	config_files[f].is_wanted = 1;
}

/* Without arguments: every source newer than its database, or without one. */
static void
want_stale(void)
{
	char path[PATH_MAX + 8];
	struct stat src, db;
	int f;

	if (root_path(config_dir, sizeof config_dir, "cdb") < 0)
		die(EXIT_PERM, ENAMETOOLONG, "root path");
	for (f = 0; f < CONFIG_NFILES; f++) {
		snprintf(path, sizeof path, "%s/%s", config_dir,
		    config_files[f].name);
		if (stat(path, &src) < 0)
			continue;
		snprintf(path, sizeof path, "%s/%s.cdb", config_dir,
		    config_files[f].name);
		if (stat(path, &db) < 0 || db.st_mtim.tv_sec < src.st_mtim.tv_sec ||
		    (db.st_mtim.tv_sec == src.st_mtim.tv_sec &&
		    db.st_mtim.tv_nsec < src.st_mtim.tv_nsec))
			config_files[f].is_wanted = 1;
	}
	/* what each source feeds, as FEEDS_ in cdb/Makefile */
	if (config_files[CONFIG_SETTINGS].is_wanted ||
	    config_files[CONFIG_SERVERS].is_wanted ||
	    config_files[CONFIG_DIRECTORY].is_wanted)
		config_files[CONFIG_DOMAINS].is_wanted = 1;
	if (config_files[CONFIG_DOMAINS].is_wanted)
		config_files[CONFIG_DIRECTORY].is_wanted = 1;
	if (config_files[CONFIG_SERVERS].is_wanted)
		config_files[CONFIG_CONNECTORS].is_wanted = 1;
}

static void
check_all(void)
{
	int f;

	for (f = 0; f < CONFIG_NFILES; f++)
		config_load(f);
	config_check_settings();
	config_check_servers();
	config_check_domains();
	config_check_directory();
	config_check_connectors();
	config_check_filters();
	config_apply_policies();
	config_check_policy_hosts();
	config_check_connector_sources();
}

int
main(int argc, char **argv)
{
	int i = 1, is_check_only = 0;

	log_init("config");
	if (argc > 1 && strcmp(argv[1], "-n") == 0) {
		is_check_only = 1;
		i++;
	}
	if (i < argc && argv[i][0] == '-')
		die(EXIT_PERM, 0, "usage: bh-config [-n] [SOURCE...]");
	for (; i < argc; i++)
		want(argv[i]);
	if (config_dir[0] == '\0')
		want_stale();
	check_all();
	if (config_nerrors > 0) {
		config_errors_print();
		return EXIT_PERM;
	}
	if (!is_check_only)
		config_write_all();
	return EXIT_DONE;
}
