/*
 * names.c: the named-object directory. A fixed array of entries in the
 * arena binds a name to a heap block (a root, a channel, a semaphore...).
 * Binding moves the block's ownership to the entry in one CAS of its tag,
 * so a bound block survives its creator and is never reclaimed with it.
 *
 * Bind and unbind take the robust directory lock (names must stay unique);
 * lookups are lock-free. An entry's state is FREE -> BUSY -> BOUND -> BUSY
 * -> FREE. A locker that inherits the lock from a dead owner repairs BUSY
 * entries from the block's tag: owned by the entry -> BOUND (the bind had
 * committed), else FREE.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static bool entry_owns_block(const wr_arena *a, uint32_t e) {
  return wr__heap_owner(a, a->dir[e].off) == wr__tag_name(e);
}

void wr__dir_repair(wr_arena *a) {
  for (uint32_t e = 0; e < WR__DIR_ENTRIES; e++)
    if (atomic_load(&a->dir[e].state) == WR__DIR_BUSY)
      atomic_store_explicit(&a->dir[e].state, entry_owns_block(a, e) ? WR__DIR_BOUND : WR__DIR_FREE,
                            memory_order_release);
}

static void dir_lock(wr_arena *a) { wr__arena_lock(a, &a->hdr->dir_lock.m, wr__dir_repair); }
static void dir_unlock(wr_arena *a) { wr__robust_unlock(&a->hdr->dir_lock.m, false); }

/* Index of the BOUND entry named `name`, or -1. */
static int find(const wr_arena *a, const char *name) {
  for (uint32_t e = 0; e < WR__DIR_ENTRIES; e++) {
    const struct wr__dir_entry *d = &a->dir[e];
    /* pairs with the release store of BOUND in wr_name_bind */
    if (atomic_load_explicit(&d->state, memory_order_acquire) != WR__DIR_BOUND) continue;
    if (strncmp(d->name, name, WR_NAME_MAX) != 0) continue;
    if (atomic_load_explicit(&d->state, memory_order_acquire) == WR__DIR_BOUND) return (int)e;
  }
  return -1;
}

static int name_ok(const char *name) {
  if (!name || !*name) return -WR_EINVAL;
  return strnlen(name, WR_NAME_MAX) < WR_NAME_MAX ? 0 : -WR_ENAMETOOLONG;
}

int wr_name_bind(wr_arena *a, const char *name, int kind, wr_off_t off) {
  int rc = name_ok(name);
  if (rc) return rc;
  if (kind < WR_KIND_BLOCK || kind > WR_KIND_RWLOCK || !a->tag) return -WR_EINVAL;
  wr_tag owner = wr__heap_owner(a, off);
  if (!owner && !wr_block_size(a, wr_ptr(a, off))) return -WR_EINVAL;
  if (owner != a->tag) return -WR_ENOTOWNER;
  dir_lock(a);
  if (find(a, name) >= 0) {
    dir_unlock(a);
    return -WR_EEXIST;
  }
  for (uint32_t e = 0; e < WR__DIR_ENTRIES; e++) {
    struct wr__dir_entry *d = &a->dir[e];
    if (atomic_load(&d->state) != WR__DIR_FREE) continue;
    memset(d->name, 0, sizeof d->name);
    strcpy(d->name, name);
    d->kind = (uint32_t)kind;
    d->off = off;
    atomic_store(&d->state, WR__DIR_BUSY);
    WR_CRASH_POINT(NAME_BIND_AFTER_BUSY);
    rc = wr__heap_transfer(a, off, a->tag, wr__tag_name(e)); /* the commit */
    if (rc) {
      atomic_store(&d->state, WR__DIR_FREE);
      dir_unlock(a);
      return rc;
    }
    WR_CRASH_POINT(NAME_BIND_AFTER_TRANSFER);
    atomic_store_explicit(&d->state, WR__DIR_BOUND, memory_order_release);
    dir_unlock(a);
    return 0;
  }
  dir_unlock(a);
  return -WR_ENOMEM;
}

int wr_name_lookup(const wr_arena *a, const char *name, int *kind, wr_off_t *off) {
  int rc = name_ok(name);
  if (rc) return rc;
  int e = find(a, name);
  if (e < 0) return -WR_ENOENT;
  if (kind) *kind = (int)a->dir[e].kind;
  if (off) *off = a->dir[e].off;
  return 0;
}

int wr_name_unbind(wr_arena *a, const char *name) {
  int rc = name_ok(name);
  if (rc) return rc;
  dir_lock(a);
  int e = find(a, name);
  if (e < 0) {
    dir_unlock(a);
    return -WR_ENOENT;
  }
  struct wr__dir_entry *d = &a->dir[e];
  atomic_store(&d->state, WR__DIR_BUSY);
  if (d->kind == WR_KIND_MAP) wr__map_free_blocks(a, (uint32_t)e, d->off);
  rc = wr__heap_free_as(a, d->off, wr__tag_name((uint32_t)e));
  WR_CRASH_POINT(NAME_UNBIND_AFTER_FREE);
  atomic_store_explicit(&d->state, WR__DIR_FREE, memory_order_release);
  dir_unlock(a);
  return rc;
}

int wr_name_unique(wr_arena *a, const char *prefix, char *buf, size_t len) {
  for (;;) {
    uint64_t n = atomic_fetch_add(&a->hdr->unique_counter, 1) + 1;
    int w = snprintf(buf, len, "%s.%llu", prefix, (unsigned long long)n);
    if (w < 0 || (size_t)w >= len || (size_t)w >= WR_NAME_MAX) return -WR_ENAMETOOLONG;
    if (find(a, buf) < 0) return 0;
  }
}

bool wr__dir_entry_owns(const wr_arena *a, uint32_t e, wr_off_t off) {
  if (e >= WR__DIR_ENTRIES) return false;
  uint32_t st = atomic_load(&a->dir[e].state);
  if (st == WR__DIR_FREE) return false;
  /* A map owns the blocks stored as its values too (map.c). */
  return a->dir[e].off == off ||
         (a->dir[e].kind == WR_KIND_MAP && wr__map_owns(a, a->dir[e].off, off));
}
