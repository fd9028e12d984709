/*
 * heap.c: the crash-reclaimable shared heap.
 *
 * Design (DESIGN.md "The heap"), in short:
 * - The page area is cut into 64 KiB pages. The page map (one descriptor a
 *   page, internal.h struct wr__span) is a fixed array and the truth about
 *   which pages form which span. It changes only under a robust,
 *   process-shared mutex; a locker that inherits it from a dead owner
 *   rebuilds the map's derived state (page_map_repair).
 * - A SMALL span holds blocks of one size class behind an array of 32-bit
 *   owner tags, one per block. The tag is the truth about a block: free (0),
 *   freed-by-a-non-owner and waiting to be collected (PENDING), or owned by
 *   a worker incarnation, a channel lane or a name. Recovery only ever scans
 *   these fixed arrays; the free lists are owner-private hints rebuilt from
 *   the tags.
 * - Each thread of each process has a cache per arena that owns spans. The
 *   fast path (alloc: pop the span's free list, store the tag; local free:
 *   store 0, push) takes no lock and no read-modify-write on a line another
 *   process writes. A block freed by a thread that does not own its span is
 *   one CAS of its tag to PENDING (plus a hint counter); the owner collects
 *   PENDING blocks when it runs out.
 * - Blocks up to 16 KiB come from one-page spans, up to 128 KiB from spans
 *   of ~8 blocks (up to 16 pages); larger ones get a span of their own, one
 *   tag at its start.
 * - A span's `shared` flag is set, sticky, before any of its blocks is first
 *   handed to another owner. Reclaiming a dead worker frees its unshared
 *   spans in O(1) each without reading their tags, so reclaim is O(spans)
 *   plus the tags of shared spans.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ size classes */

#define NCLS 48
#define SMALL_MAX 131072u /* above: a LARGE span of its own */
#define SPAN_BLOCKS 8      /* classes above 16 KiB: spans of ~8 blocks, up to 16 pages */
#define MAGIC_SHIFT 40     /* exact for delta * size < 2^40: delta < 1 MiB, size <= 128 KiB */

static uint32_t cls_size[NCLS];
static uint32_t cls_nblocks[NCLS];
static uint32_t cls_tagbytes[NCLS];
static uint32_t cls_npages[NCLS];
static uint64_t cls_magic[NCLS]; /* ceil(2^40 / size): division by multiplication */
static uint8_t cls_of16[SMALL_MAX / 16 + 1];

__attribute__((constructor)) static void classes_init(void) {
  uint32_t n = 0;
  for (uint32_t s = 16; s <= 128; s += 16) cls_size[n++] = s;
  for (uint32_t base = 128; base < SMALL_MAX; base *= 2)
    for (uint32_t k = 1; k <= 4; k++) cls_size[n++] = base + k * base / 4;
  for (uint32_t c = 0; c < NCLS; c++) {
    uint32_t bs = cls_size[c];
    uint32_t np = bs <= 16384 ? 1 : (SPAN_BLOCKS * bs + WR__PAGE_SIZE - 1) / WR__PAGE_SIZE;
    if (np > 16) np = 16;
    uint64_t total = (uint64_t)np * WR__PAGE_SIZE;
    uint32_t nb = (uint32_t)(total / (bs + 4));
    while (WR__ALIGN_UP(nb * 4u, 64) + (uint64_t)nb * bs > total) nb--;
    cls_npages[c] = np;
    cls_nblocks[c] = nb;
    cls_tagbytes[c] = (uint32_t)WR__ALIGN_UP(nb * 4u, 64);
    cls_magic[c] = ((1ull << MAGIC_SHIFT) + bs - 1) / bs;
  }
  uint32_t c = 0;
  for (uint32_t i = 0; i <= SMALL_MAX / 16; i++) {
    while (cls_size[c] < i * 16) c++;
    cls_of16[i] = (uint8_t)c;
  }
}

static inline uint32_t size_class(size_t size) { return cls_of16[(size + 15) >> 4]; }

/* ------------------------------------------------------------ geometry */

static inline uint64_t page_off(const wr_arena *a, uint32_t p) {
  return a->hdr->heap_off + ((uint64_t)p << WR__PAGE_SHIFT);
}
static inline _Atomic uint32_t *span_tags(const wr_arena *a, uint32_t p) {
  return (_Atomic uint32_t *)(a->heap + ((uint64_t)p << WR__PAGE_SHIFT));
}
static inline uint64_t block_off(const wr_arena *a, uint32_t p, uint32_t cls, uint32_t idx) {
  return page_off(a, p) + cls_tagbytes[cls] + (uint64_t)idx * cls_size[cls];
}

/* Is the descriptor of span head p (state SMALL or LARGE) one the heap
 * could have written? The supervisor's scans (reclaim, checks, stats) skip
 * a scribbled one instead of trusting its npages/nblocks; the checker
 * reports it. */
static bool span_shape_ok(const wr_arena *a, uint32_t p, uint32_t state) {
  const struct wr__span *s = &a->spans[p];
  uint32_t n = s->npages;
  if (n == 0 || n > a->npages - p) return false;
  if (state == WR__SPAN_LARGE) return true;
  return state == WR__SPAN_SMALL && s->cls < NCLS && s->nblocks == cls_nblocks[s->cls] &&
         n == cls_npages[s->cls];
}

/* Locate the block at `off`: its span head page, and for SMALL spans its
 * index. Returns the tag word or NULL if off is not a block start. Safe on
 * any offset (bounds- and shape-checked). */
static _Atomic uint32_t *block_find(const wr_arena *a, uint64_t off, uint32_t *head,
                                    uint32_t *idx) {
  uint64_t h = a->hdr->heap_off;
  if (off < h || off >= h + ((uint64_t)a->npages << WR__PAGE_SHIFT)) return NULL;
  uint32_t p = (uint32_t)((off - h) >> WR__PAGE_SHIFT);
  uint32_t st = atomic_load_explicit(&a->spans[p].state, memory_order_acquire);
  if (st == WR__SPAN_CONT) {
    p = a->spans[p].npages;
    if (p >= a->npages) return NULL;
    st = atomic_load_explicit(&a->spans[p].state, memory_order_acquire);
  }
  uint64_t delta = off - page_off(a, p);
  if (st == WR__SPAN_SMALL) {
    uint32_t cls = a->spans[p].cls;
    if (cls >= NCLS || delta < cls_tagbytes[cls]) return NULL;
    delta -= cls_tagbytes[cls];
    uint32_t i = (uint32_t)((delta * cls_magic[cls]) >> MAGIC_SHIFT);
    if ((uint64_t)i * cls_size[cls] != delta || i >= cls_nblocks[cls]) return NULL;
    *head = p;
    *idx = i;
    return &span_tags(a, p)[i];
  }
  if (st == WR__SPAN_LARGE && delta == WR__SPAN_HDR && span_shape_ok(a, p, st)) {
    *head = p;
    *idx = 0;
    return &span_tags(a, p)[0];
  }
  return NULL;
}

static inline uint64_t large_bytes(const struct wr__span *s) {
  return ((uint64_t)s->npages << WR__PAGE_SHIFT) - WR__SPAN_HDR;
}

/* ------------------------------------------------------------ page allocator */

static void page_map_repair(wr_arena *a);

static void page_lock(wr_arena *a) { wr__arena_lock(a, &a->hdr->page_lock.m, page_map_repair); }
static void page_unlock(wr_arena *a) { wr__robust_unlock(&a->hdr->page_lock.m, false); }

/* Return pages [p, p+n) to the free state. Head first: once the head is
 * FREE the span is gone; stray CONT pages are freed by the repair. */
static void pages_release_locked(wr_arena *a, uint32_t p) {
  uint32_t n = a->spans[p].npages;
  if (n == 0 || n > a->npages - p) n = 1; /* scribbled: the repair frees the rest */
  atomic_store_explicit(&a->spans[p].state, WR__SPAN_FREE, memory_order_release);
  for (uint32_t i = 1; i < n; i++) atomic_store(&a->spans[p + i].state, WR__SPAN_FREE);
  a->hdr->pages_in_use -= n;
  if (p < a->hdr->page_hint) a->hdr->page_hint = p;
}

/* Called with the lock taken from a dead owner. Everything derived is
 * recomputed from the heads: CONT pages belong to the head before them, a
 * LARGE span whose tag is free was being freed. */
static void page_map_repair(wr_arena *a) {
  uint32_t in_use = 0;
  for (uint32_t p = 0; p < a->npages;) {
    struct wr__span *s = &a->spans[p];
    uint32_t st = atomic_load(&s->state);
    if ((st == WR__SPAN_SMALL || st == WR__SPAN_LARGE) && s->npages >= 1 &&
        s->npages <= a->npages - p) {
      if (st == WR__SPAN_LARGE && atomic_load(&span_tags(a, p)[0]) == WR__TAG_FREE) {
        uint32_t n = s->npages;
        atomic_store(&s->state, WR__SPAN_FREE);
        for (uint32_t i = 1; i < n; i++) atomic_store(&a->spans[p + i].state, WR__SPAN_FREE);
        p += n;
        continue;
      }
      for (uint32_t i = 1; i < s->npages; i++) {
        a->spans[p + i].npages = p;
        atomic_store(&a->spans[p + i].state, WR__SPAN_CONT);
      }
      in_use += s->npages;
      p += s->npages;
    } else {
      if (st != WR__SPAN_FREE) atomic_store(&s->state, WR__SPAN_FREE);
      p++;
    }
  }
  a->hdr->pages_in_use = in_use;
  a->hdr->page_hint = 0;
}

/* Find n free pages and make them a span owned by (tag, cache). For SMALL
 * the tag array is zeroed before the head is published; for LARGE the
 * block's tag is set to the owner in the same locked section, so a LARGE
 * span with a free tag is always one being freed. Returns page or -1. */
static int64_t span_new(wr_arena *a, uint32_t n, uint32_t state, uint32_t cls, wr_tag tag,
                        uint64_t cache) {
  page_lock(a);
  uint32_t total = a->npages, start = a->hdr->page_hint, run = 0, p = 0;
  int64_t found = -1;
  for (uint32_t k = 0; k < total + n && found < 0; k++) {
    p = (start + k) % total;
    if (p == 0) run = 0;
    if (atomic_load_explicit(&a->spans[p].state, memory_order_relaxed) == WR__SPAN_FREE) {
      if (++run == n) found = (int64_t)p + 1 - n;
    } else {
      run = 0;
    }
  }
  if (found < 0) {
    page_unlock(a);
    return -1;
  }
  uint32_t h = (uint32_t)found;
  struct wr__span *s = &a->spans[h];
  if (state == WR__SPAN_SMALL) {
    memset((void *)span_tags(a, h), 0, cls_nblocks[cls] * 4u);
    s->nblocks = cls_nblocks[cls];
  } else {
    atomic_store(&span_tags(a, h)[0], tag);
    s->nblocks = 1;
  }
  s->npages = n;
  s->cls = (uint16_t)cls;
  s->in_avail = 0;
  s->next_avail = s->prev_avail = 0;
  s->carved = 0;
  s->free_head = 0;
  atomic_store(&s->live, state == WR__SPAN_LARGE);
  atomic_store(&s->cache, cache);
  atomic_store(&s->shared, 0);
  atomic_store(&s->pending, 0);
  atomic_store(&s->owner, tag);
  atomic_store_explicit(&s->state, state, memory_order_release);
  WR_CRASH_POINT(HEAP_SPAN_AFTER_HEAD);
  for (uint32_t i = 1; i < n; i++) {
    a->spans[h + i].npages = h;
    atomic_store(&a->spans[h + i].state, WR__SPAN_CONT);
    WR_CRASH_POINT(HEAP_SPAN_AFTER_CONT);
  }
  a->hdr->pages_in_use += n;
  if (a->hdr->pages_in_use > a->hdr->pages_hwm) a->hdr->pages_hwm = a->hdr->pages_in_use;
  a->hdr->page_hint = h + n < total ? h + n : 0;
  page_unlock(a);
  return h;
}

/* ------------------------------------------------------------ thread caches */

struct wr__tcache {
  wr_arena *a;
  uint32_t gen; /* handle generation; a mismatch means the handle is gone */
  wr_tag tag;
  uint64_t id;
  uint32_t cur[NCLS];   /* current span per class: page index + 1 */
  uint32_t avail[NCLS]; /* owned spans with free blocks: page index + 1 */
  uint64_t allocs, frees;
  uint64_t remote_seen; /* slot's remote_frees at the last sweep */
};

#define MAX_HANDLES 16
static _Atomic uint32_t handle_gen[MAX_HANDLES];
static _Atomic uint32_t cache_seq;
static __thread struct wr__tcache *tls_cache[MAX_HANDLES];
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void cache_release(struct wr__tcache *c);

static void tls_destructor(void *unused) {
  for (int i = 0; i < MAX_HANDLES; i++) {
    struct wr__tcache *c = tls_cache[i];
    if (!c) continue;
    if (c->gen == atomic_load(&handle_gen[i])) cache_release(c);
    free(c);
    tls_cache[i] = NULL;
  }
}

void wr__heap_atfork_child(void) {
  /* The child's copies of the parent's caches own nothing of its own: drop
   * them without touching shared memory. */
  for (int i = 0; i < MAX_HANDLES; i++) {
    free(tls_cache[i]);
    tls_cache[i] = NULL;
  }
}

static void tls_setup(void) {
  pthread_key_create(&tls_key, tls_destructor);
  pthread_atfork(NULL, NULL, wr__heap_atfork_child);
}

static struct wr__tcache *cache_slow(wr_arena *a) {
  pthread_once(&tls_once, tls_setup);
  int id = a->local_id;
  struct wr__tcache *c = tls_cache[id];
  if (c) {
    if (c->gen == atomic_load(&handle_gen[id]) && c->a == a) cache_release(c);
    free(c);
    tls_cache[id] = NULL;
  }
  if (!a->tag) return NULL;
  c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->a = a;
  c->gen = atomic_load(&handle_gen[id]);
  c->tag = a->tag;
  c->id = ((uint64_t)(uint32_t)getpid() << 32) | (atomic_fetch_add(&cache_seq, 1) + 1);
  tls_cache[id] = c;
  pthread_setspecific(tls_key, (void *)1);
  return c;
}

static inline struct wr__tcache *cache_get(wr_arena *a) {
  struct wr__tcache *c = tls_cache[a->local_id];
  if (__builtin_expect(c && c->a == a && c->tag == a->tag, 1)) return c;
  return cache_slow(a);
}

static void stats_flush(struct wr__tcache *c) {
  wr_arena *a = c->a;
  struct wr__slot *s = &a->slots[a->slot];
  if (c->allocs) atomic_fetch_add_explicit(&s->allocs, c->allocs, memory_order_relaxed);
  if (c->frees) atomic_fetch_add_explicit(&s->frees, c->frees, memory_order_relaxed);
  c->allocs = c->frees = 0;
}

static void avail_push(struct wr__tcache *c, uint32_t p) {
  struct wr__span *s = &c->a->spans[p];
  if (s->in_avail) return;
  uint32_t cls = s->cls;
  s->in_avail = 1;
  s->prev_avail = 0;
  s->next_avail = c->avail[cls];
  if (c->avail[cls]) c->a->spans[c->avail[cls] - 1].prev_avail = p + 1;
  c->avail[cls] = p + 1;
}

static void avail_remove(struct wr__tcache *c, uint32_t p) {
  struct wr__span *s = &c->a->spans[p];
  if (!s->in_avail) return;
  if (s->prev_avail)
    c->a->spans[s->prev_avail - 1].next_avail = s->next_avail;
  else
    c->avail[s->cls] = s->next_avail;
  if (s->next_avail) c->a->spans[s->next_avail - 1].prev_avail = s->prev_avail;
  s->in_avail = 0;
  s->next_avail = s->prev_avail = 0;
}

/* Give up ownership of span p: free its pages when no block is in use,
 * otherwise make it an orphan that any thread may adopt. */
static void span_orphan(wr_arena *a, uint32_t p) {
  struct wr__span *s = &a->spans[p];
  _Atomic uint32_t *tags = span_tags(a, p);
  bool empty = true;
  for (uint32_t i = 0; i < s->nblocks && empty; i++) {
    uint32_t t = atomic_load_explicit(&tags[i], memory_order_relaxed);
    if (t != WR__TAG_FREE && t != WR__TAG_PENDING) empty = false;
  }
  if (empty) {
    page_lock(a);
    pages_release_locked(a, p);
    page_unlock(a);
    return;
  }
  atomic_store(&s->shared, 1); /* others' blocks may sit here: scan on reclaim */
  atomic_store(&s->cache, 0);
  WR_CRASH_POINT(HEAP_RELEASE_AFTER_ORPHAN);
  /* pairs with the CAS in span_adopt */
  atomic_store_explicit(&s->owner, 0, memory_order_release);
  atomic_fetch_add(&a->hdr->orphans, 1);
}

/* Release every span a cache owns (thread exit, detach). */
static void cache_release(struct wr__tcache *c) {
  wr_arena *a = c->a;
  stats_flush(c);
  for (uint32_t p = 0; p < a->npages; p++) {
    struct wr__span *s = &a->spans[p];
    uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st != WR__SPAN_SMALL || atomic_load(&s->cache) != c->id) continue;
    s->in_avail = 0;
    span_orphan(a, p);
  }
  memset(c->cur, 0, sizeof c->cur);
  memset(c->avail, 0, sizeof c->avail);
}

void wr__heap_detach(wr_arena *a) {
  struct wr__tcache *c = tls_cache[a->local_id];
  if (c && c->a == a && c->gen == atomic_load(&handle_gen[a->local_id])) cache_release(c);
  free(c);
  tls_cache[a->local_id] = NULL;
  /* Spans of this process's other threads' caches: orphan them too; their
   * stale caches notice the new generation and drop themselves. */
  uint32_t pid = (uint32_t)getpid();
  for (uint32_t p = 0; p < a->npages; p++) {
    struct wr__span *s = &a->spans[p];
    if (atomic_load(&s->state) != WR__SPAN_SMALL) continue;
    uint64_t id = atomic_load(&s->cache);
    if (id && (uint32_t)(id >> 32) == pid && atomic_load(&s->owner) == a->tag) span_orphan(a, p);
  }
  atomic_fetch_add(&handle_gen[a->local_id], 1);
}

void wr__heap_init(wr_arena *a) {
  memset(a->spans, 0, (size_t)a->npages * sizeof(struct wr__span));
  a->hdr->pages_in_use = 0;
  a->hdr->pages_hwm = 0;
  a->hdr->page_hint = 0;
}

void wr_heap_flush(wr_arena *a) {
  struct wr__tcache *c = cache_get(a);
  if (c) stats_flush(c);
}

/* ------------------------------------------------------------ remote frees */

/* After a block of span p became PENDING: tell the span's owner. The first
 * pending block of a span also leaves a hint, so that a producer whose
 * consumer frees everything reuses that memory at its next refill instead
 * of carving (and faulting in) fresh pages until the next sweep. */
static void remote_freed(wr_arena *a, uint32_t p) {
  struct wr__span *s = &a->spans[p];
  uint32_t before = atomic_fetch_add_explicit(&s->pending, 1, memory_order_relaxed);
  uint32_t owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
  if (!owner) return;
  struct wr__slot *sl = &a->slots[wr__tag_slot(owner)];
  atomic_fetch_add_explicit(&sl->remote_frees, 1, memory_order_relaxed);
  if (before == 0) {
    uint32_t i = atomic_fetch_add_explicit(&sl->pending_hint_pos, 1, memory_order_relaxed);
    atomic_store_explicit(&sl->pending_hint[i % WR__PENDING_HINTS], p + 1, memory_order_relaxed);
  }
}

/* ------------------------------------------------------------ refill */

/* Turn PENDING tags of span p into free blocks on its free list. */
static uint32_t span_collect(wr_arena *a, uint32_t p) {
  struct wr__span *s = &a->spans[p];
  _Atomic uint32_t *tags = span_tags(a, p);
  uint32_t cls = s->cls, got = 0;
  uint32_t n = s->carved;
  for (uint32_t i = 0; i < n; i++) {
    if (atomic_load_explicit(&tags[i], memory_order_relaxed) != WR__TAG_PENDING) continue;
    atomic_store_explicit(&tags[i], WR__TAG_FREE, memory_order_relaxed);
    WR_CRASH_POINT(HEAP_COLLECT_MID);
    uint64_t off = block_off(a, p, cls, i);
    *(uint64_t *)(a->base + off) = s->free_head;
    s->free_head = off;
    got++;
  }
  if (got) {
    atomic_fetch_sub(&s->pending, got);
    atomic_store_explicit(&s->live, atomic_load_explicit(&s->live, memory_order_relaxed) - got,
                          memory_order_relaxed);
  }
  return got;
}

/* Take an orphan span of class cls: the CAS on owner is the commit, then its
 * free list is rebuilt from the tags (PENDING blocks are free too). */
static int64_t span_adopt(struct wr__tcache *c, uint32_t cls) {
  wr_arena *a = c->a;
  if (atomic_load_explicit(&a->hdr->orphans, memory_order_relaxed) == 0) return -1;
  for (uint32_t p = 0; p < a->npages; p++) {
    struct wr__span *s = &a->spans[p];
    if (atomic_load_explicit(&s->state, memory_order_acquire) != WR__SPAN_SMALL ||
        s->cls != cls || atomic_load_explicit(&s->owner, memory_order_relaxed) != 0)
      continue;
    uint32_t zero = 0;
    /* pairs with the release store in span_orphan */
    if (!atomic_compare_exchange_strong(&s->owner, &zero, c->tag)) continue;
    WR_CRASH_POINT(HEAP_ADOPT_AFTER_CAS);
    atomic_fetch_sub(&a->hdr->orphans, 1);
    atomic_store(&s->cache, c->id);
    _Atomic uint32_t *tags = span_tags(a, p);
    uint32_t live = 0;
    s->free_head = 0;
    for (uint32_t i = s->nblocks; i-- > 0;) {
      uint32_t t = atomic_load(&tags[i]);
      if (t == WR__TAG_PENDING) {
        atomic_store(&tags[i], WR__TAG_FREE);
        atomic_fetch_sub(&s->pending, 1);
        t = WR__TAG_FREE;
      }
      if (t == WR__TAG_FREE) {
        uint64_t off = block_off(a, p, cls, i);
        *(uint64_t *)(a->base + off) = s->free_head;
        s->free_head = off;
      } else {
        live++;
      }
    }
    s->carved = s->nblocks;
    s->in_avail = 0;
    atomic_store(&s->live, live);
    atomic_store(&s->pending, 0);
    /* Nobody holds a block here any more: reclaim may skip its tags again. */
    if (live == 0) atomic_store(&s->shared, 0);
    if (s->free_head) return p;
    avail_push(c, p); /* full: keep it owned; frees will land here */
    avail_remove(c, p);
  }
  return -1;
}

/* Make c->cur[cls] a span with a free block. Returns its page or -1. */
static int64_t refill(struct wr__tcache *c, uint32_t cls) {
  wr_arena *a = c->a;
  stats_flush(c);
  if (c->cur[cls]) {
    uint32_t p = c->cur[cls] - 1;
    struct wr__span *s = &a->spans[p];
    if (atomic_load_explicit(&s->pending, memory_order_relaxed) >= s->nblocks / 8 + 1 &&
        span_collect(a, p))
      return p;
  }
  /* Spans that others just started freeing into. */
  struct wr__slot *me = &a->slots[a->slot];
  for (uint32_t k = 0; k < WR__PENDING_HINTS; k++) {
    if (!atomic_load_explicit(&me->pending_hint[k], memory_order_relaxed)) continue;
    uint32_t q = atomic_exchange_explicit(&me->pending_hint[k], 0, memory_order_relaxed);
    if (!q-- || q >= a->npages) continue;
    struct wr__span *s = &a->spans[q];
    if (atomic_load_explicit(&s->state, memory_order_acquire) != WR__SPAN_SMALL ||
        atomic_load_explicit(&s->cache, memory_order_relaxed) != c->id || c->cur[s->cls] == q + 1)
      continue;
    if (span_collect(a, q)) avail_push(c, q);
  }
  /* Others freed enough into our spans since the last look: sweep the page
   * map once for our spans with PENDING blocks (amortised over >= npages/4
   * remote frees, so a producer that hands everything away reuses memory). */
  uint64_t rf = atomic_load_explicit(&a->slots[a->slot].remote_frees, memory_order_relaxed);
  if (rf - c->remote_seen >= (a->npages / 4 > 64 ? a->npages / 4 : 64)) {
    c->remote_seen = rf;
    for (uint32_t q = 0; q < a->npages; q++) {
      struct wr__span *s = &a->spans[q];
      if (atomic_load_explicit(&s->state, memory_order_relaxed) != WR__SPAN_SMALL ||
          atomic_load_explicit(&s->cache, memory_order_relaxed) != c->id ||
          atomic_load_explicit(&s->pending, memory_order_relaxed) == 0 || c->cur[s->cls] == q + 1)
        continue;
      if (span_collect(a, q)) avail_push(c, q);
    }
  }
  while (c->avail[cls]) {
    uint32_t p = c->avail[cls] - 1;
    avail_remove(c, p);
    struct wr__span *s = &a->spans[p];
    if (s->free_head || s->carved < s->nblocks || span_collect(a, p)) {
      c->cur[cls] = p + 1;
      return p;
    }
  }
  int64_t p = span_adopt(c, cls);
  if (p < 0) p = span_new(a, cls_npages[cls], WR__SPAN_SMALL, cls, c->tag, c->id);
  if (p < 0) {
    /* Out of pages: collect what others freed into any span of ours. */
    for (uint32_t q = 0; q < a->npages && p < 0; q++) {
      struct wr__span *s = &a->spans[q];
      if (atomic_load(&s->state) == WR__SPAN_SMALL && s->cls == cls &&
          atomic_load(&s->cache) == c->id && atomic_load(&s->pending) && span_collect(a, q))
        p = q;
    }
  }
  if (p >= 0) c->cur[cls] = (uint32_t)p + 1;
  return p;
}

/* ------------------------------------------------------------ alloc / free */

static int alloc_large(wr_arena *a, struct wr__tcache *c, size_t size, void **ptr) {
  uint64_t bytes = (uint64_t)size + WR__SPAN_HDR;
  uint64_t n = (bytes + WR__PAGE_SIZE - 1) >> WR__PAGE_SHIFT;
  if (n > a->npages) return -WR_ENOMEM;
  int64_t p = span_new(a, (uint32_t)n, WR__SPAN_LARGE, 0, c->tag, c->id);
  if (p < 0) return -WR_ENOMEM;
  WR_CRASH_POINT(HEAP_LARGE_AFTER_TAG);
  c->allocs++;
  *ptr = a->base + page_off(a, (uint32_t)p) + WR__SPAN_HDR;
  return 0;
}

int wr_alloc(wr_arena *a, size_t size, void **ptr) {
  struct wr__tcache *c = cache_get(a);
  if (__builtin_expect(!c || size == 0, 0)) return -WR_EINVAL;
  if (size > SMALL_MAX) return alloc_large(a, c, size, ptr);
  uint32_t cls = size_class(size);
  uint32_t p;
  struct wr__span *s;
  if (__builtin_expect(c->cur[cls] != 0, 1)) {
    p = c->cur[cls] - 1;
    s = &a->spans[p];
    if (__builtin_expect(s->free_head == 0 && s->carved == s->nblocks, 0)) goto slow;
  } else {
  slow:;
    int64_t q = refill(c, cls);
    if (q < 0) return cls_npages[cls] > 1 ? alloc_large(a, c, size, ptr) : -WR_ENOMEM;
    p = (uint32_t)q;
    s = &a->spans[p];
  }
  uint64_t off;
  uint32_t idx;
  if (s->free_head) {
    off = s->free_head;
    s->free_head = *(uint64_t *)(a->base + off);
    idx = (uint32_t)(((off - page_off(a, p) - cls_tagbytes[cls]) * cls_magic[cls]) >> MAGIC_SHIFT);
  } else {
    idx = s->carved;
    off = block_off(a, p, cls, idx);
  }
  WR_CRASH_POINT(HEAP_ALLOC_AFTER_POP);
  /* The commit: from here the block is recorded as this worker's. */
  atomic_store_explicit(&span_tags(a, p)[idx], c->tag, memory_order_relaxed);
  WR_CRASH_POINT(HEAP_ALLOC_AFTER_TAG);
  if (idx == s->carved) s->carved = idx + 1;
  atomic_store_explicit(&s->live, atomic_load_explicit(&s->live, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  c->allocs++;
  *ptr = a->base + off;
  return 0;
}

int wr_calloc(wr_arena *a, size_t n, size_t size, void **ptr) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) return -WR_EINVAL;
  int rc = wr_alloc(a, total, ptr);
  if (rc == 0) memset(*ptr, 0, total);
  return rc;
}

static int free_large(wr_arena *a, struct wr__tcache *c, uint32_t p, _Atomic uint32_t *tag) {
  page_lock(a);
  uint32_t t = c->tag;
  if (!atomic_compare_exchange_strong(tag, &t, WR__TAG_FREE)) {
    page_unlock(a);
    return -WR_ENOTOWNER;
  }
  WR_CRASH_POINT(HEAP_LARGE_FREE_AFTER_UNTAG);
  pages_release_locked(a, p);
  page_unlock(a);
  c->frees++;
  return 0;
}

int wr_free(wr_arena *a, void *ptr) {
  if (!ptr) return 0;
  struct wr__tcache *c = cache_get(a);
  if (!c) return -WR_EINVAL;
  uint64_t off = (uint64_t)((uint8_t *)ptr - a->base);
  uint32_t p, idx;
  _Atomic uint32_t *tag = block_find(a, off, &p, &idx);
  if (!tag) return -WR_EINVAL;
  struct wr__span *s = &a->spans[p];
  if (atomic_load_explicit(&s->state, memory_order_relaxed) == WR__SPAN_LARGE)
    return free_large(a, c, p, tag);
  if (atomic_load_explicit(tag, memory_order_relaxed) != c->tag) return -WR_ENOTOWNER;
  if (atomic_load_explicit(&s->cache, memory_order_relaxed) == c->id) {
    /* Local: this thread's cache owns the span. */
    atomic_store_explicit(tag, WR__TAG_FREE, memory_order_relaxed);
    WR_CRASH_POINT(HEAP_FREE_AFTER_UNTAG);
    *(uint64_t *)ptr = s->free_head;
    s->free_head = off;
    uint32_t live = atomic_load_explicit(&s->live, memory_order_relaxed) - 1;
    atomic_store_explicit(&s->live, live, memory_order_relaxed);
    c->frees++;
    if (c->cur[s->cls] != p + 1) {
      if (live == 0) {
        avail_remove(c, p);
        span_orphan(a, p); /* empty: back to the page allocator */
      } else {
        avail_push(c, p);
      }
    }
    return 0;
  }
  /* Remote: one CAS hands the block back to the span's owner. */
  uint32_t t = c->tag;
  if (!atomic_compare_exchange_strong(tag, &t, WR__TAG_PENDING)) return -WR_ENOTOWNER;
  WR_CRASH_POINT(HEAP_REMOTE_FREE_AFTER_TAG);
  remote_freed(a, p);
  c->frees++;
  return 0;
}

size_t wr_block_size(const wr_arena *a, const void *ptr) {
  uint32_t p, idx;
  if (!ptr) return 0;
  if (!block_find(a, (uint64_t)((const uint8_t *)ptr - a->base), &p, &idx)) return 0;
  const struct wr__span *s = &a->spans[p];
  return atomic_load(&s->state) == WR__SPAN_LARGE ? large_bytes(s) : cls_size[s->cls];
}

int wr_realloc(wr_arena *a, void **ptr, size_t size) {
  if (!*ptr) return wr_alloc(a, size, ptr);
  if (size == 0) return -WR_EINVAL;
  size_t have = wr_block_size(a, *ptr);
  if (!have) return -WR_EINVAL;
  if (wr__heap_owner(a, wr_off(a, *ptr)) != wr_self_tag(a)) return -WR_ENOTOWNER;
  if (size <= have) {
    if (have > SMALL_MAX ? size > SMALL_MAX : size_class(size) == size_class(have)) return 0;
  }
  void *n;
  int rc = wr_alloc(a, size, &n);
  if (rc) return rc;
  WR_CRASH_POINT(HEAP_REALLOC_AFTER_ALLOC);
  memcpy(n, *ptr, have < size ? have : size);
  WR_CRASH_POINT(HEAP_REALLOC_AFTER_COPY);
  rc = wr_free(a, *ptr);
  if (rc) {
    wr_free(a, n);
    return rc;
  }
  *ptr = n;
  return 0;
}

/* ------------------------------------------------------------ ownership */

wr_tag wr__heap_owner(const wr_arena *a, wr_off_t off) {
  uint32_t p, idx;
  _Atomic uint32_t *tag = block_find(a, off, &p, &idx);
  return tag ? atomic_load(tag) : 0;
}

int wr__heap_transfer(wr_arena *a, wr_off_t off, wr_tag from, wr_tag to) {
  uint32_t p, idx;
  _Atomic uint32_t *tag = block_find(a, off, &p, &idx);
  if (!tag) return -WR_EINVAL;
  struct wr__span *s = &a->spans[p];
  if (!atomic_load_explicit(&s->shared, memory_order_relaxed)) {
    /* Before the block leaves: reclaim must scan this span from now on.
     * seq_cst: ordered before the tag CAS that publishes the hand-over. */
    atomic_store(&s->shared, 1);
    WR_CRASH_POINT(HEAP_TRANSFER_AFTER_SHARED);
  }
  uint32_t t = from;
  if (!atomic_compare_exchange_strong(tag, &t, to)) return -WR_ENOTOWNER;
  return 0;
}

int wr__heap_free_as(wr_arena *a, wr_off_t off, wr_tag expect) {
  uint32_t p, idx;
  _Atomic uint32_t *tag = block_find(a, off, &p, &idx);
  if (!tag) return -WR_EINVAL;
  struct wr__span *s = &a->spans[p];
  if (atomic_load(&s->state) == WR__SPAN_LARGE) {
    page_lock(a);
    uint32_t t = expect;
    bool ok = atomic_compare_exchange_strong(tag, &t, WR__TAG_FREE);
    if (ok) pages_release_locked(a, p);
    page_unlock(a);
    return ok ? 0 : -WR_ENOTOWNER;
  }
  uint32_t t = expect;
  if (!atomic_compare_exchange_strong(tag, &t, WR__TAG_PENDING)) return -WR_ENOTOWNER;
  remote_freed(a, p);
  return 0;
}

/* ------------------------------------------------------------ reclaim */

/* Advance *p to the next span head whose descriptor the heap could have
 * written (span_shape_ok: a scribbled one is skipped, never followed); *n
 * gets its page count, read once (a scribbler may change it under us).
 * Returns its state, or 0 at the end. */
static uint32_t span_head_next(const wr_arena *a, uint32_t *p, uint32_t *n) {
  for (; *p < a->npages; (*p)++) {
    uint32_t st = atomic_load(&a->spans[*p].state);
    if ((st == WR__SPAN_SMALL || st == WR__SPAN_LARGE) && span_shape_ok(a, *p, st)) {
      *n = a->spans[*p].npages;
      if (*n >= 1 && *n <= a->npages - *p) return st;
    }
  }
  return 0;
}

/* Orphan span p from inside the page lock (reclaim). */
static void orphan_locked(wr_arena *a, uint32_t p) {
  struct wr__span *s = &a->spans[p];
  atomic_store(&s->shared, 1);
  atomic_store(&s->cache, 0);
  atomic_store_explicit(&s->owner, 0, memory_order_release); /* pairs with span_adopt's CAS */
  atomic_fetch_add(&a->hdr->orphans, 1);
}

/* Is every block of span p free or pending? */
static bool span_empty(const wr_arena *a, uint32_t p) {
  _Atomic uint32_t *tags = span_tags(a, p);
  for (uint32_t i = 0; i < a->spans[p].nblocks; i++) {
    uint32_t t = atomic_load_explicit(&tags[i], memory_order_relaxed);
    if (t != WR__TAG_FREE && t != WR__TAG_PENDING) return false;
  }
  return true;
}

int wr_heap_reclaim(wr_arena *a, uint32_t slot, uint32_t incarnation, wr_reclaim_report *rep) {
  wr_reclaim_report r = {0, 0, 0, 0};
  int rc = wr__slot_reclaimable(a, slot, incarnation);
  if (rc) return rc;
  wr_tag T = wr__tag_worker(slot, incarnation);

  page_lock(a);
  uint32_t state;
  uint32_t n;
  for (uint32_t p = 0; (state = span_head_next(a, &p, &n)) != 0; p += n) {
    struct wr__span *s = &a->spans[p];
    WR_CRASH_POINT(HEAP_RECLAIM_MID); /* a reclaimer dies holding the page lock */
    _Atomic uint32_t *tags = span_tags(a, p);
    uint32_t owner = atomic_load(&s->owner);
    if (state == WR__SPAN_LARGE) {
      uint32_t t = atomic_load(&tags[0]);
      if (t == T || (owner == T && (t == WR__TAG_FREE || t == WR__TAG_PENDING))) {
        if (t == T) {
          r.blocks++;
          r.bytes += large_bytes(s);
        }
        atomic_store(&tags[0], WR__TAG_FREE);
        pages_release_locked(a, p);
        r.spans++;
      } else if (owner == T) {
        atomic_store(&s->owner, 0); /* its block lives on elsewhere */
      }
      continue;
    }
    uint32_t bs = cls_size[s->cls < NCLS ? s->cls : 0];
    if (owner == T && !atomic_load(&s->shared)) {
      /* Never handed out: every used block is T's. No tag scan needed. */
      uint32_t used = atomic_load(&s->live) - atomic_load(&s->pending);
      r.blocks += used;
      r.bytes += (uint64_t)used * bs;
      pages_release_locked(a, p);
      r.spans++;
    } else if (owner == T || atomic_load(&s->shared)) {
      uint32_t mine = 0;
      for (uint32_t i = 0; i < s->nblocks; i++) {
        uint32_t t = atomic_load_explicit(&tags[i], memory_order_relaxed);
        if (t != T && !(owner == T && t == WR__TAG_PENDING)) continue;
        mine += t == T;
        /* In a span we own now (T's): free outright. In a live owner's or an
         * orphan's: hand back as a remote free (its owner collects). */
        if (owner == T) {
          atomic_store(&tags[i], WR__TAG_FREE);
        } else {
          atomic_store(&tags[i], WR__TAG_PENDING);
          atomic_fetch_add(&s->pending, 1);
        }
      }
      r.blocks += mine;
      r.bytes += (uint64_t)mine * bs;
      if (owner == T) {
        if (span_empty(a, p)) {
          pages_release_locked(a, p);
          r.spans++;
        } else {
          orphan_locked(a, p);
          r.orphaned++;
        }
      } else if (owner == 0 && span_empty(a, p)) {
        uint32_t zero = 0;
        if (atomic_compare_exchange_strong(&s->owner, &zero, T)) {
          atomic_fetch_sub(&a->hdr->orphans, 1);
          pages_release_locked(a, p);
          r.spans++;
        }
      }
    }
  }
  page_unlock(a);
  atomic_fetch_add(&a->hdr->reclaims, 1);
  atomic_fetch_add(&a->hdr->reclaimed_blocks, r.blocks);
  atomic_fetch_add(&a->hdr->reclaimed_bytes, r.bytes);
  if (rep) *rep = r;
  return 0;
}

/* ------------------------------------------------------------ checker */

bool (*wr__lane_owns_hook)(const wr_arena *a, uint32_t lane, wr_off_t off);

static bool tag_valid(const wr_arena *a, wr_tag t, wr_off_t off) {
  switch (WR__TAG_KIND(t)) {
  case WR__TAGK_WORKER:
    return wr__worker_tag_live(a, t);
  case WR__TAGK_LANE: {
    uint32_t l = wr__tag_index(t);
    if (l >= WR__MAX_LANES || atomic_load(&a->lanes[l]) == 0) return false;
    return wr__lane_owns_hook ? wr__lane_owns_hook(a, l, off) : true;
  }
  case WR__TAGK_NAME:
    return wr__dir_entry_owns(a, wr__tag_index(t), off);
  default:
    return t == WR__TAG_FREE || t == WR__TAG_PENDING;
  }
}

#define FAIL(...)                                      \
  do {                                                 \
    if (why) snprintf(why, whylen, __VA_ARGS__);       \
    rc = -WR_ECORRUPT;                                 \
    goto out;                                          \
  } while (0)

static void usage_add(wr_heap_usage *u, wr_tag t, uint64_t bytes) {
  if (t == WR__TAG_FREE) return;
  if (t == WR__TAG_PENDING) {
    u->pending_bytes += bytes;
    return;
  }
  u->blocks++;
  u->bytes += bytes;
  switch (WR__TAG_KIND(t)) {
  case WR__TAGK_WORKER: u->worker_bytes += bytes; break;
  case WR__TAGK_LANE: u->lane_bytes += bytes; break;
  default: u->name_bytes += bytes; break;
  }
}

int wr_heap_check(wr_arena *a, wr_heap_usage *usage, char *why, size_t whylen) {
  wr_heap_usage u;
  memset(&u, 0, sizeof u);
  int rc = 0;
  uint32_t in_use = 0;
  if (why && whylen) why[0] = 0;
  page_lock(a);
  for (uint32_t p = 0; p < a->npages;) {
    struct wr__span *s = &a->spans[p];
    uint32_t state = atomic_load(&s->state);
    if (state == WR__SPAN_FREE) {
      u.free_page_bytes += WR__PAGE_SIZE;
      p++;
      continue;
    }
    if (state == WR__SPAN_CONT) FAIL("page %u: continuation page outside any span", p);
    if (state != WR__SPAN_SMALL && state != WR__SPAN_LARGE)
      FAIL("page %u: unknown page state %u", p, state);
    uint32_t n = s->npages;
    if (n == 0 || n > a->npages - p) FAIL("page %u: span of %u pages overruns the heap", p, n);
    for (uint32_t i = 1; i < n; i++)
      if (atomic_load(&a->spans[p + i].state) != WR__SPAN_CONT || a->spans[p + i].npages != p)
        FAIL("page %u: continuation %u of span %u is not marked", p + i, i, p);
    in_use += n;
    u.spans++;
    uint32_t owner = atomic_load(&s->owner);
    uint32_t shared = atomic_load(&s->shared);
    _Atomic uint32_t *tags = span_tags(a, p);
    if (state == WR__SPAN_LARGE) {
      uint32_t t = atomic_load(&tags[0]);
      uint64_t off = page_off(a, p) + WR__SPAN_HDR;
      if (t == WR__TAG_FREE || t == WR__TAG_PENDING)
        FAIL("page %u: large span with a free block (a free in progress?)", p);
      if (!tag_valid(a, t, off))
        FAIL("page %u: large block owned by dead or unknown owner 0x%08x", p, t);
      usage_add(&u, t, large_bytes(s));
      p += n;
      continue;
    }
    if (s->cls >= NCLS || s->nblocks != cls_nblocks[s->cls] || n != cls_npages[s->cls])
      FAIL("page %u: small span with bad class %u / %u blocks", p, s->cls, s->nblocks);
    if (owner == 0) {
      u.orphan_spans++;
      if (!shared) FAIL("page %u: orphan span not marked shared", p);
    } else if (!wr__worker_tag_live(a, owner)) {
      FAIL("page %u: span owned by dead worker %u (reclaim pending?)", p, wr__tag_slot(owner));
    }
    for (uint32_t i = 0; i < s->nblocks; i++) {
      uint32_t t = atomic_load_explicit(&tags[i], memory_order_relaxed);
      uint64_t off = block_off(a, p, s->cls, i);
      if (t == WR__TAG_FREE || t == WR__TAG_PENDING) {
        usage_add(&u, t, cls_size[s->cls]);
        continue;
      }
      if (!tag_valid(a, t, off))
        FAIL("page %u block %u: owner 0x%08x is dead or unknown", p, i, t);
      if (!shared && t != owner)
        FAIL("page %u block %u: foreign owner 0x%08x in an unshared span", p, i, t);
      usage_add(&u, t, cls_size[s->cls]);
    }
    p += n;
  }
  if (in_use != a->hdr->pages_in_use)
    FAIL("pages_in_use counter %u, page map says %u", a->hdr->pages_in_use, in_use);
out:
  page_unlock(a);
  if (usage) *usage = u;
  return rc;
}

uint64_t wr_heap_bytes_owned(wr_arena *a, wr_tag tag) {
  uint64_t bytes = 0;
  page_lock(a);
  uint32_t state;
  uint32_t n;
  for (uint32_t p = 0; (state = span_head_next(a, &p, &n)) != 0; p += n) {
    struct wr__span *s = &a->spans[p];
    _Atomic uint32_t *tags = span_tags(a, p);
    if (state == WR__SPAN_LARGE) {
      if (atomic_load(&tags[0]) == tag) bytes += large_bytes(s);
    } else {
      for (uint32_t i = 0; i < s->nblocks; i++)
        if (atomic_load_explicit(&tags[i], memory_order_relaxed) == tag) bytes += cls_size[s->cls];
    }
  }
  page_unlock(a);
  return bytes;
}

int wr_heap_stats_get(const wr_arena *a, wr_heap_stats *st) {
  memset(st, 0, sizeof *st);
  st->page_size = WR__PAGE_SIZE;
  st->pages_total = a->npages;
  st->heap_bytes = (uint64_t)a->npages << WR__PAGE_SHIFT;
  st->pages_in_use = a->hdr->pages_in_use;
  st->pages_hwm = a->hdr->pages_hwm;
  for (uint32_t i = 0; i < WR_MAX_SLOTS; i++) {
    st->allocs += atomic_load_explicit(&a->slots[i].allocs, memory_order_relaxed);
    st->frees += atomic_load_explicit(&a->slots[i].frees, memory_order_relaxed);
  }
  st->reclaims = atomic_load(&a->hdr->reclaims);
  st->reclaimed_blocks = atomic_load(&a->hdr->reclaimed_blocks);
  st->reclaimed_bytes = atomic_load(&a->hdr->reclaimed_bytes);
  return 0;
}
