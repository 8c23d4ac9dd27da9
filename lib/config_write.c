/*
 * config_write: bh-config's writing of the databases (see config_write.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cdbout.h"
#include "config_check.h"
#include "config_directory.h"
#include "config_source.h"
#include "config_write.h"
#include "log.h"
#include "strtable.h"

/* ---- writing the databases ---- */

static struct cdbout outs[CONFIG_NFILES];
static int nouts;

/* A failed run leaves no NAME.cdb.tmp behind (die exits through here). */
static void
out_cleanup(void)
{
	int i;

	for (i = 0; i < nouts; i++)
		if (outs[i].tmp[0] != '\0')
			unlink(outs[i].tmp);
}

static void
write_settings(struct cdbout *o)
{
	struct config_file *fl = &config_files[CONFIG_SETTINGS];
	size_t i;

	for (i = 0; i < fl->n; i++)
		if (strtable_get(&config_settings_seen, fl->rec[i].word[0]) ==
		    &fl->rec[i])
			cdbout_put(o, fl->rec[i].word[0], fl->rec[i].word[1],
			    strlen(fl->rec[i].word[1]));
}

/* servers.cdb and connectors.cdb: PREFIX:NAME -> record, LIST -> names. */
static void
write_named(struct cdbout *o, int f, const char *prefix, const char *list)
{
	struct config_file *fl = &config_files[f];
	struct buf b = BUF_INIT, names_list = BUF_INIT;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		cdbout_blob_attrs(&b, &fl->rec[i].attrs, NULL);
		cdbout_putf(o, &b, "%s:%s", prefix, fl->rec[i].word[0]);
		cdbout_list_add(&names_list, fl->rec[i].word[0]);
	}
	cdbout_putf(o, &names_list, "%s", list);
	buf_free(&b);
	buf_free(&names_list);
}

static void
write_domains(struct cdbout *o)
{
	struct config_file *fl = &config_files[CONFIG_DOMAINS];
	struct buf b = BUF_INIT, dl = BUF_INIT, pl = BUF_INIT;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		struct source_record *r = &fl->rec[i];
		if (r->nword == 2) {
			cdbout_blob_attrs(&b, &r->attrs, NULL);
			cdbout_putf(o, &b, "policy:%s", r->word[1]);
			cdbout_list_add(&pl, r->word[1]);
			continue;
		}
		cdbout_blob_attrs(&b, &r->attrs, "type");
		cdbout_blob_add(&b, "type", attrs_get(&r->attrs, "type") ?
		    attrs_get(&r->attrs, "type") : "authoritative");
		cdbout_putf(o, &b, "domain:%s", r->word[0]);
		cdbout_list_add(&dl, r->word[0]);
	}
	cdbout_putf(o, &dl, "domains");
	cdbout_putf(o, &pl, "policies");
	buf_free(&b);
	buf_free(&dl);
	buf_free(&pl);
}

/* A recipient's record: its attributes, with addresses= the whole list
 * (given and generated, lower case) and primary= its reply address. */
static void
write_entry(struct cdbout *o, const struct policy_entry *e, struct buf *b)
{
	struct buf list = BUF_INIT, pair = BUF_INIT;
	size_t i;

	cdbout_blob_attrs(b, &e->rec->attrs, "addresses");
	for (i = 0; i < e->naddr; i++)
		if (buf_printf(&list, "%s%s", i ? "," : "", e->addr[i]) < 0)
			die(EXIT_TEMP, ENOMEM, "out of memory");
	if (e->naddr > 0)
		cdbout_blob_add(b, "addresses", list.data);
	if (e->primary != NULL)
		cdbout_blob_add(b, "primary", e->primary);
	if (e->rewrite_from >= 0)
		cdbout_blob_add(b, "rewrite-from", e->rewrite_from ? "yes" : "no");
	cdbout_putf(o, b, "%s:%s", config_kinds[e->kind].name, e->name);
	cdbout_list_add(&pair, config_kinds[e->kind].name);
	cdbout_list_add(&pair, e->name);
	for (i = 0; i < e->naddr; i++)
		cdbout_putf(o, &pair, "addr:%s", e->addr[i]);
	buf_free(&list);
	buf_free(&pair);
}

static void
write_directory(struct cdbout *o)
{
	struct buf b = BUF_INIT, lists[POLICY_NKINDS] = { BUF_INIT, BUF_INIT,
	    BUF_INIT, BUF_INIT };
	size_t i;
	int k;

	for (i = 0; i < config_recips.n; i++) {
		write_entry(o, &config_recips.v[i], &b);
		cdbout_list_add(&lists[config_recips.v[i].kind],
		    config_recips.v[i].name);
	}
	for (k = 0; k < POLICY_NKINDS; k++) {
		cdbout_putf(o, &lists[k], "%s", config_kinds[k].plural);
		buf_free(&lists[k]);
	}
	buf_free(&b);
}

static void
write_filters(struct cdbout *o)
{
	struct config_file *fl = &config_files[CONFIG_FILTERS];
	size_t i;

	for (i = 0; i < fl->n; i++)
		cdbout_putf(o, NULL, "filter:%s", fl->rec[i].word[0]);
}

static void
write_one(int f)
{
	struct cdbout *o = &outs[nouts++];

	cdbout_start(o, config_dir, config_files[f].name,
	    config_files[f].mode ? config_files[f].mode : 0644);

	switch (f) {
	case CONFIG_SETTINGS: write_settings(o); break;
	case CONFIG_SERVERS: write_named(o, f, "server", "servers"); break;
	case CONFIG_DOMAINS: write_domains(o); break;
	case CONFIG_DIRECTORY: write_directory(o); break;
	case CONFIG_CONNECTORS: write_named(o, f, "connector", "connectors"); break;
	case CONFIG_FILTERS: write_filters(o); break;
	}
	cdbout_finish(o);
}

/* Every database is written aside first; only then are they renamed into
 * place, so a failure part way leaves every old one. */
void
config_write_all(void)
{
	int f, i, dfd;

	atexit(out_cleanup);
	for (f = 0; f < CONFIG_NFILES; f++)
		if (config_files[f].is_wanted)
			write_one(f);
	if (nouts == 0)
		return;		/* nothing stale */
	for (i = 0; i < nouts; i++) {
		if (rename(outs[i].tmp, outs[i].path) < 0)
			die(EXIT_TEMP, errno, "unable to rename %s", outs[i].tmp);
		outs[i].tmp[0] = '\0';
	}
	if ((dfd = open(config_dir, O_RDONLY | O_DIRECTORY)) < 0 ||
	    fsync(dfd) < 0)
		die(EXIT_TEMP, errno, "unable to sync %s", config_dir);
	close(dfd);
}
