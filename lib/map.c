/*
 * map.c: the seeds' shared containers: a hash map (byte keys to byte
 * values or heap blocks) and a fixed array, each one heap block cut into
 * stripes, each stripe behind its own robust lock word (mutex.c).
 *
 * Layout of a map: header, then `stripes` stripe records (lock, undo
 * bookkeeping, an undo copy of one slot; each on its own cache lines), then
 * capacity fixed-size slots. A key hashes to a stripe and to a start slot
 * inside it; linear probing stays inside the stripe (tombstones keep
 * chains intact). An array's "slots" are its elements, stripe = i / per.
 *
 * Crash consistency: a writer holding a stripe lock copies the slot it is
 * about to change (and the stripe's count) into the stripe's undo area and
 * sets undo_valid before touching the slot, and clears it when done. A
 * writer that dies leaves its tag in the lock word; wr_sync_reclaim (or a
 * locker that finds the word owner-dead) copies the undo back, so the
 * stripe is always in its state before or after one whole operation.
 * Blocks stored as values are owned by the map's name; the intent record
 * (WR__OP_MAP_BLOCK: new block, replaced block) lets the reclaimer free a
 * block that ended up owned by the map but referenced by no slot.
 */
#include "sync.h"

#include <stdlib.h>
#include <string.h>

enum { SL_EMPTY = 0, SL_FULL = 1, SL_TOMB = 2 };
#define SL_BLOCK 1u

struct wr__map {
  uint32_t magic;
  uint32_t capacity, key_max, value_max;
  uint32_t nstripes, per_stripe;
  uint32_t slot_size, stripe_size; /* bytes, both multiples of 64 / 8 */
  uint64_t stripes_off, slots_off; /* from the object's start */
  uint32_t kind, pad;
  uint8_t pad2[8];
};
_Static_assert(sizeof(struct wr__map) == 64, "map header size");

struct wr__stripe {
  _Atomic uint32_t lock;
  uint32_t undo_valid;
  uint32_t undo_index; /* slot index (global) the undo copy belongs to */
  uint32_t count, undo_count;
  uint32_t pad[3];
  uint8_t undo[]; /* slot_size bytes */
};
_Static_assert(sizeof(struct wr__stripe) == 32, "stripe header size");

struct wr__mslot {
  uint32_t state, hash, klen, vlen, flags, pad;
  uint8_t kv[]; /* key_max bytes of key, then value_max bytes of value */
};
_Static_assert(sizeof(struct wr__mslot) == 24, "map slot header size");

struct wr_map {
  struct wr__handle h;
};
struct wr_array {
  struct wr__handle h;
};

static inline struct wr__stripe *stripe(struct wr__map *m, uint32_t s) {
  return (struct wr__stripe *)((uint8_t *)m + m->stripes_off + (uint64_t)s * m->stripe_size);
}
static inline uint8_t *slot_at(struct wr__map *m, uint32_t i) {
  return (uint8_t *)m + m->slots_off + (uint64_t)i * m->slot_size;
}

static uint64_t obj_size(const struct wr__map *m) {
  return m->slots_off + (uint64_t)m->capacity * m->slot_size;
}

/* Fill a header for capacity slots of slot_size bytes; 0 or -WR_EINVAL. */
static int geometry(struct wr__map *m, uint32_t cap, uint32_t nstripes, uint64_t slot_size) {
  if (cap == 0 || slot_size == 0 || slot_size > (1u << 24)) return -WR_EINVAL;
  if (nstripes == 0) nstripes = 16;
  if (nstripes > cap) nstripes = cap;
  while (cap % nstripes)
    nstripes--;
  m->capacity = cap;
  m->nstripes = nstripes;
  m->per_stripe = cap / nstripes;
  m->slot_size = (uint32_t)WR__ALIGN_UP(slot_size, 8);
  m->stripe_size = (uint32_t)WR__ALIGN_UP(sizeof(struct wr__stripe) + m->slot_size, 64);
  m->stripes_off = sizeof(struct wr__map);
  m->slots_off = m->stripes_off + (uint64_t)nstripes * m->stripe_size;
  if (obj_size(m) > (1ull << 36)) return -WR_EINVAL;
  return 0;
}

static void hdr_init(void *obj, const void *arg) { memcpy(obj, arg, sizeof(struct wr__map)); }

/* ------------------------------------------------------------ stripe locks */

/* Put the stripe back to its state before the interrupted operation. */
static void stripe_repair(struct wr__map *m, struct wr__stripe *st) {
  if (!st->undo_valid) return;
  if (st->undo_index < m->capacity) {
    memcpy(slot_at(m, st->undo_index), st->undo, m->slot_size);
    st->count = st->undo_count;
  }
  st->undo_valid = 0;
}

static int stripe_lock(struct wr__handle *h, struct wr__stripe *st) {
  int rc = wr__lock_word(h->a, &st->lock, h->off, (int)h->kind, -1);
  if (rc == 1) { /* from a dead owner the reclaimer did not see yet */
    stripe_repair(h->obj, st);
    rc = 0;
  }
  return rc == -WR_EDEADLK ? -WR_EDEADLK : rc;
}

static void stripe_unlock(struct wr__stripe *st) { wr__unlock_word(&st->lock, false, 1); }

static void undo_save(struct wr__map *m, struct wr__stripe *st, uint32_t i) {
  memcpy(st->undo, slot_at(m, i), m->slot_size);
  st->undo_index = i;
  st->undo_count = st->count;
  /* Read only by a repairer after our death (or ourselves). */
  atomic_thread_fence(memory_order_release);
  st->undo_valid = 1;
  WR_CRASH_POINT(MAP_PUT_AFTER_UNDO);
}

static void undo_drop(struct wr__stripe *st) {
  atomic_thread_fence(memory_order_release);
  st->undo_valid = 0;
  WR_CRASH_POINT(MAP_PUT_AFTER_WRITE);
}

/* ------------------------------------------------------------ map */

int wr_map_create(wr_arena *a, const char *name, const wr_map_opts *o) {
  if (!o || o->key_max == 0 || o->capacity == 0) return -WR_EINVAL;
  struct wr__map m;
  memset(&m, 0, sizeof m);
  int rc = geometry(&m, o->capacity, o->stripes,
                    sizeof(struct wr__mslot) + (uint64_t)o->key_max + o->value_max);
  if (rc) return rc;
  m.magic = WR__MAGIC_MAP;
  m.kind = WR_KIND_MAP;
  m.key_max = o->key_max;
  m.value_max = o->value_max;
  return wr__obj_create(a, name, WR_KIND_MAP, obj_size(&m), hdr_init, &m, NULL);
}

/* Validate a header read from shared memory before trusting its numbers. */
static bool hdr_ok(const wr_arena *a, struct wr__map *m) {
  struct wr__map g;
  memset(&g, 0, sizeof g);
  uint64_t ss = m->slot_size;
  if (geometry(&g, m->capacity, m->nstripes, ss) || g.nstripes != m->nstripes ||
      g.slot_size != m->slot_size || g.stripes_off != m->stripes_off ||
      g.slots_off != m->slots_off || g.stripe_size != m->stripe_size)
    return false;
  if (m->kind == WR_KIND_MAP &&
      sizeof(struct wr__mslot) + (uint64_t)m->key_max + m->value_max > m->slot_size)
    return false;
  return wr_block_size(a, m) >= obj_size(m);
}

static int open_kind(wr_arena *a, const char *name, int kind, uint32_t magic,
                     struct wr__handle **out) {
  struct wr__handle *h;
  int rc = wr__obj_open(a, name, kind, magic, sizeof(struct wr__map), &h);
  if (rc) return rc;
  struct wr__map *m = h->obj;
  if (m->kind != (uint32_t)kind || !hdr_ok(a, m)) {
    free(h);
    return -WR_ECORRUPT;
  }
  for (uint32_t e = 0; e < WR__DIR_ENTRIES; e++)
    *out = h;
  return 0;
}

int wr_map_open(wr_arena *a, const char *name, wr_map **out) {
  return open_kind(a, name, WR_KIND_MAP, WR__MAGIC_MAP, (struct wr__handle **)out);
}
void wr_map_close(wr_map *m) { free(m); }

static uint64_t hash_bytes(const void *k, size_t n) {
  const uint8_t *p = k;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h = (h ^ v) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  memcpy(&v, p, n);
  h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 32);
}

/* Find key in its stripe (locked). Returns the slot index, or -1 with
 * *free_at the first reusable slot (-1 if the stripe is full). */
static int64_t probe(struct wr__map *m, uint32_t s, uint32_t hash, const void *key, size_t klen,
                     int64_t *free_at) {
  uint32_t per = m->per_stripe, base = s * per, start = (hash >> 7) % per;
  *free_at = -1;
  for (uint32_t k = 0; k < per; k++) {
    uint32_t i = base + (start + k) % per;
    struct wr__mslot *sl = (struct wr__mslot *)slot_at(m, i);
    if (sl->state == SL_EMPTY) {
      if (*free_at < 0) *free_at = i;
      return -1;
    }
    if (sl->state == SL_TOMB) {
      if (*free_at < 0) *free_at = i;
      continue;
    }
    if (sl->hash == hash && sl->klen == klen && memcmp(sl->kv, key, klen) == 0) return i;
  }
  return -1;
}

/* Lock key's stripe and probe it: *st the stripe, *hash the key's hash,
 * *i its slot or -1, *fr as probe's. 0 with the stripe locked, else an
 * error with nothing held. */
static int lock_key(struct wr__handle *h, const void *key, size_t klen, struct wr__stripe **st,
                    uint32_t *hash, int64_t *i, int64_t *fr) {
  struct wr__map *m = h->obj;
  if (klen == 0 || klen > m->key_max) return -WR_EMSGSIZE;
  uint64_t hv = hash_bytes(key, klen);
  uint32_t s = (uint32_t)(hv % m->nstripes);
  *hash = (uint32_t)(hv >> 32);
  *st = stripe(m, s);
  int rc = stripe_lock(h, *st);
  if (rc) return rc;
  *i = probe(m, s, *hash, key, klen, fr);
  return 0;
}

static inline struct wr__mslot *mslot(struct wr__map *m, int64_t i) {
  return (struct wr__mslot *)slot_at(m, (uint32_t)i);
}

/* The block a slot holds, if it holds one. */
static wr_off_t slot_block(struct wr__map *m, int64_t i) {
  struct wr__mslot *sl = mslot(m, i);
  wr_off_t o = 0;
  if (sl->state == SL_FULL && (sl->flags & SL_BLOCK)) memcpy(&o, sl->kv + m->key_max, 8);
  return o;
}

static inline void intent_set(wr_arena *a, wr_off_t map, wr_off_t nblock, wr_off_t oblock) {
  struct wr__intent *in = &a->slots[a->slot].intent;
  in->obj = map;
  in->arg = nblock;
  in->arg2 = oblock;
  /* read by the reclaimer after our death; pairs with its acquire */
  atomic_store_explicit(&in->op, WR__OP_MAP_BLOCK, memory_order_release);
}

static inline void intent_clear(wr_arena *a) {
  atomic_store_explicit(&a->slots[a->slot].intent.op, WR__OP_NONE, memory_order_release);
}

/* Insert/replace (val != NULL) or delete (val == NULL) under the lock. */
static int map_write(wr_map *mh, const void *key, size_t klen, const void *val, size_t vlen,
                     uint32_t flags) {
  struct wr__handle *h = &mh->h;
  wr_arena *a = h->a;
  struct wr__map *m = h->obj;
  if (!a->tag) return -WR_EINVAL;
  if (vlen > m->value_max) return -WR_EMSGSIZE;
  struct wr__stripe *st;
  uint32_t hash;
  int64_t i, fr;
  int rc = lock_key(h, key, klen, &st, &hash, &i, &fr);
  if (rc) return rc;
  if (!val && i < 0) {
    stripe_unlock(st);
    return -WR_ENOENT;
  }
  if (i < 0 && fr < 0) {
    stripe_unlock(st);
    return -WR_ENOMEM;
  }
  wr_off_t old = i >= 0 ? slot_block(m, i) : 0;
  wr_off_t nb = flags & SL_BLOCK ? *(const wr_off_t *)val : 0;
  wr_tag owner = wr__tag_name(h->entry);
  if (nb || old) intent_set(a, h->off, nb, old);
  if (nb) {
    rc = wr__heap_transfer(a, nb, a->tag, owner); /* the block is the map's from here */
    if (rc) {
      intent_clear(a);
      stripe_unlock(st);
      return rc;
    }
    WR_CRASH_POINT(MAP_BLOCK_AFTER_TRANSFER);
  }
  int64_t at = i >= 0 ? i : fr;
  undo_save(m, st, (uint32_t)at);
  struct wr__mslot *sl = mslot(m, at);
  if (val) {
    sl->hash = hash;
    sl->klen = (uint32_t)klen;
    sl->vlen = (uint32_t)vlen;
    sl->flags = flags;
    memcpy(sl->kv, key, klen);
    WR_CRASH_POINT(MAP_PUT_MID_WRITE);
    memcpy(sl->kv + m->key_max, val, vlen);
    if (i < 0) st->count++;
    sl->state = SL_FULL;
  } else {
    sl->state = SL_TOMB;
    st->count--;
  }
  undo_drop(st);
  if (old) wr__heap_free_as(a, old, owner);
  if (nb || old) intent_clear(a);
  stripe_unlock(st);
  return 0;
}

int wr_map_put(wr_map *m, const void *key, size_t klen, const void *val, size_t vlen) {
  if (!val && vlen) return -WR_EINVAL;
  return map_write(m, key, klen, val ? val : "", vlen, 0);
}

int wr_map_del(wr_map *m, const void *key, size_t klen) {
  return map_write(m, key, klen, NULL, 0, 0);
}

int wr_map_put_block(wr_map *mh, const void *key, size_t klen, void *block) {
  struct wr__map *m = mh->h.obj;
  wr_off_t o = wr_off(mh->h.a, block);
  if (!o || m->value_max < 8) return -WR_EINVAL;
  return map_write(mh, key, klen, &o, 8, SL_BLOCK);
}

/* Run fn on the slot of key, locked; fn gets the slot index or -1. */
static int map_read(wr_map *mh, const void *key, size_t klen, void *buf, size_t cap, void **block) {
  struct wr__handle *h = &mh->h;
  struct wr__map *m = h->obj;
  struct wr__stripe *st;
  uint32_t hash;
  int64_t i, fr;
  int rc = lock_key(h, key, klen, &st, &hash, &i, &fr);
  if (rc) return rc;
  if (i < 0) {
    rc = -WR_ENOENT;
  } else if (block) {
    wr_off_t o = slot_block(m, i);
    *block = wr__ptr_checked(h->a, o, 1);
    rc = *block ? 0 : -WR_EINVAL;
  } else {
    struct wr__mslot *sl = mslot(m, i);
    uint32_t n = sl->vlen <= m->value_max ? sl->vlen : m->value_max;
    if (cap) memcpy(buf, sl->kv + m->key_max, n < cap ? n : cap); /* buf may be NULL */
    rc = (int)n;
  }
  stripe_unlock(st);
  return rc;
}

int wr_map_get(wr_map *m, const void *key, size_t klen, void *buf, size_t cap) {
  return map_read(m, key, klen, buf, cap, NULL);
}

int wr_map_get_block(wr_map *m, const void *key, size_t klen, void **block) {
  return map_read(m, key, klen, NULL, 0, block);
}

int wr_map_group(wr_map *mh, const void *key, size_t klen, wr_map_fn fn, void *ctx) {
  struct wr__handle *h = &mh->h;
  struct wr__map *m = h->obj;
  if (!h->a->tag) return -WR_EINVAL;
  struct wr__stripe *st;
  uint32_t hash;
  int64_t i, fr;
  int rc = lock_key(h, key, klen, &st, &hash, &i, &fr);
  if (rc) return rc;
  if (i < 0 && fr < 0) {
    stripe_unlock(st);
    return -WR_ENOMEM;
  }
  int64_t at = i >= 0 ? i : fr;
  struct wr__mslot *sl = mslot(m, at);
  if (i >= 0 && (sl->flags & SL_BLOCK)) {
    stripe_unlock(st);
    return -WR_EINVAL; /* block values are replaced, not edited */
  }
  undo_save(m, st, (uint32_t)at);
  uint32_t len = i >= 0 ? sl->vlen : 0;
  rc = fn(sl->kv + m->key_max, &len, m->value_max, i >= 0, ctx);
  if (rc < 0 || len > m->value_max) {
    stripe_repair(m, st);
    stripe_unlock(st);
    return rc < 0 ? rc : -WR_EMSGSIZE;
  }
  if (rc == WR_MAP_DELETE) {
    if (i >= 0) {
      sl->state = SL_TOMB;
      st->count--;
    } else {
      memcpy(sl, st->undo, m->slot_size);
    }
  } else {
    if (i < 0) {
      sl->hash = hash;
      sl->klen = (uint32_t)klen;
      sl->flags = 0;
      memcpy(sl->kv, key, klen);
      st->count++;
    }
    sl->vlen = len;
    sl->state = SL_FULL;
  }
  undo_drop(st);
  stripe_unlock(st);
  return 0;
}

int64_t wr_map_count(wr_map *mh) {
  struct wr__map *m = mh->h.obj;
  int64_t n = 0;
  for (uint32_t s = 0; s < m->nstripes; s++) {
    struct wr__stripe *st = stripe(m, s);
    int rc = stripe_lock(&mh->h, st);
    if (rc) return rc;
    n += st->count;
    stripe_unlock(st);
  }
  return n;
}

uint32_t wr_map_capacity(const wr_map *mh) { return ((const struct wr__map *)mh->h.obj)->capacity; }

int wr_map_foreach(wr_map *mh, wr_map_each_fn fn, void *ctx) {
  struct wr__map *m = mh->h.obj;
  for (uint32_t s = 0; s < m->nstripes; s++) {
    struct wr__stripe *st = stripe(m, s);
    int rc = stripe_lock(&mh->h, st);
    if (rc) return rc;
    for (uint32_t i = s * m->per_stripe; rc == 0 && i < (s + 1) * m->per_stripe; i++) {
      struct wr__mslot *sl = mslot(m, i);
      if (sl->state != SL_FULL || (sl->flags & SL_BLOCK)) continue;
      uint32_t kl = sl->klen <= m->key_max ? sl->klen : m->key_max; /* as map_read: bounded */
      uint32_t vl = sl->vlen <= m->value_max ? sl->vlen : m->value_max;
      rc = fn(sl->kv, kl, sl->kv + m->key_max, vl, ctx);
    }
    stripe_unlock(st);
    if (rc) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------ array */

int wr_array_create(wr_arena *a, const char *name, uint32_t n, uint32_t elem_size) {
  if (n == 0 || elem_size == 0) return -WR_EINVAL;
  struct wr__map m;
  memset(&m, 0, sizeof m);
  uint32_t ns = n >= 64 ? 16 : 1;
  int rc = geometry(&m, n, ns, elem_size);
  if (rc) return rc;
  m.magic = WR__MAGIC_ARRAY;
  m.kind = WR_KIND_ARRAY;
  m.value_max = elem_size;
  return wr__obj_create(a, name, WR_KIND_ARRAY, obj_size(&m), hdr_init, &m, NULL);
}

int wr_array_open(wr_arena *a, const char *name, wr_array **out) {
  return open_kind(a, name, WR_KIND_ARRAY, WR__MAGIC_ARRAY, (struct wr__handle **)out);
}
void wr_array_close(wr_array *ar) { free(ar); }

uint32_t wr_array_len(const wr_array *ar) { return ((const struct wr__map *)ar->h.obj)->capacity; }

static int array_op(wr_array *ar, uint32_t i, void *out, const void *in,
                    int (*fn)(void *elem, void *ctx), void *ctx) {
  struct wr__map *m = ar->h.obj;
  if (i >= m->capacity) return -WR_EINVAL;
  if ((in || fn) && !ar->h.a->tag) return -WR_EINVAL;
  struct wr__stripe *st = stripe(m, i / m->per_stripe);
  int rc = stripe_lock(&ar->h, st);
  if (rc) return rc;
  uint8_t *e = slot_at(m, i);
  if (out) {
    memcpy(out, e, m->value_max);
  } else {
    undo_save(m, st, i);
    if (in) {
      memcpy(e, in, m->value_max / 2);
      WR_CRASH_POINT(MAP_PUT_MID_WRITE);
      memcpy(e + m->value_max / 2, (const uint8_t *)in + m->value_max / 2,
             m->value_max - m->value_max / 2);
    } else {
      rc = fn(e, ctx);
      if (rc < 0) stripe_repair(m, st);
    }
    undo_drop(st);
  }
  stripe_unlock(st);
  return rc < 0 ? rc : 0;
}

int wr_array_get(wr_array *ar, uint32_t i, void *buf) {
  return array_op(ar, i, buf, NULL, NULL, NULL);
}
int wr_array_set(wr_array *ar, uint32_t i, const void *elem) {
  return array_op(ar, i, NULL, elem, NULL, NULL);
}
int wr_array_group(wr_array *ar, uint32_t i, int (*fn)(void *elem, void *ctx), void *ctx) {
  return array_op(ar, i, NULL, NULL, fn, ctx);
}

/* ------------------------------------------------------------ reclaim, checker */

/* Is `off` a block referenced by a slot of the map at map_off? (heap check) */
bool wr__map_owns(const wr_arena *a, wr_off_t map_off, wr_off_t off) {
  struct wr__map *m = wr__obj_checked(a, map_off, sizeof(struct wr__map));
  if (!m || m->magic != WR__MAGIC_MAP || !hdr_ok(a, m)) return false;
  for (uint32_t i = 0; i < m->capacity; i++)
    if (slot_block(m, i) == off) return true;
  return false;
}

void wr__map_free_blocks(wr_arena *a, uint32_t e, wr_off_t map_off) {
  struct wr__map *m = wr__obj_checked(a, map_off, sizeof(struct wr__map));
  if (!m || m->magic != WR__MAGIC_MAP || !hdr_ok(a, m)) return;
  for (uint32_t i = 0; i < m->capacity; i++) {
    wr_off_t o = slot_block(m, i);
    if (!o) continue;
    /* Unreference first: a crash in between leaks the block (the checker
     * names it), it never leaves a slot pointing at a freed block. */
    mslot(m, i)->state = SL_TOMB;
    wr__heap_free_as(a, o, wr__tag_name(e));
  }
}

void wr__map_reclaim(wr_arena *a, uint32_t slot, wr_tag T) {
  struct wr__intent *in = &a->slots[slot].intent;
  /* pairs with the release store of op in intent_set */
  uint32_t op = atomic_load_explicit(&in->op, memory_order_acquire);
  for (uint32_t d = 0; d < WR__DIR_ENTRIES; d++) {
    wr_off_t off;
    struct wr__map *m = wr__obj_at(a, d, WR_KIND_MAP, WR__MAGIC_MAP, sizeof *m, &off);
    if (!m) m = wr__obj_at(a, d, WR_KIND_ARRAY, WR__MAGIC_ARRAY, sizeof *m, &off);
    if (!m || !hdr_ok(a, m)) continue;
    for (uint32_t s = 0; s < m->nstripes; s++) {
      struct wr__stripe *st = stripe(m, s);
      uint32_t c = atomic_load(&st->lock);
      if ((c & ~WR__LOCK_WAITERS) != T) continue;
      stripe_repair(m, st); /* the dead T holds it: nobody else touches it */
      /* pairs with the next locker's CAS */
      atomic_store_explicit(&st->lock, 0, memory_order_release);
      wr__futex_wake(&st->lock, 1 << 30);
    }
    if (op == WR__OP_MAP_BLOCK && in->obj == off) {
      wr_tag owner = wr__tag_name(d);
      wr_off_t blocks[2] = {in->arg, in->arg2};
      for (int k = 0; k < 2; k++)
        if (blocks[k] && wr__heap_owner(a, blocks[k]) == owner && !wr__map_owns(a, off, blocks[k]))
          wr__heap_free_as(a, blocks[k], owner);
    }
  }
}
