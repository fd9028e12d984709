/*
 * sync.c: what the synchronisation objects share: creating and opening a
 * named object (a heap block bound to a name with its kind and a magic),
 * and wr_sync_reclaim, which returns everything a dead worker held.
 *
 * Reclaim walks the directory (a fixed array) rather than any list a dying
 * process may have half-updated, and touches only objects still bound, each
 * found through a bounds-checked offset. Each module repairs its own kind
 * (sem.c, mutex.c, mvar.c, map.c); then the slot's record and its sync
 * intent are cleared, so running it twice changes nothing more.
 */
#include "sync.h"

#include <stdlib.h>
#include <string.h>

int wr__obj_create(wr_arena *a, const char *name, int kind, size_t size,
                   void (*init)(void *obj, const void *arg), const void *arg, wr_off_t *off) {
  void *p;
  int rc = wr_calloc(a, 1, size, &p);
  if (rc) return rc;
  init(p, arg);
  wr_off_t o = wr_off(a, p);
  /* The bind's tag CAS publishes the initialised object (seq_cst), paired
   * with the acquire load of the entry state in wr_name_lookup. */
  rc = wr_name_bind(a, name, kind, o);
  if (rc) {
    wr_free(a, p);
    return rc;
  }
  if (off) *off = o;
  return 0;
}

void *wr__obj_at(const wr_arena *a, uint32_t e, int kind, uint32_t magic, size_t min_size,
                 wr_off_t *off) {
  const struct wr__dir_entry *d = &a->dir[e];
  /* pairs with the release store of BOUND in wr_name_bind */
  if (atomic_load_explicit(&d->state, memory_order_acquire) != WR__DIR_BOUND) return NULL;
  if (d->kind != (uint32_t)kind) return NULL;
  wr_off_t o = d->off;
  /* a heap block is 16-aligned: a scribbled entry may not be */
  uint32_t *p = wr__obj_checked(a, o, min_size);
  if (!p || *p != magic || wr_block_size(a, p) < min_size) return NULL;
  if (off) *off = o;
  return p;
}

int wr__obj_open(wr_arena *a, const char *name, int kind, uint32_t magic, size_t min_size,
                 struct wr__handle **out) {
  int k;
  wr_off_t off;
  int rc = wr_name_lookup(a, name, &k, &off);
  if (rc) return rc;
  if (k != kind) return -WR_EKIND;
  uint32_t *p = wr__obj_checked(a, off, min_size);
  if (!p || *p != magic || wr_block_size(a, p) < min_size) return -WR_ECORRUPT;
  struct wr__handle *h = calloc(1, sizeof *h);
  if (!h) return -ENOMEM;
  h->a = a;
  h->obj = p;
  h->off = off;
  h->kind = (uint32_t)kind;
  for (uint32_t e = 0; e < WR__DIR_ENTRIES; e++)
    if (a->dir[e].off == off && atomic_load(&a->dir[e].state) == WR__DIR_BOUND) h->entry = e;
  *out = h;
  return 0;
}

int wr__sync_wait(struct wr__waiter *w, int64_t timeout_ns, _Atomic uint32_t *word,
                  uint32_t expect) {
  if (!w->started) {
    w->started = true;
    w->dl = NULL;
    if (timeout_ns >= 0) {
      int64_t end = wr__now_ns() + timeout_ns;
      w->ts.tv_sec = end / 1000000000;
      w->ts.tv_nsec = end % 1000000000;
      w->dl = &w->ts;
    }
    w->token = wr__intr_begin();
  }
  if (wr__intr_since(w->token)) return -WR_EINTR;
  int rc = wr__futex_wait(word, expect, w->dl);
  if (rc == -ETIMEDOUT) return -WR_ETIMEDOUT;
  if (wr__intr_since(w->token)) return -WR_EINTR;
  return 0; /* woken, the word moved, a slice ended, or another signal */
}

int wr_sync_reclaim(wr_arena *a, uint32_t slot, uint32_t incarnation, uint64_t *permits) {
  int rc = wr__slot_reclaimable(a, slot, incarnation);
  if (rc) return rc;
  struct wr__slot *sl = &a->slots[slot];
  wr_tag T = wr__tag_worker(slot, incarnation);
  uint64_t n = 0;
  if ((atomic_load(&sl->incarnation) & WR__INC_MASK) == (incarnation & WR__INC_MASK)) {
    n = wr__sem_reclaim(a, slot, T);
    wr__mvar_reclaim(a, slot, T);
    wr__map_reclaim(a, slot, T);
    struct wr__sync_rec *r = wr__sync_rec(a, slot);
    memset(r, 0, sizeof *r);
    uint32_t op = atomic_load(&sl->intent.op);
    if (op >= WR__OP_SYNC_FIRST && op < WR__OP_SYNC_FIRST + 16)
      atomic_store(&sl->intent.op, WR__OP_NONE);
  }
  wr__mutex_reclaim(a, T); /* by tag: safe whatever the slot became */
  if (permits) *permits = n;
  return 0;
}
