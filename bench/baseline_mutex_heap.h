/* baseline_mutex_heap.h: the "single-mutex shared heap" baseline of the
 * heap benchmark: size-class free lists in shared memory behind one
 * process-shared pthread mutex, as a naive shared allocator would do it. */
#ifndef BASELINE_MUTEX_HEAP_H
#define BASELINE_MUTEX_HEAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct mheap mheap;
mheap *mheap_init(void *mem, size_t size); /* mem: MAP_SHARED */
void *mheap_alloc(mheap *h, size_t size);
void mheap_free(mheap *h, void *p);
#endif
