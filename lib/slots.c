/*
 * slots.c: the worker slot table. A slot is a worker position (the
 * supervisor maps each configured worker replica to one); each start of a
 * process in it is a new incarnation. State machine of a slot:
 *
 *   FREE --prepare--> RESERVED --enter--> LIVE --mark_dead--> DEAD
 *   FREE --claim----> LIVE                RESERVED --mark_dead--> DEAD
 *   DEAD --release (after reclaim)--> FREE
 *
 * Transitions are CASes on `state`; the incarnation is bumped before the
 * state leaves FREE, so a tag of an old incarnation never matches again.
 * A slot also carries the watchdog's heartbeat counter (internal.h
 * wr__beat): its own process bumps it, wr_slot_info_get reads it.
 */
#include "internal.h"

#include <unistd.h>

static int slot_ok(uint32_t slot) { return slot >= 1 && slot < WR_MAX_SLOTS; }

int wr_slot_prepare(wr_arena *a, uint32_t slot, uint32_t *incarnation) {
  if (!slot_ok(slot)) return -WR_EINVAL;
  struct wr__slot *s = &a->slots[slot];
  uint32_t st = WR_SLOT_FREE;
  if (!atomic_compare_exchange_strong(&s->state, &st, WR_SLOT_RESERVED)) return -WR_EAGAIN;
  uint32_t inc = atomic_load(&s->incarnation) + 1;
  if ((inc & WR__INC_MASK) == 0) inc++; /* keep tags of incarnation 0 unused */
  atomic_store(&s->pid, 0);
  atomic_store(&s->incarnation, inc);
  *incarnation = inc;
  return 0;
}

static void handle_become(wr_arena *a, uint32_t slot, uint32_t inc) {
  if (a->tag) wr__heap_detach(a);
  a->slot = slot;
  a->incarnation = inc;
  a->tag = wr__tag_worker(slot, inc);
}

int wr_slot_enter(wr_arena *a, uint32_t slot, uint32_t incarnation) {
  if (!slot_ok(slot)) return -WR_EINVAL;
  struct wr__slot *s = &a->slots[slot];
  if (atomic_load(&s->incarnation) != incarnation) return -WR_EINVAL;
  uint32_t st = WR_SLOT_RESERVED;
  if (!atomic_compare_exchange_strong(&s->state, &st, WR_SLOT_LIVE)) return -WR_EINVAL;
  atomic_store(&s->pid, getpid());
  handle_become(a, slot, incarnation);
  return 0;
}

int wr_slot_claim(wr_arena *a, uint32_t *slot) {
  for (uint32_t i = 1; i < WR_MAX_SLOTS; i++) {
    struct wr__slot *s = &a->slots[i];
    uint32_t st = WR_SLOT_FREE;
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != WR_SLOT_FREE) continue;
    if (!atomic_compare_exchange_strong(&s->state, &st, WR_SLOT_RESERVED)) continue;
    uint32_t inc = atomic_load(&s->incarnation) + 1;
    if ((inc & WR__INC_MASK) == 0) inc++;
    atomic_store(&s->incarnation, inc);
    atomic_store(&s->pid, getpid());
    atomic_store(&s->state, WR_SLOT_LIVE);
    handle_become(a, i, inc);
    if (slot) *slot = i;
    return 0;
  }
  return -WR_ENOSLOT;
}

int wr_slot_mark_dead(wr_arena *a, uint32_t slot, uint32_t incarnation) {
  if (!slot_ok(slot)) return -WR_EINVAL;
  struct wr__slot *s = &a->slots[slot];
  if (atomic_load(&s->incarnation) != incarnation) return -WR_EINVAL;
  uint32_t st = atomic_load(&s->state);
  while (st == WR_SLOT_LIVE || st == WR_SLOT_RESERVED)
    if (atomic_compare_exchange_weak(&s->state, &st, WR_SLOT_DEAD)) return 0;
  return st == WR_SLOT_DEAD ? 0 : -WR_EINVAL;
}

int wr_slot_release(wr_arena *a, uint32_t slot, uint32_t incarnation) {
  if (!slot_ok(slot)) return -WR_EINVAL;
  struct wr__slot *s = &a->slots[slot];
  if (atomic_load(&s->incarnation) != incarnation) return -WR_EINVAL;
  uint32_t st = WR_SLOT_DEAD;
  if (!atomic_compare_exchange_strong(&s->state, &st, WR_SLOT_FREE))
    return st == WR_SLOT_FREE ? 0 : -WR_EINVAL;
  atomic_store(&s->intent.op, WR__OP_NONE);
  atomic_store(&s->pid, 0);
  return 0;
}

int wr_slot_info_get(const wr_arena *a, uint32_t slot, wr_slot_info *info) {
  if (slot >= WR_MAX_SLOTS) return -WR_EINVAL;
  struct wr__slot *s = &a->slots[slot];
  info->slot = slot;
  info->incarnation = atomic_load(&s->incarnation);
  info->state = atomic_load(&s->state);
  info->pid = atomic_load(&s->pid);
  info->tag = wr__tag_worker(slot, info->incarnation);
  info->pad = 0;
  /* relaxed; pairs with the relaxed store in wr__beat (a value to compare) */
  info->heartbeat = atomic_load_explicit(&s->heartbeat, memory_order_relaxed);
  return 0;
}

wr_tag wr_self_tag(const wr_arena *a) { return a->tag; }
uint32_t wr_self_slot(const wr_arena *a) { return a->slot; }

int wr__slot_reclaimable(const wr_arena *a, uint32_t slot, uint32_t inc) {
  if (slot >= WR_MAX_SLOTS) return -WR_EINVAL;
  const struct wr__slot *s = &a->slots[slot];
  uint32_t st = atomic_load(&s->state);
  if (atomic_load(&s->incarnation) == inc && st != WR_SLOT_DEAD && st != WR_SLOT_FREE)
    return -WR_EAGAIN;
  return 0;
}

bool wr__worker_tag_live(const wr_arena *a, wr_tag t) {
  if (WR__TAG_KIND(t) != WR__TAGK_WORKER) return false;
  uint32_t slot = wr__tag_slot(t);
  if (slot >= WR_MAX_SLOTS) return false;
  struct wr__slot *s = &a->slots[slot];
  uint32_t st = atomic_load(&s->state);
  if (st != WR_SLOT_LIVE && st != WR_SLOT_RESERVED) return false;
  return (atomic_load(&s->incarnation) & WR__INC_MASK) == (t & WR__INC_MASK);
}
