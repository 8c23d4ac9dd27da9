#include <string.h>
#include <strings.h>

#include "addrspace.h"
#include "attr.h"

enum { ITEM_MAX = 512 };

int
addrspace_match(const char *space, const char *domain)
{
	size_t slen = strlen(space), dlen = strlen(domain);

	if (strcmp(space, "*") == 0)
		return 0;
	if (strncmp(space, "*.", 2) == 0) {
		/* "*.mil": the suffix ".mil" with at least one label before */
		if (dlen <= slen - 1 ||
		    strcasecmp(domain + dlen - (slen - 1), space + 1) != 0)
			return -1;
		return 2 * (int)(slen - 1);
	}
	if (strcasecmp(space, domain) == 0)
		return 2 * (int)dlen + 1;
	return -1;
}

int
addrspace_best(const char *list, const char *domain)
{
	char item[ITEM_MAX];
	int best = -1, m;

	if (list == NULL)
		return -1;
	while (attr_list_next(&list, item, sizeof item))
		if ((m = addrspace_match(item, domain)) > best)
			best = m;
	return best;
}
