/*
 * internal.h: the private shared-memory layout of an arena, and what the
 * modules of libwarren share with each other. Nothing here is public.
 *
 * Arena layout (every region page-aligned, offsets in the header):
 *
 *   0        header (4 KiB): magic (written last), version, size, regions,
 *            robust page lock, heap counters
 *   slots    WR_MAX_SLOTS x 256 B worker slots: incarnation, pid, state,
 *            intent record, heartbeat, flushed heap counters
 *   dir      WR__DIR_ENTRIES x 64 B named-object directory
 *   lanes    WR__MAX_LANES x 8 B: offset of each channel lane (0 = unused)
 *   spans    one 64 B descriptor per heap page (the page map)
 *   heap     npages x 64 KiB pages, carved into spans
 *
 * Rules every module keeps:
 * - Shared structs have fixed-width fields, explicit padding and
 *   _Static_asserts on size; offsets other processes rely on are asserted.
 * - Every offset read from shared memory is bounds-checked before use
 *   (wr__ptr_checked) by code that must survive a scribbling worker.
 * - Every _Atomic in the arena is lock-free (asserted below), so that two
 *   processes never use two private locks.
 */
#ifndef WARREN_INTERNAL_H
#define WARREN_INTERNAL_H

#include "warren.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

#define WR__MAGIC 0x4e45525241575257ull /* "WRWARREN" little-endian */
#define WR__LAYOUT_VERSION 1u
#define WR__CACHELINE 64
#define WR__PAGE_SHIFT 16
#define WR__PAGE_SIZE (1u << WR__PAGE_SHIFT) /* 64 KiB: the span unit */
#define WR__OSPAGE 4096u
#define WR__DIR_ENTRIES 1024u
#define WR__PENDING_HINTS 8
#define WR__MAX_LANES 4096u
#define WR__MIN_ARENA (1u << 20)
#define WR__MAX_ARENA (1ull << 40)

#define WR__ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uint64_t)(a)-1))

/* ------------------------------------------------------------ owner tags
 * A block's owner is one 32-bit tag (DESIGN.md "The heap"):
 *   0                      free
 *   1                      freed by a non-owner, waiting for the span owner
 *                          to collect it (WR__TAG_PENDING)
 *   01 slot:12 inc:18      a worker incarnation
 *   10 lane:30             in flight in a channel lane
 *   11 entry:30            bound to a directory entry (a name)
 */
#define WR__TAG_FREE 0u
#define WR__TAG_PENDING 1u
#define WR__TAG_KIND(t) ((t) >> 30)
#define WR__TAGK_WORKER 1u
#define WR__TAGK_LANE 2u
#define WR__TAGK_NAME 3u
#define WR__INC_BITS 18
#define WR__INC_MASK ((1u << WR__INC_BITS) - 1)
_Static_assert(WR_MAX_SLOTS <= 4096, "slot must fit 12 bits of a tag");

static inline wr_tag wr__tag_worker(uint32_t slot, uint32_t inc) {
  return (WR__TAGK_WORKER << 30) | (slot << WR__INC_BITS) | (inc & WR__INC_MASK);
}
static inline wr_tag wr__tag_lane(uint32_t lane) { return (WR__TAGK_LANE << 30) | lane; }
static inline wr_tag wr__tag_name(uint32_t entry) { return (WR__TAGK_NAME << 30) | entry; }
static inline uint32_t wr__tag_slot(wr_tag t) { return (t >> WR__INC_BITS) & 0xfffu; }
static inline uint32_t wr__tag_index(wr_tag t) { return t & 0x3fffffffu; }

/* ------------------------------------------------------------ header */

struct wr__header {
  _Atomic uint64_t magic; /* written last (release); pairs with acquire in wr__arena_validate */
  uint32_t version;
  uint32_t header_size;
  uint64_t size;
  int32_t creator_pid;
  uint32_t backend;
  uint64_t slots_off, dir_off, lanes_off, spans_off, heap_off;
  uint32_t npages, max_slots;
  uint32_t dir_entries, max_lanes;
  uint8_t pad0[2 * WR__CACHELINE - 88];

  /* Page allocator: robust, process-shared mutex. The page map it protects
   * (spans[]) is the truth; pages_in_use is recomputed on EOWNERDEAD. */
  union {
    pthread_mutex_t m;
    uint8_t bytes[64];
  } page_lock;
  uint32_t pages_in_use, pages_hwm, page_hint;
  _Atomic uint32_t orphans; /* hint: orphan spans exist (adoption scan) */
  uint8_t pad2[WR__CACHELINE - 16];

  /* Reclaim counters, written by the reclaimer (fetch_add: more than one
   * reclaimer may run). */
  _Atomic uint64_t reclaims, reclaimed_blocks, reclaimed_bytes;
  uint8_t pad3[WR__CACHELINE - 24];

  /* Directory lock (robust): bind/unbind; lookups are lock-free. */
  union {
    pthread_mutex_t m;
    uint8_t bytes[64];
  } dir_lock;
  _Atomic uint64_t unique_counter; /* wr_name_unique */
  uint8_t pad4[WR__CACHELINE - 8];

  uint8_t reserved[WR__OSPAGE - 7 * WR__CACHELINE];
};
_Static_assert(sizeof(pthread_mutex_t) <= 64, "pthread_mutex_t must fit its slot");
_Static_assert(sizeof(struct wr__header) == WR__OSPAGE, "header is one page");
_Static_assert(offsetof(struct wr__header, magic) == 0, "magic first");
_Static_assert(offsetof(struct wr__header, page_lock) == 128, "page lock offset");
_Static_assert(offsetof(struct wr__header, reclaims) == 256, "counters offset");

/* ------------------------------------------------------------ slots */

/* Intent record: a worker writes it in its own slot before a multi-step
 * shared operation that one atomic store cannot commit; the reclaimer reads
 * it and rolls the operation forward or back. op == 0: none in progress. */
enum wr__intent_op {
  WR__OP_NONE = 0,
  WR__OP_REALLOC = 1, /* obj = old block, arg = new block */
  WR__OP_BIND = 2,    /* obj = block, arg = directory entry */
  WR__OP_CHAN_FIRST = 16, /* 16..31: channel module */
  WR__OP_CHAN_CREATE = 16,     /* obj = channel descriptor block (chan.c) */
  WR__OP_CHAN_SEND_BLOCK = 17, /* obj = lane index, arg = seq, arg2 = block */
  WR__OP_CHAN_DESTROY = 18,    /* obj = channel descriptor, arg = directory entry */
  WR__OP_SYNC_FIRST = 32, /* 32..47: semaphores, mutexes, MVars */
};

struct wr__intent {
  _Atomic uint32_t op; /* store-release last when opening, first when closing */
  uint32_t phase;
  uint64_t obj, arg, arg2;
};
_Static_assert(sizeof(struct wr__intent) == 32, "intent size");

struct wr__slot {
  _Atomic uint32_t state;       /* enum wr_slot_state; CAS FREE->LIVE in wr_slot_claim */
  _Atomic uint32_t incarnation; /* bumped by prepare/claim; read by the checker */
  _Atomic int32_t pid;
  uint32_t pad0;
  struct wr__intent intent;
  /* Watchdog heartbeat: a counter this slot's own process bumps where a
   * live worker passes anyway (sends, receives, every slice of a blocking
   * wait) and in wr_worker_alive (wr__beat). The supervisor only asks
   * whether it moved. Was padding (zero) in arenas written before it: the
   * layout version did not change. */
  _Atomic uint64_t heartbeat;
  uint8_t pad1[WR__CACHELINE - 56];
  /* Heap counters of this worker, flushed from its threads (fetch_add by
   * its own threads only; zeroed by nobody: they are cumulative). */
  _Atomic uint64_t allocs, frees;
  /* Blocks other threads or processes freed into this worker's spans
   * (fetch_add by them); its caches sweep for PENDING blocks when it grew. */
  _Atomic uint64_t remote_frees;
  /* Lossy hints: spans of this worker that just got their first PENDING
   * block (page index + 1), written round-robin by remote freers, taken by
   * the owner's refill (exchange with 0) before it carves a new span. */
  _Atomic uint32_t pending_hint[WR__PENDING_HINTS];
  _Atomic uint32_t pending_hint_pos;
  uint8_t pad2[WR__CACHELINE - 28 - 4 * WR__PENDING_HINTS];
  /* Synchronisation module's per-slot record (what this worker waits on,
   * which permits and locks it holds): sem.c/mutex.c define its layout. */
  uint8_t sync[2 * WR__CACHELINE];
};
_Static_assert(sizeof(struct wr__slot) == 256, "slot size");
_Static_assert(offsetof(struct wr__slot, allocs) == 64, "heap counters on their own line");
_Static_assert(offsetof(struct wr__slot, sync) == 128, "sync record offset");
_Static_assert(offsetof(struct wr__slot, intent) == 16, "intent offset");
_Static_assert(offsetof(struct wr__slot, heartbeat) == 48,
               "heartbeat on the owner-written line, away from remote_frees");

/* Bump a slot's heartbeat: a relaxed load and store by the slot's own
 * threads, no read-modify-write and no fence (two threads of one slot may
 * lose a bump; the word still moves). Relaxed; pairs with the relaxed load
 * in wr_slot_info_get: the reader compares values and orders nothing. */
static inline void wr__beat(_Atomic uint64_t *hb) {
  atomic_store_explicit(hb, atomic_load_explicit(hb, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* ------------------------------------------------------------ directory */

enum wr__dir_state { WR__DIR_FREE = 0, WR__DIR_BUSY = 1, WR__DIR_BOUND = 2 };

struct wr__dir_entry {
  _Atomic uint32_t state; /* release-store BOUND; pairs with acquire in lookup */
  uint32_t kind;
  uint64_t off;
  char name[WR_NAME_MAX];
};
_Static_assert(sizeof(struct wr__dir_entry) == 64, "directory entry size");

/* ------------------------------------------------------------ page map */

enum wr__span_state {
  WR__SPAN_FREE = 0,  /* page not in use */
  WR__SPAN_SMALL = 1, /* head of a span of small blocks of one size class */
  WR__SPAN_LARGE = 2, /* head of a span holding one large block */
  WR__SPAN_CONT = 3,  /* continuation page; `npages` holds the head's index */
};

/* One descriptor per heap page; only span heads carry the fields below
 * `npages`. Span memory: [tags: nblocks x u32, padded to 64][blocks]. */
struct wr__span {
  _Atomic uint32_t state;  /* written under the page lock */
  uint32_t npages;         /* head: pages in span; CONT: head's page index */
  _Atomic uint32_t owner;  /* worker tag of the owning cache; 0 = orphan.
                            * CAS 0 -> tag adopts; pairs with the release
                            * store that orphans it (heap.c span_orphan) */
  uint16_t cls;            /* size class (SMALL) */
  uint16_t in_avail;       /* owner-private: on the cache's avail list */
  _Atomic uint64_t cache;  /* id of the owning thread cache (pid<<32 | n) */
  _Atomic uint32_t shared; /* sticky: set before a block of this span is
                            * first handed to another owner; 0 lets reclaim
                            * free the span without scanning its tags */
  _Atomic uint32_t pending;/* hint: remote frees not yet collected */
  uint32_t nblocks;        /* blocks in the span */
  uint32_t carved;         /* blocks handed out of the bump area (owner only) */
  uint64_t free_head;      /* owner-private free list (offsets); rebuilt
                            * from the tags on adoption */
  _Atomic uint32_t live;   /* blocks out of the owner's free list (owner
                            * writes; others read it as a stats hint) */
  uint32_t next_avail;     /* owner-private avail list links: page index + 1 */
  uint32_t prev_avail;
  uint32_t pad;
};
_Static_assert(sizeof(struct wr__span) == 64, "span descriptor is one cache line");

#define WR__SPAN_HDR 64u /* bytes of tag area for a LARGE span */

/* ------------------------------------------------------------ handle */

struct wr__tcache; /* heap.c: per-thread cache */

struct wr_arena {
  uint8_t *base;
  uint64_t size;
  int fd;
  int creator;
  struct wr__header *hdr;
  struct wr__slot *slots;
  struct wr__dir_entry *dir;
  _Atomic uint64_t *lanes;
  struct wr__span *spans;
  uint8_t *heap;
  uint32_t npages;
  uint32_t slot;     /* 0 = creator / none */
  uint32_t incarnation;
  wr_tag tag;        /* 0 until the handle has a slot */
  int local_id;      /* index into the per-thread cache table */
  int backend;       /* enum wr_backend */
  char *path;        /* POSIX name or file path (malloc'ed), else NULL */
};

/* ------------------------------------------------------------ helpers */

/* Pointer for an offset read from shared memory, or NULL if [off, off+len)
 * is not inside the arena. Use on every offset a worker could have
 * scribbled. */
static inline void *wr__ptr_checked(const wr_arena *a, uint64_t off, uint64_t len) {
  if (off == 0 || off > a->size || len > a->size - off) return NULL;
  return a->base + off;
}

/* The same for a shared object (a heap block, so 16-aligned) at an offset
 * read from shared memory: NULL if outside the arena or misaligned. */
static inline void *wr__obj_checked(const wr_arena *a, uint64_t off, uint64_t len) {
  return (off & 15) ? NULL : wr__ptr_checked(a, off, len);
}

/* Is (slot, incarnation) of tag t the slot's current, non-dead incarnation? */
bool wr__worker_tag_live(const wr_arena *a, wr_tag t);
/* Whether the reclaimers may clean up after incarnation inc of slot: 0 once
 * it is dead or the slot has moved on, -WR_EAGAIN while it may still run,
 * -WR_EINVAL for a slot out of range. */
int wr__slot_reclaimable(const wr_arena *a, uint32_t slot, uint32_t inc);

/* Robust lock helpers: lock returns 0, or 1 when the previous owner died and
 * the caller must repair before wr__robust_unlock (which marks consistent). */
int wr__robust_init(pthread_mutex_t *m);
int wr__robust_lock(pthread_mutex_t *m);
/* As wr__robust_lock, for the supervisor (a handle without a worker slot):
 * a lock still held after patience_ns (a scribbled lock word, a stopped
 * worker) is re-initialised and taken, and 1 returned: the caller repairs
 * as after a dead owner. The supervisor never waits forever on a word a
 * worker can write. */
int wr__robust_lock_bounded(pthread_mutex_t *m, int64_t patience_ns);
#ifndef WR__LOCK_PATIENCE_NS /* the fuzzer shortens it */
#define WR__LOCK_PATIENCE_NS 1000000000ll
#endif
void wr__robust_unlock(pthread_mutex_t *m, bool repaired);
/* Take one of the arena's own locks (page_lock, dir_lock): robust, bounded
 * for the supervisor (slot 0); when its holder died, run repair, mark it
 * consistent and take it again. Unlock with wr__robust_unlock(m, false). */
void wr__arena_lock(wr_arena *a, pthread_mutex_t *m, void (*repair)(wr_arena *a));

/* arena.c, for backend.c */
int wr__handle_new(int fd, uint64_t size, int creator, wr_arena **out);
void wr__handle_map(wr_arena *a);
int wr__arena_validate(const struct wr__header *h, uint64_t size);
/* backend.c: an fd of `size` bytes for a new arena (*path gets the
 * malloc'ed name for POSIX/FILE); undo it; the creator's clean detach. */
int wr__backend_create(int backend, const char *path, uint64_t size, char **out_path);
void wr__backend_remove(int backend, const char *path);
void wr__backend_detach(wr_arena *a);

/* heap.c */
void wr__heap_init(wr_arena *a);            /* creator: fresh page map */
void wr__heap_detach(wr_arena *a);          /* release this process's caches */
void wr__heap_atfork_child(void);
/* Move a block from owner `from` to owner `to` in one CAS (the commit of
 * any hand-over: to a channel lane, a name, a receiver). Returns 0, or
 * -WR_ENOTOWNER if the block's tag is not `from`, -WR_EINVAL if off is not a
 * block. */
int wr__heap_transfer(wr_arena *a, wr_off_t off, wr_tag from, wr_tag to);
/* Tag of the block at off (0 if free or not a block). */
wr_tag wr__heap_owner(const wr_arena *a, wr_off_t off);
/* Free a block whatever its owner, as the reclaimer (name unbind, lane
 * teardown). Returns 0 or -WR_EINVAL. `expect` must match the tag. */
int wr__heap_free_as(wr_arena *a, wr_off_t off, wr_tag expect);

/* names.c: repair after the directory lock's owner died. */
void wr__dir_repair(wr_arena *a);
/* Checker hook: is directory entry `e` bound to the block at off? */
bool wr__dir_entry_owns(const wr_arena *a, uint32_t e, wr_off_t off);
/* map.c: is off a block stored as a value of the map at map_off? */
bool wr__map_owns(const wr_arena *a, wr_off_t map_off, wr_off_t off);
/* map.c: free the blocks stored in the map (its name `e` is being unbound). */
void wr__map_free_blocks(wr_arena *a, uint32_t e, wr_off_t map_off);
/* Checker hook for lane-owned blocks; set by chan.c (NULL: any lane index in
 * range with a lane present is accepted). */
extern bool (*wr__lane_owns_hook)(const wr_arena *a, uint32_t lane, wr_off_t off);

/* futex.c: shared futexes (never FUTEX_PRIVATE_FLAG). wait sleeps while
 * *word == expect, at most until abs_deadline (CLOCK_MONOTONIC; NULL =
 * none) and at most one bounded slice: it returns 0 when woken or when the
 * word differed, 1 when the slice ended (the caller re-checks its condition
 * and wr__intr_since either way), -ETIMEDOUT at the deadline, -EINTR on a
 * signal. */
int wr__futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *abs_deadline);
int wr__futex_wake(_Atomic uint32_t *word, int n); /* returns waiters woken */
extern int64_t wr__wait_slice_ns; /* the bounded slice (20 ms) */
int64_t wr__now_ns(void);                           /* CLOCK_MONOTONIC */
/* Interrupts (wr_interrupt): take a token when a wait starts, then ask
 * whether an interrupt arrived since (the wait returns -WR_EINTR). */
uint32_t wr__intr_begin(void);
bool wr__intr_since(uint32_t token);
/* Asymmetric StoreLoad fence for wait/wake (futex.c explains): wakers call
 * wr__fence_light() between their publishing store and their load of the
 * waiter count; waiters call wr__fence_heavy() between announcing
 * themselves and re-checking. wr__fence_register() (once per process, at
 * channel open) lets this process's light fence be a compiler barrier. */
extern int wr__fence_registered;
/* chan.c: waits that ended by a slice running out while the condition was
 * already true: a lost wake-up, or a wake that raced the slice's end.
 * Process-local; the lost-wake-up stress test asserts it stays 0. */
extern _Atomic uint64_t wr__chan_late_wakeups;
extern int64_t wr__chan_spin_ns; /* >= 0 overrides the adaptive spin (tests) */
void wr__fence_register(void);
void wr__fence_heavy(void);
static inline void wr__fence_light(void) {
  if (__builtin_expect(wr__fence_registered, 1))
    atomic_signal_fence(memory_order_seq_cst);
  else
    atomic_thread_fence(memory_order_seq_cst);
}

/* ------------------------------------------------------------ crash points
 * Every multi-step shared operation names the points between its steps.
 * The list is here, once; WR_CRASH_POINT(ID) compiles to nothing unless
 * WR_CRASH_POINTS is defined (tests, -Dcrash_points=true). */
#define WR__CRASH_MAP(XX)                                              \
  XX(HEAP_ALLOC_AFTER_POP, "heap.alloc.after_pop")                     \
  XX(HEAP_ALLOC_AFTER_TAG, "heap.alloc.after_tag")                     \
  XX(HEAP_FREE_AFTER_UNTAG, "heap.free.after_untag")                   \
  XX(HEAP_REMOTE_FREE_AFTER_TAG, "heap.remote_free.after_tag")         \
  XX(HEAP_SPAN_AFTER_HEAD, "heap.span.after_head")                     \
  XX(HEAP_SPAN_AFTER_CONT, "heap.span.after_cont")                     \
  XX(HEAP_ADOPT_AFTER_CAS, "heap.adopt.after_cas")                     \
  XX(HEAP_COLLECT_MID, "heap.collect.mid")                             \
  XX(HEAP_LARGE_AFTER_TAG, "heap.large.after_tag")                     \
  XX(HEAP_LARGE_FREE_AFTER_UNTAG, "heap.large_free.after_untag")       \
  XX(HEAP_REALLOC_AFTER_ALLOC, "heap.realloc.after_alloc")             \
  XX(HEAP_REALLOC_AFTER_COPY, "heap.realloc.after_copy")               \
  XX(HEAP_TRANSFER_AFTER_SHARED, "heap.transfer.after_shared")         \
  XX(HEAP_RELEASE_AFTER_ORPHAN, "heap.release.after_orphan")           \
  XX(HEAP_RECLAIM_MID, "heap.reclaim.mid")                             \
  XX(NAME_BIND_AFTER_BUSY, "name.bind.after_busy")                     \
  XX(NAME_BIND_AFTER_TRANSFER, "name.bind.after_transfer")             \
  XX(NAME_UNBIND_AFTER_FREE, "name.unbind.after_free")                 \
  XX(SEM_ACQ_AFTER_PENDING, "sem.acquire.after_pending")               \
  XX(SEM_ACQ_AFTER_CAS, "sem.acquire.after_cas")                       \
  XX(SEM_ACQ_AFTER_HELD, "sem.acquire.after_held")                     \
  XX(SEM_ACQ_AFTER_UNLOCK, "sem.acquire.after_unlock")                 \
  XX(SEM_REL_AFTER_PENDING, "sem.release.after_pending")               \
  XX(SEM_REL_AFTER_CAS, "sem.release.after_cas")                       \
  XX(SEM_REL_AFTER_HELD, "sem.release.after_held")                     \
  XX(SEM_REL_AFTER_UNLOCK, "sem.release.after_unlock")                 \
  XX(MUTEX_LOCK_AFTER_CAS, "mutex.lock.after_cas")                     \
  XX(MUTEX_UNLOCK_AFTER_STORE, "mutex.unlock.after_store")             \
  XX(RW_READ_AFTER_INC, "rwlock.read.after_inc")                       \
  XX(MVAR_TAKE_AFTER_LOCK, "mvar.take.after_lock")                     \
  XX(MVAR_TAKE_AFTER_COPY, "mvar.take.after_copy")                     \
  XX(MVAR_TAKE_AFTER_COMMIT, "mvar.take.after_commit")                 \
  XX(MVAR_PUT_AFTER_INTENT, "mvar.put.after_intent")                   \
  XX(MVAR_PUT_AFTER_LOCK, "mvar.put.after_lock")                       \
  XX(MVAR_PUT_AFTER_COPY, "mvar.put.after_copy")                       \
  XX(MVAR_PUT_AFTER_COMMIT, "mvar.put.after_commit")                   \
  XX(MAP_BLOCK_AFTER_TRANSFER, "map.block.after_transfer")             \
  XX(MAP_PUT_AFTER_UNDO, "map.put.after_undo")                         \
  XX(MAP_PUT_MID_WRITE, "map.put.mid_write")                           \
  XX(MAP_PUT_AFTER_WRITE, "map.put.after_write")                       \
  XX(CHAN_CREATE_AFTER_LANES, "chan.create.after_lanes")             \
  XX(CHAN_SEND_AFTER_COPY, "chan.send.after_copy")                   \
  XX(CHAN_SEND_AFTER_TRANSFER, "chan.send.after_transfer")           \
  XX(CHAN_SEND_BEFORE_PUBLISH, "chan.send.before_publish")           \
  XX(CHAN_SEND_AFTER_PUBLISH, "chan.send.after_publish")             \
  XX(CHAN_PEEK_AFTER_MARK, "chan.peek.after_mark")                   \
  XX(CHAN_RELEASE_AFTER_TRANSFER, "chan.release.after_transfer")     \
  XX(CHAN_RELEASE_AFTER_HEAD, "chan.release.after_head")             \
  XX(CHAN_RELEASE_AFTER_FREE, "chan.release.after_free")             \
  XX(CHAN_RECLAIM_MID, "chan.reclaim.mid")                           \
  XX(CHAN_DESTROY_MID, "chan.destroy.mid")

enum wr__crash_id {
  WR__CRASH_NONE = 0,
#define WR__CRASH_ENUM(id, name) WR__CRASH_##id,
  WR__CRASH_MAP(WR__CRASH_ENUM)
#undef WR__CRASH_ENUM
  WR__CRASH_COUNT
};

#ifdef WR_CRASH_POINTS
extern _Atomic int wr__crash_armed; /* id of the armed point, 0 = none */
void wr__crash_hit(int id);
#define WR_CRASH_POINT(ID)                                                              \
  do {                                                                                  \
    if (__builtin_expect(atomic_load_explicit(&wr__crash_armed, memory_order_relaxed) == \
                             WR__CRASH_##ID,                                            \
                         0))                                                            \
      wr__crash_hit(WR__CRASH_##ID);                                                    \
  } while (0)
#else
#define WR_CRASH_POINT(ID) ((void)0)
#endif

#endif /* WARREN_INTERNAL_H */
