/*
 * baseline_mutex_heap.c: a shared-memory allocator with one lock, written
 * for comparison only. Blocks carry a 16-byte header with their class;
 * free blocks sit on per-class singly linked lists (offsets from the heap
 * base, so that every process can follow them); a bump pointer carves new
 * blocks. Every alloc and free takes the one process-shared mutex.
 */
#include "baseline_mutex_heap.h"

#include <pthread.h>
#include <string.h>

#define NCLASS 32
struct mheap {
  pthread_mutex_t lock;
  uint64_t size, bump;
  uint64_t free_head[NCLASS];
};

static unsigned class_of(size_t size) {
  unsigned c = 0;
  while (((size_t)16 << c) < size) c++;
  return c;
}

mheap *mheap_init(void *mem, size_t size) {
  mheap *h = mem;
  memset(h, 0, sizeof *h);
  pthread_mutexattr_t at;
  pthread_mutexattr_init(&at);
  pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&h->lock, &at);
  h->size = size;
  h->bump = (sizeof *h + 15) & ~15ull;
  return h;
}

void *mheap_alloc(mheap *h, size_t size) {
  unsigned c = class_of(size + 16);
  uint8_t *base = (uint8_t *)h;
  void *p = NULL;
  pthread_mutex_lock(&h->lock);
  if (h->free_head[c]) {
    uint8_t *b = base + h->free_head[c];
    h->free_head[c] = *(uint64_t *)(b + 16);
    p = b + 16;
  } else if (h->bump + ((uint64_t)16 << c) <= h->size) {
    uint8_t *b = base + h->bump;
    h->bump += (uint64_t)16 << c;
    *(uint64_t *)b = c;
    p = b + 16;
  }
  pthread_mutex_unlock(&h->lock);
  return p;
}

void mheap_free(mheap *h, void *p) {
  uint8_t *b = (uint8_t *)p - 16;
  unsigned c = (unsigned)*(uint64_t *)b;
  pthread_mutex_lock(&h->lock);
  *(uint64_t *)p = h->free_head[c];
  h->free_head[c] = (uint64_t)(b - (uint8_t *)h);
  pthread_mutex_unlock(&h->lock);
}
