#ifndef BH_ROOT_H
#define BH_ROOT_H
/*
 * root: where an instance lives. Every file of an instance is under its root:
 * $BH_ROOT, or else the directory above the one holding the executable.
 * Sibling programs are found in $BH_BIN, or else beside the executable.
 */
#include <stddef.h>

/* The root directory (absolute when derived from the executable). */
const char *root_dir(void);

/* The directory holding the bridgehead executables. */
const char *root_bindir(void);

/* Formats ROOT/<fmt> into buf. 0, or -1 with errno ENAMETOOLONG. */
int root_path(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats BINDIR/name into buf. 0, or -1 with errno ENAMETOOLONG. */
int root_prog(char *buf, size_t cap, const char *name);

#endif
