/*
 * sync.h: private layout shared by the synchronisation modules (sync.c,
 * sem.c, mutex.c, mvar.c, map.c, deadlock.c). Nothing here is public.
 *
 * Per-slot record (struct wr__sync_rec, in each slot's 128-byte `sync`
 * area): what the worker is blocked on (for the deadlock graph) and the
 * semaphore permits it holds (for wr_sync_reclaim). Only the slot's own
 * process writes it while it lives; the reclaimer reads it after death.
 * One thread at a time per slot uses synchronisation objects (a thread that
 * needs its own claims its own slot): the record and the intent are the
 * slot's, not the thread's.
 *
 * Every object is a heap block bound to a name, beginning with a 32-bit
 * magic of its kind so that a stale or scribbled offset is refused.
 */
#ifndef WARREN_SYNC_H
#define WARREN_SYNC_H

#include "internal.h"

#include <time.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the futex word is the low half of a 64-bit word");

/* A blocking call's wait state: the deadline and the interrupt token are
 * taken at its first sleep (a call that never sleeps consumes no
 * interrupt). wr__sync_wait sleeps once while *word == expect (futex.c,
 * bounded slices) and returns 0 (re-check), -WR_ETIMEDOUT or -WR_EINTR
 * (wr_interrupt was called since the call began, or before it). */
struct wr__waiter {
  struct timespec ts;
  const struct timespec *dl;
  uint32_t token;
  bool started;
};
int wr__sync_wait(struct wr__waiter *w, int64_t timeout_ns, _Atomic uint32_t *word,
                  uint32_t expect);

/* Low 32 bits of a 64-bit shared word, as a futex word. */
static inline _Atomic uint32_t *wr__lo32(_Atomic uint64_t *w) { return (_Atomic uint32_t *)w; }
/* The halves of such a word's value (sem.c, mvar.c), and a value of halves. */
static inline uint32_t wr__lo(uint64_t w) { return (uint32_t)w; }
static inline uint32_t wr__hi(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint64_t wr__mk(uint32_t l, uint32_t h) { return (uint64_t)h << 32 | l; }

/* ------------------------------------------------------------ slot record */

#define WR__SYNC_HELD 7

struct wr__sync_held {
  _Atomic uint64_t obj; /* semaphore offset; 0 = unused entry */
  /* Low half: permits held (acquired minus released, >= 0). High half: the
   * signed change of an update in flight (0 = none), see sem.c. One word,
   * so that count and pending change in one store. */
  _Atomic uint64_t state;
};

struct wr__sync_rec {
  _Atomic uint64_t wait_obj;  /* object blocked on, 0 = none (deadlock graph) */
  _Atomic uint32_t wait_kind; /* enum wr_kind of wait_obj */
  uint32_t pad;
  struct wr__sync_held held[WR__SYNC_HELD];
};
_Static_assert(sizeof(struct wr__sync_rec) == 128, "sync record fills the slot's sync area");
_Static_assert(sizeof(((struct wr__slot *)0)->sync) == sizeof(struct wr__sync_rec),
               "sync area size");

static inline struct wr__sync_rec *wr__sync_rec(const wr_arena *a, uint32_t slot) {
  return (struct wr__sync_rec *)a->slots[slot].sync;
}

/* Intent ops of this module (32..47, internal.h). */
enum {
  WR__OP_MVAR_PUT = WR__OP_SYNC_FIRST, /* obj mvar, arg word before the lock */
  WR__OP_MAP_BLOCK,                    /* obj map, arg block being stored */
};

/* ------------------------------------------------------------ objects */

enum {
  WR__MAGIC_SEM = 0x4d455357u,   /* "WSEM" */
  WR__MAGIC_MUTEX = 0x58544d57u, /* "WMTX" */
  WR__MAGIC_RW = 0x4b4c5257u,    /* "WRLK" */
  WR__MAGIC_MVAR = 0x52564d57u,  /* "WMVR" */
  WR__MAGIC_MAP = 0x50414d57u,   /* "WMAP" */
  WR__MAGIC_ARRAY = 0x59524157u, /* "WARY" */
};

/* Lock words of mutexes, rwlock writers and map stripes: 0 free, a worker
 * tag (bit 31 is 0 in worker tags) or WR__LOCK_DEAD, plus WR__LOCK_WAITERS. */
#define WR__LOCK_WAITERS 0x80000000u
#define WR__LOCK_DEAD 2u /* previous owner died; next locker gets EOWNERDEAD */

/* A process-local handle: all public handle types share this shape. */
struct wr__handle {
  wr_arena *a;
  void *obj;
  wr_off_t off;
  uint32_t kind, size;
  uint32_t entry; /* directory entry of the name (a block's owner tag) */
  uint32_t hint;  /* sem.c: index of this worker's held entry, last time */
};

/* Allocate a zeroed object of `size` bytes, let init() fill it, bind it to
 * name (ownership moves to the name). Errors: those of wr_alloc, bind. */
int wr__obj_create(wr_arena *a, const char *name, int kind, size_t size,
                   void (*init)(void *obj, const void *arg), const void *arg, wr_off_t *off);
/* Look a name up, check kind (-WR_EKIND), bounds and magic (-WR_ECORRUPT);
 * fills a malloc'ed handle. */
int wr__obj_open(wr_arena *a, const char *name, int kind, uint32_t magic, size_t min_size,
                 struct wr__handle **out);
/* Pointer to a bound object of `kind` at the directory entry e, or NULL. */
void *wr__obj_at(const wr_arena *a, uint32_t e, int kind, uint32_t magic, size_t min_size,
                 wr_off_t *off);

/* Record/clear what this worker waits on (deadlock graph). Every blocking
 * call marks before each sleep, and each bounded slice (futex.c) comes back
 * through its loop to mark again: the mark is also the heartbeat of a
 * blocked worker, which is idle, not stuck (the supervisor's watchdog). */
static inline void wr__wait_mark(wr_arena *a, wr_off_t obj, int kind) {
  wr__beat(&a->slots[a->slot].heartbeat);
  struct wr__sync_rec *r = wr__sync_rec(a, a->slot);
  atomic_store_explicit(&r->wait_kind, (uint32_t)kind, memory_order_relaxed);
  atomic_store_explicit(&r->wait_obj, obj, memory_order_release);
}
static inline void wr__wait_clear(wr_arena *a) {
  atomic_store_explicit(&wr__sync_rec(a, a->slot)->wait_obj, 0, memory_order_relaxed);
}

/* Robust lock words (mutex.c), also used by map stripes. lock returns 0,
 * 1 (acquired from a dead owner: repair, then wr__lock_consistent or
 * unlock with repaired), or -WR_ETIMEDOUT / -WR_EINTR. */
int wr__lock_word(wr_arena *a, _Atomic uint32_t *w, wr_off_t obj, int kind, int64_t timeout_ns);
void wr__unlock_word(_Atomic uint32_t *w, bool leave_dead, int wake);

/* Reclaim parts (run by wr_sync_reclaim for a dead tag T). */
uint64_t wr__sem_reclaim(wr_arena *a, uint32_t slot, wr_tag T);
void wr__mutex_reclaim(wr_arena *a, wr_tag T);
void wr__mvar_reclaim(wr_arena *a, uint32_t slot, wr_tag T);
void wr__map_reclaim(wr_arena *a, uint32_t slot, wr_tag T);

/* Holder queries for the deadlock graph: fill slots[] (max n) with the
 * slots holding object (kind, off); return how many. */
uint32_t wr__sem_holders(const wr_arena *a, wr_off_t off, uint32_t *slots, uint32_t n);
uint32_t wr__mutex_holders(const wr_arena *a, int kind, wr_off_t off, uint32_t *slots, uint32_t n);
uint32_t wr__mvar_holders(const wr_arena *a, wr_off_t off, uint32_t *slots, uint32_t n);

#endif /* WARREN_SYNC_H */
