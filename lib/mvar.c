/*
 * mvar.c: MVars, the seeds' one-slot boxes (take blocks while empty, put
 * blocks while full), crash-safe.
 *
 * State is one 64-bit word. Low half (the futex word): state (EMPTY, FULL,
 * TAKING, PUTTING), the index `cur` of the value buffer, and a waiters bit.
 * High half: for TAKING/PUTTING the worker doing it; for EMPTY the worker
 * that took the value and has not put one since (the holder); 0 for FULL.
 * Values are double-buffered: a put writes the buffer cur^1 and its commit
 * (one release store: FULL, cur^1) both publishes it and ends the put, so
 * the previous value stays intact until then.
 *
 *   take: CAS (FULL,c,0) -> (TAKING,c,me); copy out; store (EMPTY,c,me)
 *   put:  intent{word before}; CAS (EMPTY,c,h) -> (PUTTING,c,me);
 *         copy into c^1; store (FULL,c^1,0)
 *
 * Reclaim of a dead T: TAKING by T -> FULL (the take never happened);
 * PUTTING by T -> EMPTY with the holder from the intent; EMPTY held by T
 * (T took and died before putting) -> FULL with the value it took, which
 * is still in buffer c. So an MVar used as a lock or as shared state is
 * restored as a robust lock would be, and no value is ever torn or lost
 * with its taker. Others wait for a TAKING/PUTTING word by yielding (a
 * memcpy away) and sleep on EMPTY/FULL with the waiters bit set.
 */
#include "sync.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

enum { MV_EMPTY = 0, MV_FULL = 1, MV_TAKING = 2, MV_PUTTING = 3 };
#define MV_STATE(l) ((l)&3u)
#define MV_CUR(l) (((l) >> 2) & 1u)
#define MV_W 0x80000000u

struct wr__mvar {
  uint32_t magic;
  uint32_t size; /* bytes of each value buffer */
  _Atomic uint64_t word;
  uint32_t len[2];
  uint8_t pad[8];
  uint8_t data[]; /* 2 x size */
};
_Static_assert(sizeof(struct wr__mvar) == 32, "mvar header size");
_Static_assert(offsetof(struct wr__mvar, word) == 8, "mvar word offset");

struct wr_mvar {
  struct wr__handle h;
};

static inline uint32_t st_cur(uint32_t st, uint32_t cur) { return st | cur << 2; }

struct mv_init {
  uint32_t size;
  const void *init;
  size_t len;
};

static void mvar_init(void *obj, const void *arg) {
  const struct mv_init *i = arg;
  struct wr__mvar *m = obj;
  m->magic = WR__MAGIC_MVAR;
  m->size = i->size;
  if (i->init) {
    memcpy(m->data, i->init, i->len);
    m->len[0] = (uint32_t)i->len;
  }
  atomic_init(&m->word, i->init ? MV_FULL : MV_EMPTY);
}

int wr_mvar_create(wr_arena *a, const char *name, uint32_t size, const void *init, size_t len) {
  if (size == 0 || size > (1u << 30) || (init && len > size)) return -WR_EINVAL;
  struct mv_init i = {size, init, len};
  return wr__obj_create(a, name, WR_KIND_MVAR, sizeof(struct wr__mvar) + 2 * (size_t)size,
                        mvar_init, &i, NULL);
}

int wr_mvar_open(wr_arena *a, const char *name, wr_mvar **out) {
  struct wr__handle *h;
  int rc = wr__obj_open(a, name, WR_KIND_MVAR, WR__MAGIC_MVAR, sizeof(struct wr__mvar), &h);
  if (rc) return rc;
  struct wr__mvar *m = h->obj;
  if (m->size == 0 || wr_block_size(a, m) < sizeof *m + 2 * (uint64_t)m->size) {
    free(h);
    return -WR_ECORRUPT;
  }
  h->size = m->size;
  *out = (wr_mvar *)h;
  return 0;
}

void wr_mvar_close(wr_mvar *mv) { free(mv); }

static inline uint8_t *buf_of(struct wr__mvar *m, uint32_t size, uint32_t c) {
  return m->data + (size_t)c * size;
}

/* Wait while the state is `st` (EMPTY or FULL): set the waiters bit, sleep. */
static int mv_wait(wr_mvar *mh, uint64_t w, struct wr__waiter *wt, int64_t timeout_ns) {
  struct wr__mvar *m = mh->h.obj;
  if (!(wr__lo(w) & MV_W)) {
    if (!atomic_compare_exchange_strong(&m->word, &w, w | MV_W)) return 0;
    w |= MV_W;
  }
  wr__wait_mark(mh->h.a, mh->h.off, WR_KIND_MVAR);
  int rc = wr__sync_wait(wt, timeout_ns, wr__lo32(&m->word), wr__lo(w));
  wr__wait_clear(mh->h.a);
  return rc;
}

int wr_mvar_take(wr_mvar *mh, void *buf, size_t cap, int64_t timeout_ns) {
  wr_arena *a = mh->h.a;
  struct wr__mvar *m = mh->h.obj;
  uint32_t size = mh->h.size;
  if (!a->tag) return -WR_EINVAL;
  struct wr__waiter wt = {.started = false};
  for (;;) {
    uint64_t w = atomic_load_explicit(&m->word, memory_order_acquire);
    uint32_t l = wr__lo(w), c = MV_CUR(l);
    if (MV_STATE(l) == MV_FULL) {
      uint32_t len = m->len[c];
      if (len > size) return -WR_ECORRUPT;
      if (len > cap) return -WR_EMSGSIZE;
      /* seq_cst; pairs with the release store that committed the put */
      if (!atomic_compare_exchange_weak(&m->word, &w,
                                        wr__mk(st_cur(MV_TAKING, c) | (l & MV_W), a->tag)))
        continue;
      WR_CRASH_POINT(MVAR_TAKE_AFTER_LOCK);
      memcpy(buf, buf_of(m, size, c), len);
      WR_CRASH_POINT(MVAR_TAKE_AFTER_COPY);
      /* the commit; pairs with the acquire load / CAS of the next op */
      atomic_store_explicit(&m->word, wr__mk(st_cur(MV_EMPTY, c), a->tag), memory_order_release);
      WR_CRASH_POINT(MVAR_TAKE_AFTER_COMMIT);
      if (l & MV_W) wr__futex_wake(wr__lo32(&m->word), INT_MAX);
      return (int)len;
    }
    if (MV_STATE(l) != MV_EMPTY) {
      sched_yield();
      continue;
    }
    if (timeout_ns == 0) return -WR_EAGAIN;
    int rc = mv_wait(mh, w, &wt, timeout_ns);
    if (rc) return rc;
  }
}

int wr_mvar_put(wr_mvar *mh, const void *data, size_t len, int64_t timeout_ns) {
  wr_arena *a = mh->h.a;
  struct wr__mvar *m = mh->h.obj;
  uint32_t size = mh->h.size;
  if (!a->tag) return -WR_EINVAL;
  if (len > size) return -WR_EMSGSIZE;
  struct wr__intent *in = &a->slots[a->slot].intent;
  struct wr__waiter wt = {.started = false};
  for (;;) {
    uint64_t w = atomic_load_explicit(&m->word, memory_order_acquire);
    uint32_t l = wr__lo(w), c = MV_CUR(l);
    if (MV_STATE(l) == MV_EMPTY) {
      in->obj = mh->h.off;
      in->arg = w;
      /* read by the reclaimer after our death; pairs with its acquire */
      atomic_store_explicit(&in->op, WR__OP_MVAR_PUT, memory_order_release);
      WR_CRASH_POINT(MVAR_PUT_AFTER_INTENT);
      if (!atomic_compare_exchange_weak(&m->word, &w,
                                        wr__mk(st_cur(MV_PUTTING, c) | (l & MV_W), a->tag)))
        continue;
      WR_CRASH_POINT(MVAR_PUT_AFTER_LOCK);
      memcpy(buf_of(m, size, c ^ 1), data, len);
      m->len[c ^ 1] = (uint32_t)len;
      WR_CRASH_POINT(MVAR_PUT_AFTER_COPY);
      /* the commit; pairs with the acquire load / CAS of the next take */
      atomic_store_explicit(&m->word, wr__mk(st_cur(MV_FULL, c ^ 1), 0), memory_order_release);
      WR_CRASH_POINT(MVAR_PUT_AFTER_COMMIT);
      atomic_store_explicit(&in->op, WR__OP_NONE, memory_order_release);
      if (l & MV_W) wr__futex_wake(wr__lo32(&m->word), INT_MAX);
      return 0;
    }
    if (MV_STATE(l) != MV_FULL) {
      sched_yield();
      continue;
    }
    if (timeout_ns == 0) return -WR_EAGAIN;
    int rc = mv_wait(mh, w, &wt, timeout_ns);
    if (rc) return rc;
  }
}

void wr__mvar_reclaim(wr_arena *a, uint32_t slot, wr_tag T) {
  struct wr__intent *in = &a->slots[slot].intent;
  /* pairs with the release store of op in wr_mvar_put */
  uint32_t op = atomic_load_explicit(&in->op, memory_order_acquire);
  for (uint32_t d = 0; d < WR__DIR_ENTRIES; d++) {
    wr_off_t off;
    struct wr__mvar *m = wr__obj_at(a, d, WR_KIND_MVAR, WR__MAGIC_MVAR, sizeof *m, &off);
    if (!m) continue;
    uint64_t w = atomic_load(&m->word);
    uint32_t l = wr__lo(w), c = MV_CUR(l), st = MV_STATE(l);
    if (wr__hi(w) != T || st == MV_FULL) continue;
    uint64_t nw = wr__mk(st_cur(MV_FULL, c), 0); /* TAKING: undone; EMPTY held by T: restored */
    if (st == MV_PUTTING) {
      wr_tag h = op == WR__OP_MVAR_PUT && in->obj == off ? wr__hi(in->arg) : 0;
      /* Back to empty, held by whoever held it; restored now if that
       * holder is gone (its own reclaim would have found PUTTING). */
      if (h == 0 || wr__worker_tag_live(a, h)) nw = wr__mk(st_cur(MV_EMPTY, c), h);
    }
    /* Only the dead T's word can be in these states: no CAS race with a
     * live worker, but a waiter may set the waiters bit: CAS. */
    while (!atomic_compare_exchange_weak(&m->word, &w, nw) && wr__hi(w) == T) {
    }
    wr__futex_wake(wr__lo32(&m->word), INT_MAX);
  }
}

uint32_t wr__mvar_holders(const wr_arena *a, wr_off_t off, uint32_t *slots, uint32_t n) {
  const struct wr__mvar *m = wr__obj_checked(a, off, sizeof *m);
  if (!m || m->magic != WR__MAGIC_MVAR || n == 0) return 0;
  uint64_t w = atomic_load((_Atomic uint64_t *)&m->word);
  if (MV_STATE(wr__lo(w)) != MV_EMPTY || WR__TAG_KIND(wr__hi(w)) != WR__TAGK_WORKER) return 0;
  slots[0] = wr__tag_slot(wr__hi(w));
  return 1;
}
