/*
 * sem.c: counting semaphores with exact per-worker permit accounting.
 *
 * The semaphore is one 64-bit word: the low half is the count (bit 31:
 * "waiters may sleep", the futex word), the high half is the tag of a worker
 * in the middle of an update (0 = none). A change that must also update the
 * worker's held-permit entry (struct wr__sync_held: count | pending, one
 * 64-bit word in its own slot) goes:
 *
 *   entry = (held, pending = +-d)                   own slot: "about to"
 *   CAS word (count, 0) -> (count -+ n, me)         the commit
 *   entry = (held +- d, 0)                          own slot, one store
 *   store word (count -+ n, 0)                      release
 *
 * A reclaimer that finds the dead worker's tag in the word knows the CAS
 * happened, so the entry's pending change (if still there) counts; without
 * the tag, either the CAS never happened or the entry was already settled,
 * so pending is ignored: held = count + (tag is T ? pending : 0). Exact at
 * every point, with no intent record. Others never wait on a live updater
 * for more than those two stores (they spin with sched_yield); a dead
 * updater's tag is settled by whoever finds its process gone (a reclaim
 * never waits for another reclaim), or by its own wr_sync_reclaim. A release
 * of permits the worker does not hold (a signal) is a single CAS.
 *
 * Waiting: set the waiters bit by CAS, then futex-wait on the low half with
 * that value; a releaser that clears the bit wakes every waiter (they set
 * it again if they still cannot proceed). Both sides' CASes are seq_cst,
 * which is the fence the lost-wakeup trap needs.
 */
#include "sync.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static inline uint32_t held_count(uint64_t st) { return (uint32_t)st; }
static inline int32_t held_pending(uint64_t st) { return (int32_t)(uint32_t)(st >> 32); }
static inline uint64_t held_mk(uint32_t count, int32_t pending) {
  return (uint64_t)(uint32_t)pending << 32 | count;
}

/* This worker's held entry for the semaphore at off, or a fresh one when
 * create is set; -1 if none (or the table is full). */
static int held_entry(struct wr__sync_rec *r, wr_off_t off, bool create) {
  int empty = -1;
  for (int i = 0; i < WR__SYNC_HELD; i++) {
    uint64_t o = atomic_load_explicit(&r->held[i].obj, memory_order_relaxed);
    if (o == off) return i;
    if (empty < 0 && (o == 0 || atomic_load_explicit(&r->held[i].state, memory_order_relaxed) == 0))
      empty = i;
  }
  if (!create || empty < 0) return -1;
  atomic_store_explicit(&r->held[empty].state, 0, memory_order_relaxed);
  atomic_store_explicit(&r->held[empty].obj, off, memory_order_relaxed);
  return empty;
}

/* The entry's stores are read by the reclaimer only after this process
 * died; the seq_cst CAS on the word orders "pending" before the commit. */
static inline void held_set(struct wr__sync_held *h, uint32_t count, int32_t pending) {
  atomic_store_explicit(&h->state, held_mk(count, pending), memory_order_relaxed);
}

/* held_entry, trying the handle's hint first (the common case). */
static inline int held_find(wr_sem *sh, struct wr__sync_rec *r, bool create) {
  uint32_t i = sh->h.hint;
  if (i < WR__SYNC_HELD && atomic_load_explicit(&r->held[i].obj, memory_order_relaxed) == sh->h.off)
    return (int)i;
  int e = held_entry(r, sh->h.off, create);
  if (e >= 0) sh->h.hint = (uint32_t)e;
  return e;
}

/* Is the process behind worker tag H gone (exited, killed, a zombie not
 * yet reaped), even if its slot is not marked dead yet? A supervisor learns
 * deaths one at a time, so a reclaim must not wait for a dead updater.
 * Slow (a syscall, maybe /proc): only called after spinning a while. */
static bool updater_gone(const wr_arena *a, wr_tag H) {
  uint32_t slot = wr__tag_slot(H);
  if (WR__TAG_KIND(H) != WR__TAGK_WORKER || slot >= WR_MAX_SLOTS) return true;
  if (!wr__worker_tag_live(a, H)) return true;
  pid_t pid = atomic_load(&a->slots[slot].pid);
  if (pid <= 0) return false;
  if (kill(pid, 0) < 0 && errno == ESRCH) return true;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return p && p[1] && (p[2] == 'Z' || p[2] == 'X');
}

/* The word carries the tag of an updater whose process is gone (it died
 * mid-update and its reclaim has not run yet, maybe queued behind the one
 * running now) or of no worker (a scribbled word): settle its entry as its
 * own reclaim would (its CAS happened, so a pending change counts) and
 * clear the tag. Idempotent: several may settle the same updater. */
static void settle_dead_updater(wr_arena *a, struct wr__sem *s, wr_off_t off, uint64_t w) {
  wr_tag H = wr__hi(w);
  uint32_t slot = wr__tag_slot(H);
  if (WR__TAG_KIND(H) == WR__TAGK_WORKER && slot < WR_MAX_SLOTS &&
      (atomic_load(&a->slots[slot].incarnation) & WR__INC_MASK) == (H & WR__INC_MASK)) {
    struct wr__sync_rec *r = wr__sync_rec(a, slot);
    int e = held_entry(r, off, false);
    if (e >= 0) {
      uint64_t st = atomic_load(&r->held[e].state);
      int64_t held = (int64_t)held_count(st) + held_pending(st);
      held_set(&r->held[e], held < 0 ? 0 : (uint32_t)held, 0);
    }
  }
  atomic_compare_exchange_strong(&s->word, &w, wr__mk(wr__lo(w), 0));
}

/* The word is locked by another updater: wait for it (two stores away), or
 * settle it if its process is gone. The reclaimer (bounded) also settles a
 * tag that stays put for ~2^20 yields: a stopped worker or a scribbled word
 * must not hang the supervisor (exactness is then best effort). Returns the
 * word reloaded. */
#define WR__RECLAIM_PATIENCE (1u << 20)
static uint64_t wait_updater(wr_arena *a, struct wr__sem *s, wr_off_t off, uint64_t w,
                             uint32_t *spins, bool bounded) {
  ++*spins;
  if ((*spins % 64 == 0 && updater_gone(a, wr__hi(w))) ||
      (bounded && *spins >= WR__RECLAIM_PATIENCE))
    settle_dead_updater(a, s, off, w);
  else
    sched_yield();
  return atomic_load_explicit(&s->word, memory_order_relaxed);
}

int wr_sem_acquire(wr_sem *sh, uint32_t n, int64_t timeout_ns) {
  wr_arena *a = sh->h.a;
  struct wr__sem *s = sh->h.obj;
  if (!a->tag || n == 0 || n > WR_SEM_MAX) return -WR_EINVAL;
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  int e = held_find(sh, r, true);
  if (e < 0) return -WR_ENOMEM;
  struct wr__sync_held *he = &r->held[e];
  uint32_t before = held_count(atomic_load_explicit(&he->state, memory_order_relaxed));
  if (before + (uint64_t)n > WR_SEM_MAX) return -WR_EOVERFLOW;
  struct wr__waiter wt = {.started = false};
  uint32_t spins = 0;
  uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
  for (;;) {
    uint32_t cnt = wr__lo(w) & ~SEM_W;
    if (wr__hi(w) != 0) { /* an update in progress */
      w = wait_updater(a, s, sh->h.off, w, &spins, false);
      continue;
    }
    if (cnt >= n) {
      held_set(he, before, (int32_t)n);
      WR_CRASH_POINT(SEM_ACQ_AFTER_PENDING);
      uint64_t locked = wr__mk(wr__lo(w) - n, a->tag);
      /* the commit; seq_cst (pairs with the waiter's CAS of SEM_W) */
      if (!atomic_compare_exchange_weak(&s->word, &w, locked)) continue;
      WR_CRASH_POINT(SEM_ACQ_AFTER_CAS);
      held_set(he, before + n, 0);
      WR_CRASH_POINT(SEM_ACQ_AFTER_HELD);
      /* pairs with the acquire (CAS) of the next updater */
      atomic_store_explicit(&s->word, wr__mk(wr__lo(locked), 0), memory_order_release);
      WR_CRASH_POINT(SEM_ACQ_AFTER_UNLOCK);
      return 0;
    }
    held_set(he, before, 0); /* no change in flight while we wait */
    if (timeout_ns == 0) return -WR_EAGAIN;
    if (!(wr__lo(w) & SEM_W)) {
      if (!atomic_compare_exchange_weak(&s->word, &w, w | SEM_W)) continue;
      w |= SEM_W;
    }
    wr__wait_mark(a, sh->h.off, WR_KIND_SEM);
    int rc = wr__sync_wait(&wt, timeout_ns, wr__lo32(&s->word), wr__lo(w));
    wr__wait_clear(a);
    if (rc) return rc;
    w = atomic_load_explicit(&s->word, memory_order_relaxed);
  }
}

int wr_sem_try(wr_sem *s, uint32_t n) { return wr_sem_acquire(s, n, 0); }

int wr_sem_release(wr_sem *sh, uint32_t n) {
  wr_arena *a = sh->h.a;
  struct wr__sem *s = sh->h.obj;
  if (!a->tag || n == 0 || n > WR_SEM_MAX) return -WR_EINVAL;
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  int e = held_find(sh, r, false);
  struct wr__sync_held *he = e < 0 ? NULL : &r->held[e];
  uint32_t before = he ? held_count(atomic_load_explicit(&he->state, memory_order_relaxed)) : 0;
  uint32_t d = n < before ? n : before; /* permits given back; the rest is a gift */
  uint32_t spins = 0;
  uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
  for (;;) {
    if (wr__hi(w) != 0) {
      w = wait_updater(a, s, sh->h.off, w, &spins, false);
      continue;
    }
    uint32_t cnt = wr__lo(w) & ~SEM_W;
    if (cnt + (uint64_t)n > WR_SEM_MAX) {
      if (he) held_set(he, before, 0);
      return -WR_EOVERFLOW;
    }
    /* The waiters bit is cleared: every waiter is woken below. */
    if (d == 0) { /* a gift: nothing to account, one CAS */
      if (!atomic_compare_exchange_weak(&s->word, &w, wr__mk(cnt + n, 0))) continue;
      break;
    }
    held_set(he, before, -(int32_t)d);
    WR_CRASH_POINT(SEM_REL_AFTER_PENDING);
    if (!atomic_compare_exchange_weak(&s->word, &w, wr__mk(cnt + n, a->tag))) continue;
    WR_CRASH_POINT(SEM_REL_AFTER_CAS);
    held_set(he, before - d, 0);
    WR_CRASH_POINT(SEM_REL_AFTER_HELD);
    /* pairs with the acquire (CAS) of the next updater */
    atomic_store_explicit(&s->word, wr__mk(cnt + n, 0), memory_order_release);
    WR_CRASH_POINT(SEM_REL_AFTER_UNLOCK);
    break;
  }
  if (wr__lo(w) & SEM_W) wr__futex_wake(wr__lo32(&s->word), INT_MAX);
  return 0;
}

int wr_sem_value(const wr_sem *sh) {
  const struct wr__sem *s = sh->h.obj;
  return (int)(wr__lo(atomic_load(&s->word)) & ~SEM_W);
}

int wr_sem_held(const wr_sem *sh) {
  wr_arena *a = sh->h.a;
  if (!a->tag) return 0;
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  int e = held_entry(r, sh->h.off, false);
  return e < 0 ? 0 : (int)held_count(atomic_load(&r->held[e].state));
}

/* Return the dead worker T's permits to every semaphore still bound. */
uint64_t wr__sem_reclaim(wr_arena *a, uint32_t slot, wr_tag T) {
  struct wr__sync_rec *r = wr__sync_rec(a, slot);
  uint64_t total = 0;
  for (uint32_t d = 0; d < WR__DIR_ENTRIES; d++) {
    wr_off_t off;
    struct wr__sem *s = wr__obj_at(a, d, WR_KIND_SEM, WR__MAGIC_SEM, sizeof *s, &off);
    if (!s) continue;
    int e = held_entry(r, off, false);
    uint64_t st = e < 0 ? 0 : atomic_load(&r->held[e].state);
    uint64_t w = atomic_load(&s->word);
    /* T's tag in the word: its CAS happened, a pending change counts. */
    int64_t held = (int64_t)held_count(st) + (wr__hi(w) == T ? held_pending(st) : 0);
    if (held < 0) held = 0;
    if (held > WR_SEM_MAX) held = WR_SEM_MAX; /* a scribbled record */
    uint32_t spins = 0;
    for (;;) {
      if (wr__hi(w) != 0 && wr__hi(w) != T) {
        w = wait_updater(a, s, off, w, &spins, true);
        continue;
      }
      uint64_t cnt = (wr__lo(w) & ~SEM_W) + (uint64_t)held;
      if (cnt > WR_SEM_MAX) cnt = WR_SEM_MAX;
      if (atomic_compare_exchange_weak(&s->word, &w, wr__mk((uint32_t)cnt, 0))) break;
    }
    total += (uint64_t)held;
    if (e >= 0) {
      atomic_store(&r->held[e].state, 0);
      atomic_store(&r->held[e].obj, 0);
    }
    wr__futex_wake(wr__lo32(&s->word), INT_MAX); /* lost wake-ups of a dead releaser too */
  }
  return total;
}

uint32_t wr__sem_holders(const wr_arena *a, wr_off_t off, uint32_t *slots, uint32_t n) {
  uint32_t k = 0;
  struct wr__sem *sem = wr__obj_checked(a, off, sizeof *sem);
  /* Permits are available: the waiter is about to proceed, nobody blocks it. */
  if (!sem || sem->magic != WR__MAGIC_SEM || (wr__lo(atomic_load(&sem->word)) & ~SEM_W) > 0)
    return 0;
  for (uint32_t s = 0; s < WR_MAX_SLOTS && k < n; s++) {
    uint32_t st = atomic_load(&a->slots[s].state);
    if (st != WR_SLOT_LIVE) continue;
    const struct wr__sync_rec *r = wr__sync_rec(a, s);
    for (int i = 0; i < WR__SYNC_HELD; i++)
      if (atomic_load(&r->held[i].obj) == off && held_count(atomic_load(&r->held[i].state))) {
        slots[k++] = s;
        break;
      }
  }
  return k;
}
