#ifndef BH_ID_H
#define BH_ID_H
/*
 * id: message ids, unique on this host, sortable by arrival and safe as file
 * names: 16 digits of time (seconds and microseconds), then "-PID-N".
 */
#include <stddef.h>

enum { ID_MAX = 64 };

void id_new(char *buf, size_t cap);

#endif
