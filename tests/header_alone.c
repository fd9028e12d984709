/* Compiled with -std=c11 -pedantic and nothing else: warren.h stands alone. */
#include "warren.h"

int header_alone_probe(void);
int header_alone_probe(void) { return WR_ENOMEM + (int)sizeof(wr_heap_stats); }
