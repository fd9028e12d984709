/*
 * mutex.c: robust mutexes and reader/writer locks.
 *
 * Lock word (32 bits, the futex word): 0 free, the owner's worker tag, or
 * WR__LOCK_DEAD (the owner died, see below), plus WR__LOCK_WAITERS (bit 31,
 * never set in a worker tag). Taking the lock is one CAS that writes the
 * owner's tag, so there is no moment when the lock is taken and nobody is
 * recorded as its owner; no intent record is needed. Unlock is one exchange
 * then, if the waiters bit was set, a wake (Drepper's "mutex2": a waiter
 * that slept takes the lock with the waiters bit set, since others may
 * sleep too).
 *
 * Death: wr_sync_reclaim turns a dead owner's tag into WR__LOCK_DEAD and
 * wakes every waiter (also covering an unlock cut between its exchange and
 * its wake). The next locker takes DEAD like a free lock and gets
 * -WR_EOWNERDEAD; until wr_mutex_consistent, unlocking leaves DEAD behind.
 *
 * Reader/writer lock: a writer word as above, a per-slot count of read
 * holds (so a dead reader's holds are dropped exactly), and a `drain`
 * futex word that readers bump when they leave while a writer is present.
 * Reader: increment own count, then read the writer word (both seq_cst);
 * writer: take the word, then wait until every count is zero (Dekker).
 */
#include "sync.h"

#include <limits.h>
#include <stdlib.h>

#define W WR__LOCK_WAITERS

struct wr__mutex {
  uint32_t magic;
  _Atomic uint32_t word;
  uint32_t inconsistent; /* written by the holder only */
  uint32_t pad;
};
_Static_assert(sizeof(struct wr__mutex) == 16, "mutex size");

struct wr__rwlock {
  uint32_t magic;
  _Atomic uint32_t writer;
  _Atomic uint32_t drain;
  uint32_t inconsistent;
  _Atomic uint16_t readers[WR_MAX_SLOTS];
};
_Static_assert(sizeof(struct wr__rwlock) == 16 + 2 * WR_MAX_SLOTS, "rwlock size");
_Static_assert(ATOMIC_SHORT_LOCK_FREE == 2, "16-bit atomics must be lock-free");

struct wr_mutex {
  struct wr__handle h;
};
struct wr_rwlock {
  struct wr__handle h;
};

/* ------------------------------------------------------------ lock words */

int wr__lock_word(wr_arena *a, _Atomic uint32_t *w, wr_off_t obj, int kind, int64_t timeout_ns) {
  uint32_t me = a->tag, c = 0;
  if (!me) return -WR_EINVAL;
  if (atomic_compare_exchange_strong(w, &c, me)) { /* seq_cst; pairs with unlock's exchange */
    WR_CRASH_POINT(MUTEX_LOCK_AFTER_CAS);
    return 0;
  }
  if ((c & ~W) == me) return -WR_EDEADLK;
  struct wr__waiter wt = {.started = false};
  bool waited = false;
  for (;;) {
    uint32_t v = c & ~W;
    if (v == 0 || v == WR__LOCK_DEAD) {
      if (!atomic_compare_exchange_weak(w, &c, me | (waited ? W : (c & W)))) continue;
      WR_CRASH_POINT(MUTEX_LOCK_AFTER_CAS);
      return v == WR__LOCK_DEAD;
    }
    if (timeout_ns == 0) return -WR_EAGAIN;
    if (!(c & W)) {
      if (!atomic_compare_exchange_weak(w, &c, c | W)) continue;
      c |= W;
    }
    wr__wait_mark(a, obj, kind);
    int rc = wr__sync_wait(&wt, timeout_ns, w, c);
    wr__wait_clear(a);
    if (rc) return rc;
    waited = true;
    c = atomic_load(w);
  }
}

void wr__unlock_word(_Atomic uint32_t *w, bool leave_dead, int wake) {
  /* seq_cst; pairs with the locker's CAS */
  uint32_t old = atomic_exchange(w, leave_dead ? WR__LOCK_DEAD : 0);
  WR_CRASH_POINT(MUTEX_UNLOCK_AFTER_STORE);
  if (old & W) wr__futex_wake(w, wake);
}

/* ------------------------------------------------------------ mutex */

static void mutex_init(void *obj, const void *arg) {
  (void)arg;
  ((struct wr__mutex *)obj)->magic = WR__MAGIC_MUTEX;
}

int wr_mutex_create(wr_arena *a, const char *name) {
  return wr__obj_create(a, name, WR_KIND_MUTEX, sizeof(struct wr__mutex), mutex_init, NULL, NULL);
}

int wr_mutex_open(wr_arena *a, const char *name, wr_mutex **out) {
  return wr__obj_open(a, name, WR_KIND_MUTEX, WR__MAGIC_MUTEX, sizeof(struct wr__mutex),
                      (struct wr__handle **)out);
}

void wr_mutex_close(wr_mutex *m) { free(m); }

int wr_mutex_lock(wr_mutex *mh, int64_t timeout_ns) {
  struct wr__mutex *m = mh->h.obj;
  int rc = wr__lock_word(mh->h.a, &m->word, mh->h.off, WR_KIND_MUTEX, timeout_ns);
  if (rc == 1) {
    m->inconsistent = 1;
    return -WR_EOWNERDEAD;
  }
  return rc;
}

static bool holds(const wr_arena *a, _Atomic uint32_t *w) {
  return a->tag && (atomic_load_explicit(w, memory_order_relaxed) & ~W) == a->tag;
}

int wr_mutex_unlock(wr_mutex *mh) {
  struct wr__mutex *m = mh->h.obj;
  if (!holds(mh->h.a, &m->word)) return -WR_ENOTOWNER;
  wr__unlock_word(&m->word, m->inconsistent != 0, 1);
  return 0;
}

int wr_mutex_consistent(wr_mutex *mh) {
  struct wr__mutex *m = mh->h.obj;
  if (!holds(mh->h.a, &m->word)) return -WR_ENOTOWNER;
  m->inconsistent = 0;
  return 0;
}

/* ------------------------------------------------------------ rwlock */

static void rw_init(void *obj, const void *arg) {
  (void)arg;
  ((struct wr__rwlock *)obj)->magic = WR__MAGIC_RW;
}

int wr_rwlock_create(wr_arena *a, const char *name) {
  return wr__obj_create(a, name, WR_KIND_RWLOCK, sizeof(struct wr__rwlock), rw_init, NULL, NULL);
}

int wr_rwlock_open(wr_arena *a, const char *name, wr_rwlock **out) {
  return wr__obj_open(a, name, WR_KIND_RWLOCK, WR__MAGIC_RW, sizeof(struct wr__rwlock),
                      (struct wr__handle **)out);
}

void wr_rwlock_close(wr_rwlock *rw) { free(rw); }

static void rw_drained(struct wr__rwlock *rw) {
  atomic_fetch_add(&rw->drain, 1);
  wr__futex_wake(&rw->drain, INT_MAX);
}

int wr_rwlock_rdlock(wr_rwlock *rh, int64_t timeout_ns) {
  wr_arena *a = rh->h.a;
  struct wr__rwlock *rw = rh->h.obj;
  if (!a->tag) return -WR_EINVAL;
  if (holds(a, &rw->writer)) return -WR_EDEADLK;
  _Atomic uint16_t *mine = &rw->readers[a->slot];
  struct wr__waiter wt = {.started = false};
  for (;;) {
    if (atomic_load_explicit(mine, memory_order_relaxed) == UINT16_MAX) return -WR_EAGAIN;
    atomic_fetch_add(mine, 1); /* seq_cst: Dekker with the writer's CAS then scan */
    WR_CRASH_POINT(RW_READ_AFTER_INC);
    uint32_t c = atomic_load(&rw->writer);
    if ((c & ~W) == 0) return 0;
    if ((c & ~W) == WR__LOCK_DEAD) return -WR_EOWNERDEAD; /* held; a writer must repair */
    atomic_fetch_sub(mine, 1);
    rw_drained(rw);
    if (timeout_ns == 0) return -WR_EAGAIN;
    if (!(c & W) && !atomic_compare_exchange_strong(&rw->writer, &c, c | W)) continue;
    wr__wait_mark(a, rh->h.off, WR_KIND_RWLOCK);
    int rc = wr__sync_wait(&wt, timeout_ns, &rw->writer, c | W);
    wr__wait_clear(a);
    if (rc) return rc;
  }
}

static bool readers_left(const struct wr__rwlock *rw) {
  for (uint32_t s = 0; s < WR_MAX_SLOTS; s++)
    if (atomic_load(&rw->readers[s])) return true;
  return false;
}

int wr_rwlock_wrlock(wr_rwlock *rh, int64_t timeout_ns) {
  wr_arena *a = rh->h.a;
  struct wr__rwlock *rw = rh->h.obj;
  if (!a->tag) return -WR_EINVAL;
  if (atomic_load(&rw->readers[a->slot])) return -WR_EDEADLK;
  int got = wr__lock_word(a, &rw->writer, rh->h.off, WR_KIND_RWLOCK, timeout_ns);
  if (got < 0) return got;
  /* Readers drain. (The deadline restarts here: a timed wrlock may wait up
   * to twice timeout_ns, once for the writer word and once for readers.) */
  struct wr__waiter wt = {.started = false};
  for (;;) {
    uint32_t d = atomic_load(&rw->drain);
    if (!readers_left(rw)) break;
    int rc = -WR_EAGAIN;
    if (timeout_ns != 0) {
      wr__wait_mark(a, rh->h.off, WR_KIND_RWLOCK);
      rc = wr__sync_wait(&wt, timeout_ns, &rw->drain, d);
      wr__wait_clear(a);
    }
    if (rc) {
      wr__unlock_word(&rw->writer, got == 1, INT_MAX);
      return rc;
    }
  }
  if (got == 1) {
    rw->inconsistent = 1;
    return -WR_EOWNERDEAD;
  }
  return 0;
}

int wr_rwlock_unlock(wr_rwlock *rh) {
  wr_arena *a = rh->h.a;
  struct wr__rwlock *rw = rh->h.obj;
  if (!a->tag) return -WR_ENOTOWNER;
  if (holds(a, &rw->writer)) {
    wr__unlock_word(&rw->writer, rw->inconsistent != 0, INT_MAX); /* readers */
    return 0;
  }
  _Atomic uint16_t *mine = &rw->readers[a->slot];
  if (atomic_load(mine) == 0) return -WR_ENOTOWNER;
  atomic_fetch_sub(mine, 1); /* seq_cst: Dekker with the writer (see top) */
  if (atomic_load(&rw->writer) != 0) rw_drained(rw);
  return 0;
}

int wr_rwlock_consistent(wr_rwlock *rh) {
  struct wr__rwlock *rw = rh->h.obj;
  if (!holds(rh->h.a, &rw->writer)) return -WR_ENOTOWNER;
  rw->inconsistent = 0;
  return 0;
}

/* ------------------------------------------------------------ reclaim, graph */

static void word_reclaim(_Atomic uint32_t *w, wr_tag T) {
  uint32_t c = atomic_load(w);
  while ((c & ~W) == T && !atomic_compare_exchange_weak(w, &c, WR__LOCK_DEAD | (c & W))) {
  }
  wr__futex_wake(w, INT_MAX);
}

void wr__mutex_reclaim(wr_arena *a, wr_tag T) {
  uint32_t slot = wr__tag_slot(T);
  for (uint32_t d = 0; d < WR__DIR_ENTRIES; d++) {
    struct wr__mutex *m = wr__obj_at(a, d, WR_KIND_MUTEX, WR__MAGIC_MUTEX, sizeof *m, NULL);
    if (m) word_reclaim(&m->word, T);
    struct wr__rwlock *rw = wr__obj_at(a, d, WR_KIND_RWLOCK, WR__MAGIC_RW, sizeof *rw, NULL);
    if (!rw) continue;
    word_reclaim(&rw->writer, T);
    if (slot < WR_MAX_SLOTS && atomic_exchange(&rw->readers[slot], 0)) rw_drained(rw);
  }
}

uint32_t wr__mutex_holders(const wr_arena *a, int kind, wr_off_t off, uint32_t *slots, uint32_t n) {
  uint32_t k = 0;
  if (kind == WR_KIND_MUTEX) {
    const struct wr__mutex *m = wr__obj_checked(a, off, sizeof *m);
    if (!m || m->magic != WR__MAGIC_MUTEX) return 0;
    uint32_t t = atomic_load((_Atomic uint32_t *)&m->word) & ~W;
    if (n && WR__TAG_KIND(t) == WR__TAGK_WORKER) slots[k++] = wr__tag_slot(t);
    return k;
  }
  const struct wr__rwlock *rw = wr__obj_checked(a, off, sizeof *rw);
  if (!rw || rw->magic != WR__MAGIC_RW) return 0;
  uint32_t t = atomic_load((_Atomic uint32_t *)&rw->writer) & ~W;
  if (n && WR__TAG_KIND(t) == WR__TAGK_WORKER) slots[k++] = wr__tag_slot(t);
  for (uint32_t s = 0; s < WR_MAX_SLOTS && k < n; s++)
    if (atomic_load((_Atomic uint16_t *)&rw->readers[s])) slots[k++] = s;
  return k;
}
