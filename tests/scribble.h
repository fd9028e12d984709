/*
 * scribble.h: where a hostile worker writes garbage over the arena (its own
 * slot, the page and directory locks, span descriptors, the first span's tag
 * arrays, directory entries, a lane's descriptor and ring). Shared by
 * test_hostile.c and warren-test-worker's `scribble` mode, so that both
 * attack the same metadata.
 */
#ifndef WR_TEST_SCRIBBLE_H
#define WR_TEST_SCRIBBLE_H

#include "internal.h"

/* The target that random word r picks, and its size in *room (NULL: none,
 * the picked lane does not exist); nobj span descriptors or directory
 * entries are in reach. */
static inline uint8_t *scribble_target(wr_arena *a, uint64_t r, uint32_t nobj, size_t *room) {
  switch (r % 7) {
  case 0:
    *room = sizeof(struct wr__slot);
    return (uint8_t *)&a->slots[a->slot];
  case 1:
    *room = 128;
    return (uint8_t *)&a->hdr->page_lock;
  case 2:
    *room = 128;
    return (uint8_t *)&a->hdr->dir_lock;
  case 3:
    *room = nobj * sizeof(struct wr__span);
    return (uint8_t *)a->spans;
  case 4:
    *room = 4096;
    return a->heap; /* tag arrays of the first span */
  case 5:
    *room = nobj * sizeof(struct wr__dir_entry);
    return (uint8_t *)a->dir;
  default:
    *room = 512;
    return wr__ptr_checked(a, atomic_load(&a->lanes[(r >> 16) % 4]), 512);
  }
}

#endif
