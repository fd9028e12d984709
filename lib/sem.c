/*
 * sem.c: counting semaphores with exact per-worker permit accounting.
 *
 * The semaphore is one 64-bit word: the low half is the count (bit 31:
 * "waiters may sleep", the futex word), the high half is the tag of a worker
 * in the middle of an update (0 = none). A change that must also update the
 * worker's held-permit record (struct wr__sync_rec) goes:
 *
 *   intent {op, sem, n, held before, entry}   (own slot, before anything)
 *   CAS word (count, 0)      -> (count -+ n, me)       the commit
 *   held[entry] = before +- n                          own slot
 *   store word (count -+ n, 0)                          release
 *
 * so a reclaimer that finds the dead worker's tag in the word knows the CAS
 * happened and recomputes the held count from the intent; otherwise the
 * held record is the truth. Others never wait on a live updater for more
 * than those two stores (they spin with sched_yield); a dead updater's tag
 * is cleared by wr_sync_reclaim. A release of permits the worker does not
 * hold (a signal) is a single CAS.
 *
 * Waiting: set the waiters bit by CAS, then futex-wait on the low half with
 * that value; a releaser that clears the bit wakes every waiter (they set
 * it again if they still cannot proceed). Both sides' CASes are seq_cst,
 * which is the fence the lost-wakeup trap needs.
 */
#include "sync.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>

#define SEM_W 0x80000000u

struct wr__sem {
  uint32_t magic;
  uint32_t initial;
  _Atomic uint64_t word;
  uint8_t pad[48];
};
_Static_assert(sizeof(struct wr__sem) == 64, "semaphore size");
_Static_assert(offsetof(struct wr__sem, word) == 8, "semaphore word offset");

struct wr_sem {
  struct wr__handle h;
};

static inline uint32_t lo(uint64_t w) { return (uint32_t)w; }
static inline uint32_t hi(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint64_t mk(uint32_t l, uint32_t h) { return (uint64_t)h << 32 | l; }

static void sem_init(void *obj, const void *arg) {
  struct wr__sem *s = obj;
  s->magic = WR__MAGIC_SEM;
  s->initial = *(const uint32_t *)arg;
  atomic_init(&s->word, s->initial);
}

int wr_sem_create(wr_arena *a, const char *name, uint32_t value) {
  if (value > WR_SEM_MAX) return -WR_EINVAL;
  return wr__obj_create(a, name, WR_KIND_SEM, sizeof(struct wr__sem), sem_init, &value, NULL);
}

int wr_sem_open(wr_arena *a, const char *name, wr_sem **out) {
  return wr__obj_open(a, name, WR_KIND_SEM, WR__MAGIC_SEM, sizeof(struct wr__sem),
                      (struct wr__handle **)out);
}

void wr_sem_close(wr_sem *s) { free(s); }

/* This worker's held entry for the semaphore at off, or a fresh one when
 * create is set; -1 if none (or the table is full). */
static int held_entry(struct wr__sync_rec *r, wr_off_t off, bool create) {
  int empty = -1;
  for (int i = 0; i < WR__SYNC_HELD; i++) {
    uint64_t o = atomic_load_explicit(&r->held[i].obj, memory_order_relaxed);
    if (o == off) return i;
    if (empty < 0 && (o == 0 || atomic_load_explicit(&r->held[i].count, memory_order_relaxed) == 0))
      empty = i;
  }
  if (!create || empty < 0) return -1;
  atomic_store_explicit(&r->held[empty].count, 0, memory_order_relaxed);
  atomic_store_explicit(&r->held[empty].obj, off, memory_order_relaxed);
  return empty;
}

static inline void intent_open(struct wr__intent *in, uint32_t op, wr_off_t obj, uint64_t n,
                               uint64_t before, uint32_t entry) {
  in->obj = obj;
  in->arg = n;
  in->arg2 = before;
  in->phase = entry;
  /* Only the reclaimer reads it, after this process died: release orders
   * the fields before op for it (pairs with its load of op). */
  atomic_store_explicit(&in->op, op, memory_order_release);
}

static inline void intent_close(struct wr__intent *in) {
  atomic_store_explicit(&in->op, WR__OP_NONE, memory_order_release);
}

int wr_sem_acquire(wr_sem *sh, uint32_t n, int64_t timeout_ns) {
  wr_arena *a = sh->h.a;
  struct wr__sem *s = sh->h.obj;
  if (!a->tag || n == 0 || n > WR_SEM_MAX) return -WR_EINVAL;
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  int e = held_entry(r, sh->h.off, true);
  if (e < 0) return -WR_ENOMEM;
  struct wr__intent *in = &a->slots[a->slot].intent;
  struct timespec ts;
  const struct timespec *dl = NULL;
  bool dl_set = false;
  uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
  for (;;) {
    uint32_t cnt = lo(w) & ~SEM_W;
    if (hi(w) != 0) { /* an update in progress: two stores away */
      sched_yield();
      w = atomic_load_explicit(&s->word, memory_order_relaxed);
      continue;
    }
    if (cnt >= n) {
      uint32_t before = atomic_load_explicit(&r->held[e].count, memory_order_relaxed);
      intent_open(in, WR__OP_SEM_ACQUIRE, sh->h.off, n, before, (uint32_t)e);
      WR_CRASH_POINT(SEM_ACQ_AFTER_INTENT);
      uint64_t locked = mk(lo(w) - n, a->tag);
      /* the commit; seq_cst (pairs with the waiter's CAS of SEM_W) */
      if (!atomic_compare_exchange_weak(&s->word, &w, locked)) continue;
      WR_CRASH_POINT(SEM_ACQ_AFTER_CAS);
      atomic_store_explicit(&r->held[e].count, before + n, memory_order_relaxed);
      WR_CRASH_POINT(SEM_ACQ_AFTER_HELD);
      /* pairs with the acquire (CAS) of the next updater */
      atomic_store_explicit(&s->word, mk(lo(locked), 0), memory_order_release);
      WR_CRASH_POINT(SEM_ACQ_AFTER_UNLOCK);
      intent_close(in);
      return 0;
    }
    if (timeout_ns == 0) return -WR_EAGAIN;
    if (!dl_set) {
      dl = wr__deadline(timeout_ns, &ts);
      dl_set = true;
    }
    if (!(lo(w) & SEM_W)) {
      if (!atomic_compare_exchange_weak(&s->word, &w, w | SEM_W)) continue;
      w |= SEM_W;
    }
    wr__wait_mark(a, sh->h.off, WR_KIND_SEM);
    int rc = wr__futex_wait(wr__lo32(&s->word), lo(w), dl);
    wr__wait_clear(a);
    if (rc == -WR_ETIMEDOUT || rc == -WR_EINTR) return rc;
    w = atomic_load_explicit(&s->word, memory_order_relaxed);
  }
}

int wr_sem_try(wr_sem *s, uint32_t n) { return wr_sem_acquire(s, n, 0); }

int wr_sem_release(wr_sem *sh, uint32_t n) {
  wr_arena *a = sh->h.a;
  struct wr__sem *s = sh->h.obj;
  if (!a->tag || n == 0 || n > WR_SEM_MAX) return -WR_EINVAL;
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  int e = held_entry(r, sh->h.off, false);
  uint32_t before = e < 0 ? 0 : atomic_load_explicit(&r->held[e].count, memory_order_relaxed);
  struct wr__intent *in = &a->slots[a->slot].intent;
  uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
  for (;;) {
    if (hi(w) != 0) {
      sched_yield();
      w = atomic_load_explicit(&s->word, memory_order_relaxed);
      continue;
    }
    uint32_t cnt = lo(w) & ~SEM_W;
    if (cnt + (uint64_t)n > WR_SEM_MAX) return -WR_EOVERFLOW;
    /* The waiters bit is cleared: every waiter is woken below. */
    if (before == 0) { /* a gift: nothing to account, one CAS */
      if (!atomic_compare_exchange_weak(&s->word, &w, mk(cnt + n, 0))) continue;
      break;
    }
    intent_open(in, WR__OP_SEM_RELEASE, sh->h.off, n, before, (uint32_t)e);
    WR_CRASH_POINT(SEM_REL_AFTER_INTENT);
    if (!atomic_compare_exchange_weak(&s->word, &w, mk(cnt + n, a->tag))) continue;
    WR_CRASH_POINT(SEM_REL_AFTER_CAS);
    atomic_store_explicit(&r->held[e].count, n < before ? before - n : 0, memory_order_relaxed);
    WR_CRASH_POINT(SEM_REL_AFTER_HELD);
    /* pairs with the acquire (CAS) of the next updater */
    atomic_store_explicit(&s->word, mk(cnt + n, 0), memory_order_release);
    WR_CRASH_POINT(SEM_REL_AFTER_UNLOCK);
    intent_close(in);
    break;
  }
  if (lo(w) & SEM_W) wr__futex_wake(wr__lo32(&s->word), INT_MAX);
  return 0;
}

int wr_sem_value(const wr_sem *sh) {
  const struct wr__sem *s = sh->h.obj;
  return (int)(lo(atomic_load(&s->word)) & ~SEM_W);
}

int wr_sem_held(const wr_sem *sh) {
  wr_arena *a = sh->h.a;
  if (!a->tag) return 0;
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  int e = held_entry(r, sh->h.off, false);
  return e < 0 ? 0 : (int)atomic_load(&r->held[e].count);
}

/* Return the dead worker T's permits to every semaphore still bound. */
uint64_t wr__sem_reclaim(wr_arena *a, uint32_t slot, wr_tag T) {
  struct wr__sync_rec *r = wr__sync_rec(a, slot);
  struct wr__intent *in = &a->slots[slot].intent;
  /* pairs with the release store of op in intent_open */
  uint32_t op = atomic_load_explicit(&in->op, memory_order_acquire);
  uint64_t total = 0;
  for (uint32_t d = 0; d < WR__DIR_ENTRIES; d++) {
    wr_off_t off;
    struct wr__sem *s = wr__obj_at(a, d, WR_KIND_SEM, WR__MAGIC_SEM, sizeof *s, &off);
    if (!s) continue;
    int e = held_entry(r, off, false);
    uint64_t held = e < 0 ? 0 : atomic_load(&r->held[e].count);
    uint64_t w = atomic_load(&s->word);
    bool mine = hi(w) == T;
    if (mine && (op == WR__OP_SEM_ACQUIRE || op == WR__OP_SEM_RELEASE) && in->obj == off) {
      /* The CAS happened; the held store may not have: recompute it. */
      uint64_t n = in->arg, before = in->arg2;
      held = op == WR__OP_SEM_ACQUIRE ? before + n : (n < before ? before - n : 0);
    }
    if (held > WR_SEM_MAX) held = WR_SEM_MAX; /* a scribbled record */
    for (;;) {
      if (hi(w) != 0 && hi(w) != T) { /* a live updater: two stores away */
        sched_yield();
        w = atomic_load(&s->word);
        continue;
      }
      uint64_t cnt = (lo(w) & ~SEM_W) + held;
      if (cnt > WR_SEM_MAX) cnt = WR_SEM_MAX;
      if (atomic_compare_exchange_weak(&s->word, &w, mk((uint32_t)cnt, 0))) break;
    }
    total += held;
    if (e >= 0) {
      atomic_store(&r->held[e].count, 0);
      atomic_store(&r->held[e].obj, 0);
    }
    wr__futex_wake(wr__lo32(&s->word), INT_MAX); /* lost wake-ups of a dead releaser too */
  }
  return total;
}

uint32_t wr__sem_holders(const wr_arena *a, wr_off_t off, uint32_t *slots, uint32_t n) {
  uint32_t k = 0;
  struct wr__sem *sem = wr__ptr_checked(a, off, sizeof *sem);
  /* Permits are available: the waiter is about to proceed, nobody blocks it. */
  if (!sem || sem->magic != WR__MAGIC_SEM || (lo(atomic_load(&sem->word)) & ~SEM_W) > 0) return 0;
  for (uint32_t s = 0; s < WR_MAX_SLOTS && k < n; s++) {
    uint32_t st = atomic_load(&a->slots[s].state);
    if (st != WR_SLOT_LIVE) continue;
    const struct wr__sync_rec *r = wr__sync_rec(a, s);
    for (int i = 0; i < WR__SYNC_HELD; i++)
      if (atomic_load(&r->held[i].obj) == off && atomic_load(&r->held[i].count) > 0) {
        slots[k++] = s;
        break;
      }
  }
  return k;
}
