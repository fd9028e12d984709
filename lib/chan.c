/*
 * chan.c: channels. A channel is a descriptor block bound to its name (kind
 * WR_KIND_CHAN) and producers x consumers SPSC lanes; each lane is a heap
 * block registered in the arena's lane table (a->lanes[j], claimed by CAS
 * 0 -> offset) and owned by the tag wr__tag_lane(j), as is every zero-copy
 * block in flight through it.
 *
 * Lane (struct wr__lane): a line of constants, a producer line (tail and the
 * producer's counters), a consumer line (head, peek mark and counters), a
 * line for `closed`, then a ring of `capacity` fixed-size slots. head and
 * tail are free-running 64-bit counters. Each slot carries a stamp (seq + 1)
 * written last: the consumer polls the stamp of its next slot, so one cache
 * line brings both the record and its readiness; the producer keeps a
 * cached copy of head and reloads it only when the cache says full. tail
 * is the producer's published count (stats, resume point); it lags the
 * stamps by at most one batch, and live_end() extends it over stamped
 * slots: the live range is [head, live_end).
 *
 * Commit points (DESIGN.md "Crash consistency"):
 * - send: write the slot, then one release store of its stamp commits the
 *   record (whole or not at all); tail is stored once per batch after. A
 *   zero-copy block is transferred worker -> lane (one CAS) BEFORE its
 *   stamp, under an intent record (SEND_BLOCK) that lets the reclaimer
 *   publish a block that was transferred but not stamped. The reclaimer
 *   also rolls tail forward over stamped records, so a restarted producer
 *   resumes after them.
 * - receive is two-phase: peek moves only a handle-local cursor (and a peek
 *   mark used to count redeliveries); release stores head. A block being
 *   released is first transferred lane -> consumer, then head moves past
 *   it, then it is freed; the reclaimer puts back (consumer -> lane) any
 *   block of the live range owned by the dead consumer, so the record is
 *   redelivered. No ABA: a live-range block never passes through "free".
 * - create claims lane-table entries and binds the name last (intent
 *   CREATE: the reclaimer rolls an unbound creation back); destroy is rolled
 *   forward (intent DESTROY).
 *
 * Blocking: one wait line (futex word `seq` + `waiters`) per producer index
 * and per consumer index in the descriptor, so a side with several lanes
 * sleeps on one word. A waiter first spins for an adaptive time budget
 * (SPIN_MIN_NS..SPIN_MAX_NS: doubled when spinning succeeded, halved when
 * it had to sleep), then: read seq, waiters++ (seq_cst), heavy fence,
 * re-check, futex_wait(seq). Waker: store index, light fence, if waiters:
 * seq++, futex_wake. The fence pair (futex.c: a membarrier-backed
 * asymmetric fence, or two seq_cst fences) closes the lost-wake-up window
 * without a full fence on the publish path.
 *
 * Heartbeat (the supervisor's watchdog): each publish, each peek and each
 * sleep slice of block() bumps the worker's slot heartbeat (wr__beat: a
 * relaxed store to the worker's own slot line, no syscall, no shared
 * read-modify-write), so a streaming or a blocked worker is never taken
 * for a stuck one.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAN_MAGIC 0x4e41484352525731ull /* "1WRRCHAN" */
#define LANE_MAGIC 0x454e414c52525731ull /* "1WRRLANE" */
#define MAX_SLOT_SIZE (1u << 20)
#define MAX_CAPACITY (1u << 30)
#define SPIN_MIN_NS 4000
#define SPIN_MAX_NS 64000
#define SIDE_PRODUCER 1u /* bits of `closed`: who closed the lane */
#define SIDE_CONSUMER 2u

/* ------------------------------------------------------------ layout */

struct wr__wait {
  _Atomic uint32_t seq;     /* futex word, bumped by each wake */
  _Atomic uint32_t waiters; /* sleepers (and would-be sleepers) on seq */
  uint8_t pad[WR__CACHELINE - 8];
};
_Static_assert(sizeof(struct wr__wait) == WR__CACHELINE, "wait line");

struct wr__chan {
  uint64_t magic;
  uint32_t capacity, slot_size, stride;
  uint32_t producers, consumers, flags, nlanes;
  uint32_t wait_off;  /* from the descriptor: producers + consumers wait lines */
  uint32_t lanes_off; /* from the descriptor: nlanes x u32 lane-table indices */
  uint32_t pad0;
  char name[WR_NAME_MAX];
};
_Static_assert(sizeof(struct wr__chan) == 96, "channel descriptor");

struct wr__lane {
  /* line 0: constants, written before the lane is registered */
  uint64_t magic;
  uint32_t capacity, mask, stride, slot_size;
  uint32_t index;              /* entry in a->lanes[] */
  uint32_t producer, consumer; /* side indices in the channel */
  uint32_t ring_off;           /* from this struct to slot 0 */
  uint64_t chan_off;           /* descriptor */
  uint64_t block_off;          /* heap block holding the lane (= a->lanes[index]) */
  uint8_t pad0[WR__CACHELINE - 56];
  /* line 1: written by the producer only */
  _Atomic uint64_t tail; /* records published (stamps may run ahead by a batch) */
  _Atomic uint64_t bytes, hwm, full_waits;
  _Atomic uint32_t prod_tag; /* worker holding the producer side, 0 = none */
  uint8_t pad1[WR__CACHELINE - 36];
  /* line 2: written by the consumer (and the reclaimer once it is dead) */
  _Atomic uint64_t head; /* release store in release_to; pairs with acquire in has_room */
  _Atomic uint64_t peek_hi; /* records peeked: [head, peek_hi) are redelivered */
  _Atomic uint64_t empty_waits, redelivered;
  _Atomic uint32_t cons_tag;
  uint8_t pad2[WR__CACHELINE - 36];
  /* line 3: read-mostly */
  _Atomic uint32_t closed; /* SIDE_* bits; release in close, acquire in *_ready */
  uint8_t pad3[WR__CACHELINE - 4];
};
_Static_assert(sizeof(struct wr__lane) == 4 * WR__CACHELINE, "lane header");
_Static_assert(offsetof(struct wr__lane, tail) == WR__CACHELINE, "tail on its own line");
_Static_assert(offsetof(struct wr__lane, head) == 2 * WR__CACHELINE, "head on its own line");

/* A ring slot. stamp = (uint32_t)(seq + 1) once record seq is complete in
 * it: the per-record commit (release store in stamp(); pairs with the
 * acquire load in stamped()). A stale stamp is seq + 1 - k * capacity, never
 * equal modulo 2^32 since capacity <= 2^30. */
struct wr__rslot {
  _Atomic uint32_t stamp;
  uint32_t lenf; /* length, | REC_BLOCK_BIT for a zero-copy record */
  uint64_t key;
  uint8_t data[]; /* payload, or the block's offset (u64) for a block record */
};
_Static_assert(sizeof(struct wr__rslot) == 16, "slot header");
#define REC_BLOCK_BIT 0x80000000u
#define REC_LEN(r) ((r)->lenf & ~REC_BLOCK_BIT)
#define REC_IS_BLOCK(r) (((r)->lenf & REC_BLOCK_BIT) != 0)

/* ------------------------------------------------------------ handle */

struct lside {
  struct wr__lane *l;
  uint8_t *ring;
  uint64_t pos;   /* producer: next seq to write; consumer: next seq to peek */
  uint64_t head;  /* consumer: committed head */
  uint64_t other; /* cached index of the other side */
  uint64_t bytes, hwm;
  uint32_t idx;    /* lane-table index */
  uint32_t mask;   /* capacity - 1 */
  uint32_t blocks; /* consumer: block records peeked and not released */
  struct wr__wait *peer;
};

struct wr_chan {
  wr_arena *a;
  struct wr__chan *ch;
  int role;
  uint32_t index, n, rr, keyed;
  uint32_t cap, stride, slot_size;
  int64_t spin_ns;      /* adaptive spin budget before sleeping */
  _Atomic uint64_t *hb; /* this worker's slot heartbeat (wr__beat) */
  struct wr__wait *self;
  struct lside ls[];
};

/* ------------------------------------------------------------ helpers */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline struct wr__rslot *slot_at(const struct lside *s, uint32_t stride, uint64_t seq) {
  return (struct wr__rslot *)(s->ring + (seq & s->mask) * stride);
}

static inline bool stamped(const struct wr__rslot *r, uint64_t seq) {
  /* pairs with the release store in stamp() */
  return atomic_load_explicit(&r->stamp, memory_order_acquire) == (uint32_t)(seq + 1);
}
static inline void stamp(struct wr__rslot *r, uint64_t seq) {
  /* the record's bytes before its stamp; pairs with the acquire in stamped() */
  atomic_store_explicit(&r->stamp, (uint32_t)(seq + 1), memory_order_release);
}

/* End of lane l's live range starting at head h: the stored tail may lag
 * behind stamped records (a producer between stamping and publishing, or
 * dead there). */
static uint64_t live_end(const struct wr__lane *l, uint64_t h) {
  const uint8_t *ring = (const uint8_t *)l + l->ring_off;
  uint64_t t = atomic_load(&l->tail);
  if (t < h) t = h;
  if (t - h > l->capacity) t = h + l->capacity; /* scribbled: never walk past one ring */
  while (t - h < l->capacity &&
         stamped((const struct wr__rslot *)(ring + (t & l->mask) * l->stride), t))
    t++;
  return t;
}

static inline uint64_t rslot_block(const struct wr__rslot *r) {
  uint64_t off;
  memcpy(&off, r->data, sizeof off);
  return off;
}

static struct wr__wait *wait_line(struct wr__chan *ch, uint32_t i) {
  return (struct wr__wait *)((uint8_t *)ch + ch->wait_off) + i;
}
static uint32_t *lane_table(struct wr__chan *ch) {
  return (uint32_t *)((uint8_t *)ch + ch->lanes_off);
}

/* Bounds- and shape-checked lane j, or NULL (survives a scribbled arena). */
static struct wr__lane *lane_get(const wr_arena *a, uint32_t j) {
  if (j >= WR__MAX_LANES) return NULL;
  uint64_t off = atomic_load_explicit(&a->lanes[j], memory_order_acquire);
  uint64_t loff = WR__ALIGN_UP(off, WR__CACHELINE);
  struct wr__lane *l = wr__ptr_checked(a, loff, sizeof *l);
  if (!l || l->magic != LANE_MAGIC || l->index != j || l->block_off != off) return NULL;
  if (!l->capacity || (l->capacity & l->mask) || l->mask != l->capacity - 1) return NULL;
  /* chan_create makes stride a multiple of 16: anything else is scribbled
   * and would make ring slots misaligned */
  if (l->stride < sizeof(struct wr__rslot) + l->slot_size || (l->stride & 15) ||
      l->ring_off != sizeof *l)
    return NULL;
  if (!wr__ptr_checked(a, loff + l->ring_off, (uint64_t)l->capacity * l->stride)) return NULL;
  return l;
}

/* The channel descriptor at off (from a directory entry, a lane or an
 * intent record: any of them may be scribbled), or NULL: in bounds, a heap
 * block's 16-byte alignment, its magic, and a shape chan_create could have
 * written (wait lines on their cache lines, the lane table inside the block). */
static struct wr__chan *chan_at(const wr_arena *a, uint64_t off) {
  struct wr__chan *ch = wr__obj_checked(a, off, sizeof *ch);
  if (!ch || ch->magic != CHAN_MAGIC) return NULL;
  uint64_t bsize = wr_block_size(a, ch);
  uint64_t nw = (uint64_t)ch->producers + ch->consumers;
  if (!ch->producers || !ch->consumers ||
      ch->nlanes != (uint64_t)ch->producers * ch->consumers || ch->nlanes > WR__MAX_LANES ||
      ch->wait_off < sizeof *ch || ((off + ch->wait_off) & (WR__CACHELINE - 1)) ||
      ch->wait_off + nw * WR__CACHELINE > ch->lanes_off || ((off + ch->lanes_off) & 3) ||
      ch->lanes_off + 4ull * ch->nlanes > bsize)
    return NULL;
  return ch;
}

/* Descriptor of channel `name`, checked. *doff gets its offset. */
static int chan_get(wr_arena *a, const char *name, struct wr__chan **out, uint64_t *doff) {
  int kind;
  wr_off_t off;
  int rc = wr_name_lookup(a, name, &kind, &off);
  if (rc) return rc;
  if (kind != WR_KIND_CHAN) return -WR_EKIND;
  struct wr__chan *ch = chan_at(a, off);
  if (!ch) return -WR_ECORRUPT;
  *out = ch;
  if (doff) *doff = off;
  return 0;
}

static int name_check(const char *name) {
  if (!name || !*name) return -WR_EINVAL;
  return strnlen(name, WR_NAME_MAX) < WR_NAME_MAX ? 0 : -WR_ENAMETOOLONG;
}

static uint32_t pow2_up(uint32_t x) {
  uint32_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

static inline uint64_t key_hash(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* Wake the sleepers of w, if any. The light fence orders the caller's
 * publishing store (tail or head) before the load of waiters; it pairs with
 * the heavy fence after the fetch_add of waiters in block(): either the
 * waiter's re-check sees the new index, or we see its waiters count and
 * bump seq (then its futex_wait sees seq changed, or is woken). */
static inline void wake(struct wr__wait *w) {
  wr__fence_light();
  if (atomic_load_explicit(&w->waiters, memory_order_relaxed)) {
    atomic_fetch_add(&w->seq, 1);
    wr__futex_wake(&w->seq, INT_MAX);
  }
}

static void intent_set(wr_arena *a, uint32_t op, uint64_t obj, uint64_t arg, uint64_t arg2) {
  struct wr__intent *in = &a->slots[a->slot].intent;
  in->phase = 0;
  in->obj = obj;
  in->arg = arg;
  in->arg2 = arg2;
  /* pairs with the acquire load of op in wr_chan_reclaim */
  atomic_store_explicit(&in->op, op, memory_order_release);
}
static void intent_clear(wr_arena *a) {
  atomic_store_explicit(&a->slots[a->slot].intent.op, WR__OP_NONE, memory_order_release);
}

static bool lane_owns(const wr_arena *a, uint32_t j, wr_off_t off);

/* ------------------------------------------------------------ waiting */

typedef int (*ready_fn)(wr_chan *c, uint64_t arg);

_Atomic uint64_t wr__chan_late_wakeups;
int64_t wr__chan_spin_ns = -1; /* >= 0: fixed spin budget (tests: 0 = sleep at once) */

/* Wait until ready() returns nonzero (> 0: go on; < 0: that error), with an
 * adaptive spin first, then futex sleeps on this side's wait line. */
static int block(wr_chan *c, ready_fn ready, uint64_t arg, int64_t timeout_ns) {
  if (timeout_ns == 0) return -WR_EAGAIN;
  uint32_t tok = wr__intr_begin();
  if (wr__intr_since(tok)) return -WR_EINTR;
  struct timespec dl, *dlp = NULL;
  if (timeout_ns > 0) {
    int64_t end = wr__now_ns() + timeout_ns;
    dl.tv_sec = end / 1000000000ll;
    dl.tv_nsec = end % 1000000000ll;
    dlp = &dl;
  }
  int64_t budget = wr__chan_spin_ns >= 0 ? wr__chan_spin_ns : c->spin_ns;
  int64_t spin_end = wr__now_ns() + budget;
  for (uint32_t i = 1; budget; i++) {
    cpu_relax();
    int r = ready(c, arg);
    if (r) {
      if (c->spin_ns < SPIN_MAX_NS) c->spin_ns *= 2;
      return r > 0 ? 0 : r;
    }
    if (i % 64 == 0 && wr__now_ns() >= spin_end) break;
  }
  if (c->spin_ns > SPIN_MIN_NS) c->spin_ns /= 2;
  struct wr__wait *w = c->self;
  for (;;) {
    wr__beat(c->hb); /* every slice: a worker blocked here is idle, not stuck */
    if (wr__intr_since(tok)) return -WR_EINTR;
    uint32_t v = atomic_load(&w->seq);
    atomic_fetch_add(&w->waiters, 1);
    wr__fence_heavy(); /* pairs with the light fence in wake() */
    int r = ready(c, arg);
    if (r) {
      atomic_fetch_sub(&w->waiters, 1);
      return r > 0 ? 0 : r;
    }
    int rc = wr__futex_wait(&w->seq, v, dlp);
    atomic_fetch_sub(&w->waiters, 1);
    if (rc == -ETIMEDOUT) {
      r = ready(c, arg);
      return r > 0 ? 0 : r < 0 ? r : -WR_ETIMEDOUT;
    }
    if (rc == 1 && ready(c, arg))
      atomic_fetch_add_explicit(&wr__chan_late_wakeups, 1, memory_order_relaxed);
  }
}

/* ------------------------------------------------------------ producer */

static inline bool has_room(wr_chan *c, struct lside *s) {
  if (s->pos - s->other < c->cap) return true;
  /* pairs with the release store of head in release_to */
  s->other = atomic_load_explicit(&s->l->head, memory_order_acquire);
  return s->pos - s->other < c->cap;
}

static inline bool lane_closed(const struct lside *s) {
  return atomic_load_explicit(&s->l->closed, memory_order_acquire) != 0;
}

/* arg: lane for keyed sends, UINT64_MAX for "any lane". */
static int prod_ready(wr_chan *c, uint64_t arg) {
  if (arg != UINT64_MAX) {
    struct lside *s = &c->ls[arg];
    if (lane_closed(s)) return -WR_ECLOSED;
    return has_room(c, s) ? 1 : 0;
  }
  uint32_t closed = 0;
  for (uint32_t k = 0; k < c->n; k++) {
    struct lside *s = &c->ls[k];
    if (lane_closed(s))
      closed++;
    else if (has_room(c, s))
      return 1;
  }
  return closed == c->n ? -WR_ECLOSED : 0;
}

/* Index of a lane with room for the next record. */
static int pick_lane(wr_chan *c, bool keyed, uint64_t key, int64_t timeout_ns) {
  if (keyed) {
    uint32_t k = c->n == 1 ? 0 : (uint32_t)(key_hash(key) % c->n);
    struct lside *s = &c->ls[k];
    if (__builtin_expect(has_room(c, s), 1)) {
      if (lane_closed(s)) return -WR_ECLOSED;
      return (int)k;
    }
    uint64_t fw = atomic_load_explicit(&s->l->full_waits, memory_order_relaxed);
    atomic_store_explicit(&s->l->full_waits, fw + 1, memory_order_relaxed);
    int rc = block(c, prod_ready, k, timeout_ns);
    return rc ? rc : (int)k;
  }
  for (;;) {
    for (uint32_t i = 0; i < c->n; i++) {
      uint32_t k = c->rr + i < c->n ? c->rr + i : c->rr + i - c->n;
      struct lside *s = &c->ls[k];
      if (has_room(c, s) && !lane_closed(s)) {
        c->rr = k + 1 < c->n ? k + 1 : 0;
        return (int)k;
      }
    }
    struct wr__lane *l = c->ls[c->rr].l;
    uint64_t fw = atomic_load_explicit(&l->full_waits, memory_order_relaxed);
    atomic_store_explicit(&l->full_waits, fw + 1, memory_order_relaxed);
    int rc = prod_ready(c, UINT64_MAX);
    if (rc < 0) return rc;
    rc = block(c, prod_ready, UINT64_MAX, timeout_ns);
    if (rc) return rc;
  }
}

/* After the stamps of a send: store the published count, update the
 * producer counters and wake the consumer if it sleeps. */
static inline void publish(wr_chan *c, struct lside *s) {
  WR_CRASH_POINT(CHAN_SEND_BEFORE_PUBLISH);
  struct wr__lane *l = s->l;
  /* the records were committed by their stamps; tail is bookkeeping, read by
   * live_end (seq_cst load) and the stats */
  atomic_store_explicit(&l->tail, s->pos, memory_order_release);
  atomic_store_explicit(&l->bytes, s->bytes, memory_order_relaxed);
  uint64_t depth = s->pos - s->other;
  if (depth > s->hwm) {
    s->hwm = depth;
    atomic_store_explicit(&l->hwm, depth, memory_order_relaxed);
  }
  wr__beat(c->hb);
  wake(s->peer);
}

static int send_inline(wr_chan *c, bool keyed, uint64_t key, const void *data, size_t len,
                       int64_t timeout_ns) {
  if (__builtin_expect(c->role != WR_PRODUCER, 0)) return -WR_EINVAL;
  if (__builtin_expect(len > c->slot_size, 0)) return -WR_EMSGSIZE;
  int k = pick_lane(c, keyed, key, timeout_ns);
  if (k < 0) return k;
  struct lside *s = &c->ls[k];
  struct wr__rslot *r = slot_at(s, c->stride, s->pos);
  r->lenf = (uint32_t)len;
  r->key = key;
  memcpy(r->data, data, len);
  WR_CRASH_POINT(CHAN_SEND_AFTER_COPY);
  stamp(r, s->pos);
  s->pos++;
  s->bytes += len;
  publish(c, s);
  return 0;
}

int wr_chan_send(wr_chan *c, const void *data, size_t len, int64_t timeout_ns) {
  return send_inline(c, c->keyed, 0, data, len, timeout_ns);
}

int wr_chan_send_key(wr_chan *c, uint64_t key, const void *data, size_t len,
                     int64_t timeout_ns) {
  return send_inline(c, c->keyed, key, data, len, timeout_ns);
}

int wr_chan_send_batch(wr_chan *c, const wr_msg *msgs, size_t n, int64_t timeout_ns) {
  if (c->role != WR_PRODUCER || (!msgs && n)) return -WR_EINVAL;
  size_t done = 0;
  while (done < n) {
    if (msgs[done].len > c->slot_size) return done ? (int)done : -WR_EMSGSIZE;
    int k = pick_lane(c, c->keyed, msgs[done].key, timeout_ns);
    if (k < 0) return done ? (int)done : k;
    struct lside *s = &c->ls[k];
    do {
      const wr_msg *m = &msgs[done];
      struct wr__rslot *r = slot_at(s, c->stride, s->pos);
      r->lenf = m->len;
      r->key = m->key;
      memcpy(r->data, m->data, m->len);
      stamp(r, s->pos);
      s->pos++;
      s->bytes += m->len;
      done++;
    } while (done < n && done < INT_MAX && msgs[done].len <= c->slot_size &&
             (!c->keyed || c->n == 1 || key_hash(msgs[done].key) % c->n == (uint32_t)k) &&
             has_room(c, s));
    WR_CRASH_POINT(CHAN_SEND_AFTER_COPY);
    publish(c, s);
  }
  return (int)done;
}

static int send_block(wr_chan *c, uint64_t key, void *block, size_t len, int64_t timeout_ns) {
  wr_arena *a = c->a;
  if (c->role != WR_PRODUCER) return -WR_EINVAL;
  uint64_t off = wr_off(a, block);
  size_t bs = wr_block_size(a, block);
  if (!bs || len > bs || len >= REC_BLOCK_BIT) return -WR_EINVAL;
  if (wr__heap_owner(a, off) != a->tag) return -WR_ENOTOWNER;
  int k = pick_lane(c, c->keyed, key, timeout_ns);
  if (k < 0) return k;
  struct lside *s = &c->ls[k];
  intent_set(a, WR__OP_CHAN_SEND_BLOCK, s->idx, s->pos, off);
  struct wr__rslot *r = slot_at(s, c->stride, s->pos);
  r->lenf = (uint32_t)len | REC_BLOCK_BIT;
  r->key = key;
  memcpy(r->data, &off, sizeof off);
  WR_CRASH_POINT(CHAN_SEND_AFTER_COPY);
  int rc = wr__heap_transfer(a, off, a->tag, wr__tag_lane(s->idx));
  if (rc) {
    intent_clear(a);
    return rc;
  }
  WR_CRASH_POINT(CHAN_SEND_AFTER_TRANSFER);
  stamp(r, s->pos); /* the commit: the block is the lane's before this */
  s->pos++;
  s->bytes += len;
  publish(c, s);
  WR_CRASH_POINT(CHAN_SEND_AFTER_PUBLISH);
  intent_clear(a);
  return 0;
}

int wr_chan_send_block(wr_chan *c, void *block, size_t len, int64_t timeout_ns) {
  return send_block(c, 0, block, len, timeout_ns);
}
int wr_chan_send_block_key(wr_chan *c, uint64_t key, void *block, size_t len,
                           int64_t timeout_ns) {
  return send_block(c, key, block, len, timeout_ns);
}

/* ------------------------------------------------------------ consumer */

static inline bool has_data(wr_chan *c, struct lside *s) {
  return stamped(slot_at(s, c->stride, s->pos), s->pos);
}

static int cons_ready(wr_chan *c, uint64_t arg) {
  uint32_t closed = 0;
  for (uint32_t k = 0; k < c->n; k++) {
    struct lside *s = &c->ls[k];
    if (has_data(c, s)) return 1;
    /* closed (acquire, pairs with the release in close) then tail again:
     * everything sent before the close is seen before EOF */
    if (lane_closed(s) && !has_data(c, s)) closed++;
  }
  (void)arg;
  return closed == c->n ? -WR_EOF : 0;
}

static int peek_from(wr_chan *c, uint32_t k, wr_rec *recs, size_t max) {
  wr_arena *a = c->a;
  struct lside *s = &c->ls[k];
  if (max > c->cap) max = c->cap;
  if (max > INT_MAX) max = INT_MAX;
  size_t m = 0;
  for (; m < max; m++) {
    const struct wr__rslot *r = slot_at(s, c->stride, s->pos + m);
    if (m && !stamped(r, s->pos + m)) break; /* the first one was checked */
    wr_rec *rec = &recs[m];
    size_t i = m;
    rec->len = REC_LEN(r);
    rec->flags = REC_IS_BLOCK(r) ? WR_REC_BLOCK : 0;
    rec->key = r->key;
    rec->seq = s->pos + i;
    rec->lane = k;
    rec->pad = 0;
    if (rec->flags) {
      rec->data = wr__ptr_checked(a, rslot_block(r), rec->len ? rec->len : 1);
      if (!rec->data) return -WR_ECORRUPT;
      s->blocks++;
    } else {
      if (rec->len > c->slot_size) return -WR_ECORRUPT;
      rec->data = r->data;
    }
  }
  s->pos += m;
  atomic_store_explicit(&s->l->peek_hi, s->pos, memory_order_relaxed);
  wr__beat(c->hb);
  WR_CRASH_POINT(CHAN_PEEK_AFTER_MARK);
  return (int)m;
}

int wr_chan_peek_batch(wr_chan *c, wr_rec *recs, size_t max, int64_t timeout_ns) {
  if (c->role != WR_CONSUMER || !recs || !max) return -WR_EINVAL;
  for (;;) {
    for (uint32_t i = 0; i < c->n; i++) {
      uint32_t k = c->rr + i < c->n ? c->rr + i : c->rr + i - c->n;
      if (has_data(c, &c->ls[k])) {
        c->rr = k + 1 < c->n ? k + 1 : 0;
        return peek_from(c, k, recs, max);
      }
    }
    uint32_t closed = 0; /* all closed: drained (EOF) or a last record came */
    for (uint32_t k = 0; k < c->n; k++) closed += lane_closed(&c->ls[k]);
    int rc;
    if (closed == c->n && (rc = cons_ready(c, 0)) != 0) {
      if (rc < 0) return rc;
      continue;
    }
    struct wr__lane *l = c->ls[c->rr].l;
    uint64_t ew = atomic_load_explicit(&l->empty_waits, memory_order_relaxed);
    atomic_store_explicit(&l->empty_waits, ew + 1, memory_order_relaxed);
    rc = block(c, cons_ready, 0, timeout_ns);
    if (rc) return rc;
  }
}

int wr_chan_peek(wr_chan *c, wr_rec *rec, int64_t timeout_ns) {
  int rc = wr_chan_peek_batch(c, rec, 1, timeout_ns);
  return rc < 0 ? rc : 0;
}

/* Release [head, rec->seq] of rec's lane; keep: rec's block becomes ours. */
static int release_to(wr_chan *c, const wr_rec *rec, void **keep) {
  wr_arena *a = c->a;
  if (c->role != WR_CONSUMER || !rec || rec->lane >= c->n) return -WR_EINVAL;
  struct lside *s = &c->ls[rec->lane];
  uint64_t target = rec->seq + 1;
  if (target <= s->head || target > s->pos) return -WR_EINVAL;
  if (keep && !REC_IS_BLOCK(slot_at(s, c->stride, rec->seq))) return -WR_EINVAL;
  wr_tag lt = wr__tag_lane(s->idx);
  for (uint64_t q = s->head; s->blocks && q < target; q++) {
    const struct wr__rslot *r = slot_at(s, c->stride, q);
    if (!REC_IS_BLOCK(r)) continue;
    uint64_t off = rslot_block(r);
    s->blocks--;
    /* lane -> us first: a crash from here until head moves leaves a
     * live-range block owned by us, which wr_chan_reclaim puts back */
    if (wr__heap_transfer(a, off, lt, a->tag) != 0) return -WR_ECORRUPT; /* not the lane's */
    WR_CRASH_POINT(CHAN_RELEASE_AFTER_TRANSFER);
    s->head = q + 1;
    atomic_store_explicit(&s->l->head, s->head, memory_order_release); /* pairs: has_room */
    WR_CRASH_POINT(CHAN_RELEASE_AFTER_HEAD);
    if (keep && q == rec->seq)
      *keep = a->base + off;
    else
      wr_free(a, a->base + off);
    WR_CRASH_POINT(CHAN_RELEASE_AFTER_FREE);
  }
  s->head = target;
  /* pairs with the acquire load of head in has_room */
  atomic_store_explicit(&s->l->head, target, memory_order_release);
  wake(s->peer);
  return 0;
}

int wr_chan_release(wr_chan *c, const wr_rec *rec) { return release_to(c, rec, NULL); }

int wr_rec_take(wr_chan *c, const wr_rec *rec, void **block) {
  if (!block) return -WR_EINVAL;
  *block = NULL;
  int rc = release_to(c, rec, block);
  return rc;
}

int wr_chan_recv(wr_chan *c, void *buf, size_t cap, int64_t timeout_ns) {
  wr_rec rec;
  int rc = wr_chan_peek_batch(c, &rec, 1, timeout_ns);
  if (rc < 0) return rc;
  if (rec.len > cap || rec.len > INT_MAX) {
    struct lside *s = &c->ls[rec.lane]; /* un-peek: it stays first */
    s->pos--;
    if (rec.flags) s->blocks--;
    atomic_store_explicit(&s->l->peek_hi, s->pos, memory_order_relaxed);
    return -WR_EMSGSIZE;
  }
  memcpy(buf, rec.data, rec.len);
  rc = release_to(c, &rec, NULL);
  return rc ? rc : (int)rec.len;
}

/* ------------------------------------------------------------ close */

static void close_lane(struct wr__chan *ch, struct wr__lane *l, uint32_t side) {
  /* pairs with the acquire load in lane_closed */
  atomic_fetch_or_explicit(&l->closed, side, memory_order_release);
  /* the indexes are checked: the supervisor closes lanes of a scribbled arena too */
  if (l->producer < ch->producers) wake(wait_line(ch, l->producer));
  if (l->consumer < ch->consumers) wake(wait_line(ch, ch->producers + l->consumer));
}

int wr_chan_close(wr_chan *c) {
  uint32_t side = c->role == WR_PRODUCER ? SIDE_PRODUCER : SIDE_CONSUMER;
  for (uint32_t k = 0; k < c->n; k++) close_lane(c->ch, c->ls[k].l, side);
  return 0;
}

int wr_chan_close_side(wr_arena *a, const char *name, int role, uint32_t index) {
  struct wr__chan *ch;
  int rc = chan_get(a, name, &ch, NULL);
  if (rc) return rc;
  if ((role != WR_PRODUCER && role != WR_CONSUMER) ||
      index >= (role == WR_PRODUCER ? ch->producers : ch->consumers))
    return -WR_EINVAL;
  uint32_t *lt = lane_table(ch);
  for (uint32_t i = 0; i < ch->nlanes; i++) {
    struct wr__lane *l = lane_get(a, lt[i]);
    if (!l) return -WR_ECORRUPT;
    if ((role == WR_PRODUCER ? l->producer : l->consumer) == index)
      close_lane(ch, l, role == WR_PRODUCER ? SIDE_PRODUCER : SIDE_CONSUMER);
  }
  return 0;
}

/* ------------------------------------------------------------ open / detach */

int wr_chan_open(wr_arena *a, const char *name, int role, uint32_t index, wr_chan **out) {
  struct wr__chan *ch;
  if (!a->tag || (role != WR_PRODUCER && role != WR_CONSUMER) || !out) return -WR_EINVAL;
  int rc = chan_get(a, name, &ch, NULL);
  if (rc) return rc;
  bool prod = role == WR_PRODUCER;
  if (index >= (prod ? ch->producers : ch->consumers)) return -WR_EINVAL;
  wr__lane_owns_hook = lane_owns;
  wr__fence_register();
  uint32_t n = prod ? ch->consumers : ch->producers;
  wr_chan *c = calloc(1, sizeof *c + n * sizeof(struct lside));
  if (!c) return -ENOMEM;
  c->a = a;
  c->ch = ch;
  c->role = role;
  c->index = index;
  c->n = n;
  c->keyed = (ch->flags & WR_CHAN_KEYED) != 0;
  c->cap = ch->capacity;
  c->stride = ch->stride;
  c->slot_size = ch->slot_size;
  c->spin_ns = 16000;
  c->hb = &a->slots[a->slot].heartbeat;
  c->self = wait_line(ch, prod ? index : ch->producers + index);
  uint32_t *lt = lane_table(ch);
  uint32_t k;
  for (k = 0; k < n; k++) {
    uint32_t i = prod ? index * ch->consumers + k : k * ch->consumers + index;
    struct wr__lane *l = lane_get(a, lt[i]);
    if (!l || l->capacity != c->cap || l->stride != c->stride) {
      rc = -WR_ECORRUPT;
      break;
    }
    _Atomic uint32_t *side = prod ? &l->prod_tag : &l->cons_tag;
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong(side, &zero, a->tag)) {
      rc = -WR_EAGAIN;
      break;
    }
    struct lside *s = &c->ls[k];
    s->l = l;
    s->ring = (uint8_t *)l + l->ring_off;
    s->idx = lt[i];
    s->mask = l->mask;
    if (prod) {
      s->pos = atomic_load(&l->tail);
      s->other = atomic_load(&l->head);
      s->bytes = atomic_load(&l->bytes);
      s->hwm = atomic_load(&l->hwm);
      s->peer = wait_line(ch, ch->producers + l->consumer);
    } else {
      s->pos = s->head = atomic_load(&l->head);
      s->other = atomic_load(&l->tail);
      atomic_store(&l->peek_hi, s->pos);
      s->peer = wait_line(ch, l->producer);
    }
  }
  if (rc) {
    while (k-- > 0) atomic_store(prod ? &c->ls[k].l->prod_tag : &c->ls[k].l->cons_tag, 0);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void wr_chan_detach(wr_chan *c) {
  if (!c) return;
  for (uint32_t k = 0; k < c->n; k++) {
    struct lside *s = &c->ls[k];
    if (c->role == WR_CONSUMER && s->pos > s->head) {
      atomic_store(&s->l->peek_hi, s->head);
      atomic_fetch_add(&s->l->redelivered, s->pos - s->head);
    }
    uint32_t me = c->a->tag;
    atomic_compare_exchange_strong(c->role == WR_PRODUCER ? &s->l->prod_tag : &s->l->cons_tag,
                                   &me, 0);
  }
  free(c);
}

/* ------------------------------------------------------------ create / destroy */

/* Undo a creation that did not bind its name: unregister and free every lane
 * whose header names descriptor doff (scan, not the descriptor's table: the
 * creator may have died between claiming an entry and recording it). */
static void create_rollback(wr_arena *a, uint64_t doff) {
  for (uint32_t j = 0; j < WR__MAX_LANES; j++) {
    uint64_t off = atomic_load(&a->lanes[j]);
    if (!off) continue;
    struct wr__lane *l = wr__ptr_checked(a, WR__ALIGN_UP(off, WR__CACHELINE), sizeof *l);
    if (!l || l->magic != LANE_MAGIC || l->chan_off != doff || l->block_off != off) continue;
    wr__heap_free_as(a, off, wr__tag_lane(j)); /* fails harmlessly if still a worker's */
    atomic_compare_exchange_strong(&a->lanes[j], &off, 0);
  }
}

int wr_chan_create(wr_arena *a, const char *name, const wr_chan_opts *o) {
  int rc = name_check(name);
  if (rc) return rc;
  if (!o || !a->tag || o->capacity == 0 || o->capacity > MAX_CAPACITY || o->slot_size < 8 ||
      o->slot_size > MAX_SLOT_SIZE || (o->flags & ~WR_CHAN_KEYED))
    return -WR_EINVAL;
  uint32_t P = o->producers ? o->producers : 1, C = o->consumers ? o->consumers : 1;
  if ((uint64_t)P * C > WR__MAX_LANES) return -WR_EINVAL;
  if (wr_name_lookup(a, name, NULL, NULL) == 0) return -WR_EEXIST;
  wr__lane_owns_hook = lane_owns;
  uint32_t nl = P * C, cap = pow2_up(o->capacity);
  uint32_t stride = (uint32_t)(sizeof(struct wr__rslot) + WR__ALIGN_UP(o->slot_size, 16));
  uint64_t ring = (uint64_t)cap * stride;
  if (ring > wr_arena_size(a)) return -WR_ENOMEM;

  size_t dsize = sizeof(struct wr__chan) + WR__CACHELINE + (size_t)(P + C) * WR__CACHELINE +
                 4u * (size_t)nl;
  void *dp;
  rc = wr_calloc(a, 1, dsize, &dp);
  if (rc) return rc;
  struct wr__chan *ch = dp;
  uint64_t doff = wr_off(a, dp);
  ch->capacity = cap;
  ch->slot_size = o->slot_size;
  ch->stride = stride;
  ch->producers = P;
  ch->consumers = C;
  ch->flags = o->flags;
  ch->nlanes = nl;
  ch->wait_off = (uint32_t)(WR__ALIGN_UP(doff + sizeof *ch, WR__CACHELINE) - doff);
  ch->lanes_off = ch->wait_off + (P + C) * WR__CACHELINE;
  strcpy(ch->name, name);
  ch->magic = CHAN_MAGIC;

  void **blocks = calloc(nl, sizeof *blocks);
  if (!blocks) {
    wr_free(a, dp);
    return -ENOMEM;
  }
  intent_set(a, WR__OP_CHAN_CREATE, doff, 0, 0);
  uint32_t *lt = lane_table(ch);
  for (uint32_t i = 0; i < nl && !rc; i++) {
    rc = wr_alloc(a, WR__CACHELINE + sizeof(struct wr__lane) + ring, &blocks[i]);
    if (rc) break;
    uint64_t boff = wr_off(a, blocks[i]);
    struct wr__lane *l = (struct wr__lane *)(a->base + WR__ALIGN_UP(boff, WR__CACHELINE));
    memset(l, 0, sizeof *l);
    l->capacity = cap;
    l->mask = cap - 1;
    l->stride = stride;
    l->slot_size = o->slot_size;
    l->producer = i / C;
    l->consumer = i % C;
    l->ring_off = sizeof *l;
    l->chan_off = doff;
    l->block_off = boff;
    l->index = UINT32_MAX;
    l->magic = LANE_MAGIC;
    rc = -WR_ENOMEM;
    for (uint32_t j = 0; j < WR__MAX_LANES; j++) {
      uint64_t zero = 0;
      if (atomic_load_explicit(&a->lanes[j], memory_order_relaxed)) continue;
      l->index = j;
      /* release: the lane's constants before its registration; pairs with
       * the acquire load in lane_get */
      if (!atomic_compare_exchange_strong_explicit(&a->lanes[j], &zero, boff,
                                                   memory_order_release, memory_order_relaxed))
        continue;
      lt[i] = j;
      rc = wr__heap_transfer(a, boff, a->tag, wr__tag_lane(j));
      break;
    }
  }
  if (!rc) {
    WR_CRASH_POINT(CHAN_CREATE_AFTER_LANES);
    rc = wr_name_bind(a, name, WR_KIND_CHAN, doff); /* the commit */
  }
  if (rc) {
    create_rollback(a, doff);
    for (uint32_t i = 0; i < nl; i++)
      if (blocks[i] && wr__heap_owner(a, wr_off(a, blocks[i])) == a->tag) wr_free(a, blocks[i]);
    wr_free(a, dp);
  }
  intent_clear(a);
  free(blocks);
  return rc;
}

/* Free every lane of descriptor ch (at doff) and what is in flight in it.
 * Idempotent: a lane already gone is skipped. */
static void destroy_lanes(wr_arena *a, struct wr__chan *ch, uint64_t doff) {
  uint32_t *lt = lane_table(ch);
  for (uint32_t i = 0; i < ch->nlanes; i++) {
    uint32_t j = lt[i];
    struct wr__lane *l = lane_get(a, j);
    if (!l || l->chan_off != doff) continue;
    uint64_t h = atomic_load(&l->head), t = live_end(l, h);
    struct lside s = {.l = l, .ring = (uint8_t *)l + l->ring_off, .mask = l->mask};
    for (uint64_t q = h; q < t; q++) {
      const struct wr__rslot *r = slot_at(&s, l->stride, q);
      if (REC_IS_BLOCK(r)) wr__heap_free_as(a, rslot_block(r), wr__tag_lane(j));
    }
    uint64_t off = l->block_off;
    wr__heap_free_as(a, off, wr__tag_lane(j));
    atomic_compare_exchange_strong(&a->lanes[j], &off, 0);
  }
}

int wr_chan_destroy(wr_arena *a, const char *name) {
  struct wr__chan *ch;
  uint64_t doff;
  int rc = chan_get(a, name, &ch, &doff);
  if (rc) return rc;
  if (!a->tag) return -WR_EINVAL;
  intent_set(a, WR__OP_CHAN_DESTROY, doff, wr__heap_owner(a, doff), 0);
  destroy_lanes(a, ch, doff);
  WR_CRASH_POINT(CHAN_DESTROY_MID);
  rc = wr_name_unbind(a, name);
  intent_clear(a);
  return rc;
}

/* ------------------------------------------------------------ reclaim */

/* Roll the dead worker's channel intent forward or back. */
static void intent_recover(wr_arena *a, struct wr__intent *in, uint32_t op, wr_tag T) {
  switch (op) {
  case WR__OP_CHAN_CREATE:
    /* bound (owned by a name): committed; still the creator's: undo */
    if (wr__heap_owner(a, in->obj) == T) create_rollback(a, in->obj);
    break;
  case WR__OP_CHAN_DESTROY: {
    struct wr__chan *ch = chan_at(a, in->obj);
    if (!ch || wr__heap_owner(a, in->obj) != in->arg) break;
    char name[WR_NAME_MAX];
    memcpy(name, ch->name, sizeof name);
    name[WR_NAME_MAX - 1] = 0;
    struct wr__chan *cur;
    uint64_t doff;
    if (chan_get(a, name, &cur, &doff) || doff != in->obj) break;
    destroy_lanes(a, ch, in->obj);
    wr_name_unbind(a, name);
    break;
  }
  case WR__OP_CHAN_SEND_BLOCK: {
    /* Transferred to the lane but not published: publish it (its slot was
     * written before the transfer). Not transferred: heap reclaim frees it. */
    uint32_t j = (uint32_t)in->obj;
    struct wr__lane *l = lane_get(a, j);
    if (!l) break;
    uint64_t h = atomic_load(&l->head), t = live_end(l, h);
    if (t != in->arg || t - h >= l->capacity) break; /* stamped already, or no room */
    if (wr__heap_owner(a, in->arg2) != wr__tag_lane(j)) break;
    struct lside s = {.l = l, .ring = (uint8_t *)l + l->ring_off, .mask = l->mask};
    struct wr__rslot *r = slot_at(&s, l->stride, t);
    if (!REC_IS_BLOCK(r) || rslot_block(r) != in->arg2) break;
    stamp(r, t);
    atomic_store_explicit(&l->tail, t + 1, memory_order_release);
    struct wr__chan *ch = chan_at(a, l->chan_off);
    if (ch && l->consumer < ch->consumers) wake(wait_line(ch, ch->producers + l->consumer));
    break;
  }
  default:
    break;
  }
}

int wr_chan_reclaim(wr_arena *a, uint32_t slot, uint32_t inc, uint64_t *redelivered) {
  uint64_t red = 0;
  if (slot >= WR_MAX_SLOTS) return -WR_EINVAL;
  struct wr__slot *sl = &a->slots[slot];
  uint32_t st = atomic_load(&sl->state);
  bool current = atomic_load(&sl->incarnation) == inc;
  if (current && (st == WR_SLOT_LIVE || st == WR_SLOT_RESERVED)) return -WR_EAGAIN;
  wr_tag T = wr__tag_worker(slot, inc);
  /* pairs with the release store of op in intent_set */
  uint32_t op = atomic_load_explicit(&sl->intent.op, memory_order_acquire);
  bool chan_op = current && op >= WR__OP_CHAN_FIRST && op < WR__OP_SYNC_FIRST;
  if (chan_op) intent_recover(a, &sl->intent, op, T);
  WR_CRASH_POINT(CHAN_RECLAIM_MID);
  for (uint32_t j = 0; j < WR__MAX_LANES; j++) {
    if (!atomic_load_explicit(&a->lanes[j], memory_order_relaxed)) continue;
    struct wr__lane *l = lane_get(a, j);
    if (!l) continue;
    if (atomic_load(&l->cons_tag) == T) {
      uint64_t h = atomic_load(&l->head), t = live_end(l, h);
      struct lside s = {.l = l, .ring = (uint8_t *)l + l->ring_off, .mask = l->mask};
      /* a block it was releasing: give it back to the lane (redelivered) */
      for (uint64_t q = h; q < t; q++) {
        const struct wr__rslot *r = slot_at(&s, l->stride, q);
        if (REC_IS_BLOCK(r) && wr__heap_owner(a, rslot_block(r)) == T)
          wr__heap_transfer(a, rslot_block(r), T, wr__tag_lane(j));
      }
      uint64_t hi = atomic_load(&l->peek_hi);
      atomic_store(&l->peek_hi, h);
      if (hi > h && hi <= t) {
        red += hi - h;
        atomic_fetch_add(&l->redelivered, hi - h);
      }
      uint32_t tt = T;
      atomic_compare_exchange_strong(&l->cons_tag, &tt, 0);
    }
    if (atomic_load(&l->prod_tag) == T) {
      /* records it stamped but did not publish are published: the tail
       * catches up, and its successor continues after them */
      uint64_t t = live_end(l, atomic_load(&l->head));
      if (t > atomic_load(&l->tail)) atomic_store(&l->tail, t);
      uint32_t tt = T;
      atomic_compare_exchange_strong(&l->prod_tag, &tt, 0);
    }
  }
  if (chan_op) atomic_store_explicit(&sl->intent.op, WR__OP_NONE, memory_order_release);
  if (redelivered) *redelivered = red;
  return 0;
}

/* ------------------------------------------------------------ checks, stats */

/* wr_heap_check hook: lane j owns its own block and the blocks of the
 * zero-copy records in its live range, nothing else. */
static bool lane_owns(const wr_arena *a, uint32_t j, wr_off_t off) {
  if (j >= WR__MAX_LANES) return false;
  if (atomic_load(&a->lanes[j]) == off) return true;
  struct wr__lane *l = lane_get(a, j);
  if (!l) return false;
  uint64_t h = atomic_load(&l->head), t = live_end(l, h);
  struct lside s = {.l = l, .ring = (uint8_t *)l + l->ring_off, .mask = l->mask};
  for (uint64_t q = h; q < t; q++) {
    const struct wr__rslot *r = slot_at(&s, l->stride, q);
    if (REC_IS_BLOCK(r) && rslot_block(r) == off) return true;
  }
  return false;
}

/* The next channel bound at directory entry *e or later: its name copied
 * out (NUL-terminated), *e moved past it. 0 when there is none left. */
static int next_chan(wr_arena *a, uint32_t *e, char name[WR_NAME_MAX]) {
  for (; *e < WR__DIR_ENTRIES; (*e)++) {
    const struct wr__dir_entry *d = &a->dir[*e];
    /* pairs with the release store of BOUND in wr_name_bind */
    if (atomic_load_explicit(&d->state, memory_order_acquire) != WR__DIR_BOUND ||
        d->kind != WR_KIND_CHAN)
      continue;
    memcpy(name, d->name, WR_NAME_MAX);
    name[WR_NAME_MAX - 1] = 0;
    (*e)++;
    return 1;
  }
  return 0;
}

#define FAIL(...)                                \
  do {                                           \
    if (why) snprintf(why, whylen, __VA_ARGS__); \
    return -WR_ECORRUPT;                         \
  } while (0)

int wr_chan_check(wr_arena *a, char *why, size_t whylen) {
  wr__lane_owns_hook = lane_owns;
  if (why && whylen) why[0] = 0;
  /* every channel's lane table names registered lanes that point back */
  char name[WR_NAME_MAX];
  for (uint32_t e = 0; next_chan(a, &e, name);) {
    struct wr__chan *ch;
    uint64_t doff;
    if (chan_get(a, name, &ch, &doff)) FAIL("channel '%s': bad descriptor", name);
    uint32_t *lt = lane_table(ch);
    for (uint32_t i = 0; i < ch->nlanes; i++) {
      struct wr__lane *l = lane_get(a, lt[i]);
      if (!l || l->chan_off != doff || l->producer != i / ch->consumers ||
          l->consumer != i % ch->consumers || l->capacity != ch->capacity)
        FAIL("channel '%s': lane %u (table entry %u) missing or not its own", name, i, lt[i]);
    }
  }
  for (uint32_t j = 0; j < WR__MAX_LANES; j++) {
    if (!atomic_load(&a->lanes[j])) continue;
    struct wr__lane *l = lane_get(a, j);
    if (!l) FAIL("lane %u: bad header or out of bounds", j);
    if (!chan_at(a, l->chan_off)) FAIL("lane %u: no channel descriptor", j);
    uint64_t h = atomic_load(&l->head), t = live_end(l, h), raw = atomic_load(&l->tail);
    if (raw > h && raw - h > l->capacity)
      FAIL("lane %u: tail %llu more than a ring past head %llu", j, (unsigned long long)raw,
           (unsigned long long)h);
    if (h > t) FAIL("lane %u: head %llu past tail %llu", j, (unsigned long long)h,
                    (unsigned long long)t);
    if (t - h > l->capacity) FAIL("lane %u: depth %llu over capacity %u", j,
                                  (unsigned long long)(t - h), l->capacity);
    wr_tag ct = atomic_load(&l->cons_tag);
    struct lside s = {.l = l, .ring = (uint8_t *)l + l->ring_off, .mask = l->mask};
    for (uint64_t q = h; q < t; q++) {
      const struct wr__rslot *r = slot_at(&s, l->stride, q);
      if (!REC_IS_BLOCK(r)) {
        if (REC_LEN(r) > l->slot_size) FAIL("lane %u seq %llu: length %u", j,
                                            (unsigned long long)q, REC_LEN(r));
        continue;
      }
      uint64_t off = rslot_block(r);
      wr_tag t2 = wr__heap_owner(a, off);
      /* its live consumer may be between "take from lane" and "move head" */
      if (t2 != wr__tag_lane(j) && !(t2 == ct && wr__worker_tag_live(a, ct)))
        FAIL("lane %u seq %llu: block 0x%llx owned by 0x%08x, not the lane", j,
             (unsigned long long)q, (unsigned long long)off, t2);
      if (!wr__ptr_checked(a, off, REC_LEN(r))) FAIL("lane %u seq %llu: block out of bounds", j,
                                                 (unsigned long long)q);
    }
  }
  return 0;
}

int wr_chan_stats(wr_arena *a, const char *name, wr_lane_stats *out, size_t max) {
  struct wr__chan *ch;
  int rc = chan_get(a, name, &ch, NULL);
  if (rc) return rc;
  uint32_t *lt = lane_table(ch);
  for (uint32_t i = 0; i < ch->nlanes && i < max; i++) {
    wr_lane_stats *o = &out[i];
    memset(o, 0, sizeof *o);
    struct wr__lane *l = lane_get(a, lt[i]);
    if (!l) return -WR_ECORRUPT;
    o->producer = l->producer;
    o->consumer = l->consumer;
    o->capacity = l->capacity;
    o->slot_size = l->slot_size;
    o->received = atomic_load_explicit(&l->head, memory_order_relaxed);
    o->sent = atomic_load_explicit(&l->tail, memory_order_relaxed);
    o->depth = o->sent >= o->received ? o->sent - o->received : 0;
    o->bytes = atomic_load_explicit(&l->bytes, memory_order_relaxed);
    o->hwm = atomic_load_explicit(&l->hwm, memory_order_relaxed);
    o->full_waits = atomic_load_explicit(&l->full_waits, memory_order_relaxed);
    o->empty_waits = atomic_load_explicit(&l->empty_waits, memory_order_relaxed);
    o->redelivered = atomic_load_explicit(&l->redelivered, memory_order_relaxed);
    o->producer_tag = atomic_load_explicit(&l->prod_tag, memory_order_relaxed);
    o->consumer_tag = atomic_load_explicit(&l->cons_tag, memory_order_relaxed);
    o->closed = atomic_load_explicit(&l->closed, memory_order_relaxed);
  }
  return (int)ch->nlanes;
}

int wr_chan_foreach(wr_arena *a, int (*fn)(const char *, const wr_chan_opts *, void *),
                    void *ctx) {
  char name[WR_NAME_MAX];
  for (uint32_t e = 0; next_chan(a, &e, name);) {
    struct wr__chan *ch;
    if (chan_get(a, name, &ch, NULL)) continue;
    wr_chan_opts o = {ch->capacity, ch->slot_size, ch->producers, ch->consumers, ch->flags};
    int rc = fn(name, &o, ctx);
    if (rc) return rc;
  }
  return 0;
}
