/*
 * warren.h: the one public header of libwarren.
 *
 * libwarren connects processes through one shared mapping, the arena: a
 * crash-reclaimable heap, named objects, worker slots, and (in later
 * modules) channels, semaphores, mutexes and MVars. Everything inside the
 * arena is addressed by 64-bit offsets from its base, because every process
 * maps it at a different address.
 *
 * Conventions (as libuv's): every function that can fail returns 0 (or a
 * count) on success and a negative code on failure: -WR_E... from the table
 * below, or -errno from a failed system call. wr_strerror() names both. The
 * library never prints, never exits and never calls malloc on a hot path.
 *
 * Thread safety: every function may be called from any thread of any
 * attached process unless its contract says otherwise.
 */
#ifndef WARREN_H
#define WARREN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WR_EXTERN __attribute__((visibility("default")))
#else
#define WR_EXTERN
#endif

#define WR_VERSION_MAJOR 0
#define WR_VERSION_MINOR 1
#define WR_VERSION_PATCH 0
/* "0.1.0": the library's version string. */
WR_EXTERN const char *wr_version(void);

/* ---------------------------------------------------------------- errors */

/* Error codes, listed once. Codes that have an errno twin use its value, so
 * that -errno from a system call and -WR_E... compare equal. */
#define WR_ERRNO_MAP(XX)                                                                  \
  XX(EINVAL, EINVAL, "invalid argument")                                                  \
  XX(ENOMEM, ENOMEM, "out of shared memory (raise the heap size)")                        \
  XX(EAGAIN, EAGAIN, "resource temporarily unavailable: try again")                       \
  XX(ETIMEDOUT, ETIMEDOUT, "timed out")                                                   \
  XX(EINTR, EINTR, "interrupted by a signal")                                             \
  XX(ENOENT, ENOENT, "no object is bound to that name")                                   \
  XX(EEXIST, EEXIST, "the name is already bound")                                         \
  XX(ENAMETOOLONG, ENAMETOOLONG, "name longer than WR_NAME_MAX - 1 bytes")                \
  XX(EMSGSIZE, EMSGSIZE, "record larger than the channel's slot size")                    \
  XX(EOWNERDEAD, EOWNERDEAD, "the previous owner died: repair, then mark consistent")     \
  XX(EBADARENA, 1001, "not a warren arena (bad magic)")                                   \
  XX(EVERSION, 1002, "arena layout version differs from this library's")                  \
  XX(ESIZE, 1003, "arena size differs from its header (truncated or wrong file?)")        \
  XX(ECLOSED, 1004, "channel is closed")                                                  \
  XX(EOF, 1005, "end of stream")                                                          \
  XX(EKIND, 1006, "the name is bound to an object of another kind")                       \
  XX(ENOSLOT, 1007, "no free worker slot")                                                \
  XX(ECORRUPT, 1008, "shared state is corrupt (see the checker's reason)")                \
  XX(ENOENV, 1009, "WARREN_ARENA_FD is not set: this process was not started by warren") \
  XX(ENOTOWNER, 1010, "the block is not owned by this worker (double free or foreign)")  \
  XX(EOVERFLOW, EOVERFLOW, "count would overflow")                                        \
  XX(EDEADLK, EDEADLK, "this worker already holds the lock")

enum wr_errno {
#define WR__ERR_ENUM(name, value, text) WR_##name = (value),
  WR_ERRNO_MAP(WR__ERR_ENUM)
#undef WR__ERR_ENUM
};

/* A static, readable text for a code (negative or positive), including
 * system errno values. Never NULL. */
WR_EXTERN const char *wr_strerror(int err);
/* The symbolic name of a code ("WR_ENOMEM", "ECONNRESET"), or "unknown". */
WR_EXTERN const char *wr_err_name(int err);

/* ---------------------------------------------------------------- arena */

typedef struct wr_arena wr_arena; /* process-local handle of one mapping */
typedef uint64_t wr_off_t;        /* offset from the arena base; 0 is null */

enum wr_backend {
  WR_BACKEND_MEMFD = 0, /* default: anonymous, sealed, gone with its last user */
  WR_BACKEND_POSIX = 1, /* shm_open: attachable by name (issue 5) */
  WR_BACKEND_FILE = 2,  /* file-backed, persists across runs (issue 5) */
};

#define WR_NAME_MAX 48    /* bytes of a name, including the NUL */
#define WR_MAX_SLOTS 1024 /* worker slots in an arena (slot 0 = creator) */

typedef struct wr_arena_opts {
  uint64_t size;       /* total bytes of the mapping; 0 = 64 MiB */
  int backend;         /* enum wr_backend */
  const char *path;    /* POSIX name or file path, for those backends */
  uint32_t flags;      /* reserved, 0 */
} wr_arena_opts;

/* Create a new arena and attach to it as its creator (slot 0, the
 * supervisor's). The mapping is sealed against resize. On success *out is a
 * handle the caller owns and releases with wr_arena_detach(). The arena fd is
 * close-on-exec; a spawner passes it on explicitly (wr_arena_fd()).
 * Errors: -WR_EINVAL (size too small or too large), -errno from
 * memfd_create/ftruncate/mmap. Does not block. */
WR_EXTERN int wr_arena_create(const wr_arena_opts *opts, wr_arena **out);

/* Attach to an existing arena through an fd (inherited or received). The fd
 * is duplicated; the caller keeps its own. The handle has no worker slot
 * until wr_slot_claim() or wr_slot_enter(). Errors: -WR_EBADARENA,
 * -WR_EVERSION, -WR_ESIZE (with a header that does not match), -errno. */
WR_EXTERN int wr_arena_attach_fd(int fd, wr_arena **out);

/* Attach as the worker the supervisor started: reads WARREN_ARENA_FD,
 * WARREN_SLOT and WARREN_INCARNATION, attaches, enters that slot, arms
 * PR_SET_PDEATHSIG(SIGKILL) and checks that the parent is still alive.
 * Errors: -WR_ENOENV, those of wr_arena_attach_fd and wr_slot_enter,
 * -ESRCH if the supervisor already died. */
WR_EXTERN int wr_arena_attach_env(wr_arena **out);

/* Release this process's caches (every thread's spans become adoptable) and
 * unmap. Blocks this worker still owns stay owned until its slot is
 * reclaimed. The handle is invalid afterwards. NULL is accepted. */
WR_EXTERN void wr_arena_detach(wr_arena *a);

/* Backends other than memfd (wr_arena_create with opts->backend):
 * - POSIX: shm_open(opts->path, or a unique "/warren.<pid>.<n>" when NULL),
 *   owner pid in the header; the creator's wr_arena_detach unlinks it.
 *   Errors: -WR_EEXIST (name taken), -WR_EINVAL (bad name), -errno.
 * - FILE: a new file at opts->path (mode 0600; -WR_EEXIST if it exists),
 *   msync'ed by wr_arena_checkpoint and by the creator's detach.
 * wr_arena_attach_path attaches by name or path:
 * - POSIX: as wr_arena_attach_fd (no slot; claim or enter one).
 * - FILE: the next run takes the file over: it locks it (flock, -WR_EAGAIN
 *   while another run holds it), validates magic/version/size (-WR_EBADARENA,
 *   -WR_EVERSION, -WR_ESIZE: a corrupt file is refused, never mapped
 *   further), reclaims every worker of the previous run (their blocks,
 *   permits and locks, as after a crash), and attaches as the creator
 *   (slot 0, a new incarnation). Named objects and their contents remain. */
WR_EXTERN int wr_arena_attach_path(int backend, const char *path, wr_arena **out);
/* FILE: msync the whole mapping (blocks until written). Others: 0. */
WR_EXTERN int wr_arena_checkpoint(wr_arena *a);
/* Unlink POSIX segments "/warren.*" whose creator process is dead (the
 * `warren clean` command); *removed (may be NULL) counts them. */
WR_EXTERN int wr_arena_clean_stale(unsigned *removed);

WR_EXTERN int wr_arena_fd(const wr_arena *a);
WR_EXTERN uint64_t wr_arena_size(const wr_arena *a);
/* Pointer <-> offset. wr_ptr(a, 0) is NULL; wr_off(a, NULL) is 0. Offsets out
 * of the mapping give NULL / 0. */
WR_EXTERN void *wr_ptr(const wr_arena *a, wr_off_t off);
WR_EXTERN wr_off_t wr_off(const wr_arena *a, const void *ptr);

/* ---------------------------------------------------------------- slots */

/* A worker is a slot plus an incarnation: each restart gets a new
 * incarnation, so a reused slot or pid is never confused with the dead one.
 * Every owned block, permit and lock is tagged with (slot, incarnation). */
typedef uint32_t wr_tag;

enum wr_slot_state {
  WR_SLOT_FREE = 0,     /* unused */
  WR_SLOT_RESERVED = 1, /* incarnation prepared by the supervisor, not yet entered */
  WR_SLOT_LIVE = 2,     /* a process runs as this incarnation */
  WR_SLOT_DEAD = 3,     /* its process died; reclaim pending */
};

typedef struct wr_slot_info {
  uint32_t slot, incarnation, state;
  int32_t pid;
  wr_tag tag;
  uint32_t pad;
  /* The watchdog's heartbeat: a counter the slot's process bumps on channel
   * sends and receives, in every slice of a blocking wait and in
   * wr_worker_alive. Only whether it moved means anything. */
  uint64_t heartbeat;
} wr_slot_info;

/* Supervisor side: start a new incarnation of `slot` (1..WR_MAX_SLOTS-1) for a
 * process about to be spawned; the previous incarnation must have been
 * reclaimed (state FREE or DEAD after wr_slot_release). *incarnation gets
 * the new number to pass in WARREN_INCARNATION. Errors: -WR_EINVAL, -WR_EAGAIN
 * (slot still LIVE). */
WR_EXTERN int wr_slot_prepare(wr_arena *a, uint32_t slot, uint32_t *incarnation);

/* Worker side: become (slot, incarnation) as prepared by the supervisor.
 * Errors: -WR_EINVAL (not prepared with that incarnation). */
WR_EXTERN int wr_slot_enter(wr_arena *a, uint32_t slot, uint32_t incarnation);

/* For processes warren did not spawn (embedders, tests): take any free slot
 * as a fresh incarnation. Errors: -WR_ENOSLOT. */
WR_EXTERN int wr_slot_claim(wr_arena *a, uint32_t *slot);

/* Mark a slot's process dead (the supervisor calls this from the exit
 * status, before reclaiming). Idempotent. */
WR_EXTERN int wr_slot_mark_dead(wr_arena *a, uint32_t slot, uint32_t incarnation);

/* After everything of (slot, incarnation) was reclaimed: the slot is FREE
 * again. Errors: -WR_EINVAL if that incarnation is not the slot's current. */
WR_EXTERN int wr_slot_release(wr_arena *a, uint32_t slot, uint32_t incarnation);

WR_EXTERN int wr_slot_info_get(const wr_arena *a, uint32_t slot, wr_slot_info *info);

/* The tag of the worker this handle runs as (0 if it has no slot). */
WR_EXTERN wr_tag wr_self_tag(const wr_arena *a);
WR_EXTERN uint32_t wr_self_slot(const wr_arena *a);

/* ---------------------------------------------------------------- heap */

/* Allocate `size` bytes (16-byte aligned) owned by the calling worker.
 * The block stays the worker's until it frees it, hands it to a channel or a
 * name, or dies (then wr_heap_reclaim frees it). The fast path takes no lock
 * and no atomic read-modify-write shared with another process.
 * Errors: -WR_ENOMEM, -WR_EINVAL (size 0, no slot). Does not block (the page
 * allocator takes a robust lock for a moment when a new span is needed). */
WR_EXTERN int wr_alloc(wr_arena *a, size_t size, void **ptr);
/* As wr_alloc, zero-filled, n * size checked for overflow (-WR_EINVAL). */
WR_EXTERN int wr_calloc(wr_arena *a, size_t n, size_t size, void **ptr);
/* Resize *ptr (NULL allocates). On success *ptr may move; on failure *ptr is
 * untouched and still owned. Errors: those of wr_alloc and wr_free. */
WR_EXTERN int wr_realloc(wr_arena *a, void **ptr, size_t size);
/* Free a block this worker owns; any thread or process may free a block it
 * owns, wherever it was allocated (cross-process frees are one atomic step).
 * NULL is accepted. Errors: -WR_ENOTOWNER (double free, a block owned by
 * someone else), -WR_EINVAL (not a block start: a foreign pointer). */
WR_EXTERN int wr_free(wr_arena *a, void *ptr);
/* Usable size of a block (>= the size asked for), or 0 if not a block. */
WR_EXTERN size_t wr_block_size(const wr_arena *a, const void *ptr);

/* Free everything (slot, incarnation) owned, return its spans to the page
 * allocator or make them adoptable, and roll its half-done heap operations
 * forward or back. Idempotent; safe while other workers keep allocating.
 * Blocks the worker had handed to a channel or a name stay there. The
 * worker must be dead (state DEAD), otherwise -WR_EAGAIN. */
typedef struct wr_reclaim_report {
  uint64_t blocks, bytes; /* freed blocks and their usable bytes */
  uint64_t spans;         /* spans returned to the page allocator */
  uint64_t orphaned;      /* spans left adoptable (they hold others' blocks) */
} wr_reclaim_report;
WR_EXTERN int wr_heap_reclaim(wr_arena *a, uint32_t slot, uint32_t incarnation,
                              wr_reclaim_report *report);

/* Exact usage from a scan of every block tag (O(heap); for checks and stats
 * ticks, not hot paths). */
typedef struct wr_heap_usage {
  uint64_t blocks, bytes;             /* in use, by anyone */
  uint64_t worker_bytes, lane_bytes, name_bytes;
  uint64_t pending_bytes;             /* freed remotely, not yet collected */
  uint64_t free_page_bytes;           /* pages not in any span */
  uint64_t spans, orphan_spans;
} wr_heap_usage;

/* Verify the heap invariant: page map consistent; every block free, owned by
 * a live worker incarnation, a bound name or an existing lane; counters agree.
 * Returns 0 or -WR_ECORRUPT with the first reason written to why (if
 * non-NULL). Fills *usage if non-NULL. Must not run concurrently with a
 * reclaim of the same slot; may run while workers allocate (then a worker
 * caught mid-operation can make it report a transient reason). */
WR_EXTERN int wr_heap_check(wr_arena *a, wr_heap_usage *usage, char *why, size_t whylen);

/* Bytes (usable size) owned by `tag`, from a scan. */
WR_EXTERN uint64_t wr_heap_bytes_owned(wr_arena *a, wr_tag tag);

/* Cheap counters kept in the arena. allocs/frees are flushed from per-thread
 * counters when a thread refills a span and by wr_heap_flush(). */
typedef struct wr_heap_stats {
  uint64_t heap_bytes;              /* size of the page area */
  uint64_t page_size, pages_total, pages_in_use, pages_hwm;
  uint64_t allocs, frees;           /* all workers, as flushed */
  uint64_t reclaims, reclaimed_blocks, reclaimed_bytes;
} wr_heap_stats;
WR_EXTERN int wr_heap_stats_get(const wr_arena *a, wr_heap_stats *st);
/* Publish this thread's alloc/free counters to the arena. */
WR_EXTERN void wr_heap_flush(wr_arena *a);

/* ---------------------------------------------------------------- names */

enum wr_kind {
  WR_KIND_BLOCK = 1, /* a heap block, owned by the name (a root) */
  WR_KIND_CHAN = 2,
  WR_KIND_SEM = 3,
  WR_KIND_MUTEX = 4,
  WR_KIND_MVAR = 5,
  WR_KIND_MAP = 6,
  WR_KIND_ARRAY = 7,
  WR_KIND_RWLOCK = 8,
};

/* Bind `name` to the heap block at `off`, which the caller owns: ownership
 * moves to the name in the same atomic step, so the block survives its
 * creator's death and is freed by wr_name_unbind. Errors: -WR_EEXIST,
 * -WR_ENAMETOOLONG, -WR_ENOTOWNER, -WR_ENOMEM (directory full), -WR_EINVAL. */
WR_EXTERN int wr_name_bind(wr_arena *a, const char *name, int kind, wr_off_t off);
/* Find a name. *kind and *off may be NULL. Lock-free. Errors: -WR_ENOENT. */
WR_EXTERN int wr_name_lookup(const wr_arena *a, const char *name, int *kind, wr_off_t *off);
/* Unbind a name and free its block. Errors: -WR_ENOENT. */
WR_EXTERN int wr_name_unbind(wr_arena *a, const char *name);
/* Write a fresh, unused name "<prefix>.<n>" into buf (as the seeds'
 * create_unique). Errors: -WR_ENAMETOOLONG. */
WR_EXTERN int wr_name_unique(wr_arena *a, const char *prefix, char *buf, size_t len);

/* ---------------------------------------------------------------- channels
 * (lib/chan.c, issue 4.) A channel is a named group of SPSC lanes: one lane
 * per (producer index, consumer index) pair. Records are bytes, plus an
 * optional 64-bit key for key-hashed routing; nothing in a record is a
 * pointer. Timeouts: timeout_ns < 0 waits forever, 0 tries once (-WR_EAGAIN
 * when it would wait), > 0 waits at most that long (CLOCK_MONOTONIC, then
 * -WR_ETIMEDOUT). Waits spin briefly, then sleep on a futex; they are
 * interruptible: a signal handler that calls wr_interrupt() makes them return
 * -WR_EINTR. A handle (wr_chan) is used by one thread at a time.
 *
 * Delivery is at least once: a consumer that dies between peek and release
 * gets the record again after wr_chan_reclaim (counted as redelivered). A
 * producer's record is published whole or not at all. */

typedef struct wr_chan wr_chan; /* process-local handle of one side */

typedef struct wr_chan_opts {
  uint32_t capacity;  /* slots per lane (rounded up to a power of two); > 0 */
  uint32_t slot_size; /* bytes of inline payload per slot; >= 8 */
  uint32_t producers; /* producer replicas (lanes = producers x consumers); 0 = 1 */
  uint32_t consumers; /* consumer replicas; 0 = 1 */
  uint32_t flags;     /* WR_CHAN_KEYED: route by key hash instead of round-robin */
} wr_chan_opts;
#define WR_CHAN_KEYED 1u

enum wr_chan_role { WR_PRODUCER = 1, WR_CONSUMER = 2 };

/* A received record, valid until wr_chan_release (or wr_rec_take). */
typedef struct wr_rec {
  const void *data; /* inline payload (in the ring) or the zero-copy block */
  uint32_t len;
  uint32_t flags;   /* WR_REC_BLOCK: data is a heap block (wr_rec_take keeps it) */
  uint64_t key;
  uint64_t seq;     /* lane sequence number (0, 1, ... per lane) */
  uint32_t lane;    /* internal: which of the handle's lanes it came from */
  uint32_t pad;
} wr_rec;
#define WR_REC_BLOCK 1u

/* One record of a batch send. */
typedef struct wr_msg {
  const void *data;
  uint32_t len;
  uint32_t pad;
  uint64_t key; /* used by WR_CHAN_KEYED channels */
} wr_msg;

/* Per-lane counters (wr_chan_stats). sent/received are the lane's tail and
 * head; depth = sent - received; hwm is the deepest the producer saw it. */
typedef struct wr_lane_stats {
  uint32_t producer, consumer; /* indices of the lane's two sides */
  uint32_t capacity, slot_size;
  uint64_t sent, received, bytes, depth, hwm;
  uint64_t full_waits, empty_waits, redelivered;
  wr_tag producer_tag, consumer_tag; /* worker holding each side, 0 = none */
  uint32_t closed;                   /* nonzero once closed */
  uint32_t pad;
} wr_lane_stats;

/* Create channel `name`: a descriptor bound to the name (kind WR_KIND_CHAN)
 * and producers x consumers lanes of `capacity` slots, all owned by the
 * name until wr_chan_destroy. Crash-safe: a creator that dies half-way
 * leaves nothing after wr_chan_reclaim + wr_heap_reclaim. Needs a slot.
 * Errors: -WR_EINVAL (capacity 0 or > 2^30, slot_size < 8 or > 1 MiB, more
 * than 4096 lanes), -WR_EEXIST, -WR_ENAMETOOLONG, -WR_ENOMEM (heap, lane
 * table or directory full). Does not block. */
WR_EXTERN int wr_chan_create(wr_arena *a, const char *name, const wr_chan_opts *opts);

/* Free a channel: every record in flight, its lanes and its name. Nobody may
 * have it open. Errors: -WR_ENOENT, -WR_EKIND. */
WR_EXTERN int wr_chan_destroy(wr_arena *a, const char *name);

/* Open side `role` number `index` (< producers or < consumers) of channel
 * `name`. The side's lanes record this worker as their producer or
 * consumer (which wr_chan_reclaim reads) and the handle starts where the
 * previous holder stopped. *out is the caller's; wr_chan_detach frees it.
 * Errors: -WR_ENOENT, -WR_EKIND, -WR_EINVAL (role, index, no slot),
 * -WR_EAGAIN (a live worker holds that side), -WR_ECORRUPT, -ENOMEM. */
WR_EXTERN int wr_chan_open(wr_arena *a, const char *name, int role, uint32_t index,
                           wr_chan **out);
/* Give up the side (records peeked and not released will be redelivered to
 * the next holder) and free the handle. Does not close. NULL is accepted. */
WR_EXTERN void wr_chan_detach(wr_chan *c);

/* Copy one record (len <= slot_size) into the next lane: round-robin over
 * the producer's lanes (first one with room), or by key hash for
 * WR_CHAN_KEYED (wr_chan_send uses key 0). Blocks while full (timeout).
 * Errors: -WR_EMSGSIZE, -WR_ECLOSED, -WR_EAGAIN, -WR_ETIMEDOUT, -WR_EINTR,
 * -WR_EINVAL (a consumer handle). */
WR_EXTERN int wr_chan_send(wr_chan *c, const void *data, size_t len, int64_t timeout_ns);
WR_EXTERN int wr_chan_send_key(wr_chan *c, uint64_t key, const void *data, size_t len,
                               int64_t timeout_ns);
/* Send n inline records, publishing once per run of records that go to the
 * same lane. Returns how many were sent (>= 1; fewer than n only when a
 * wait ended) or an error as wr_chan_send when none was. */
WR_EXTERN int wr_chan_send_batch(wr_chan *c, const wr_msg *msgs, size_t n, int64_t timeout_ns);
/* Zero-copy: send the heap block `block` (from wr_alloc, owned by the caller)
 * holding `len` bytes. Its ownership moves to the lane before the record is
 * published, and to the receiver after; the caller must not touch it after a
 * success (on error it still owns it). Errors: as wr_chan_send, and
 * -WR_ENOTOWNER / -WR_EINVAL for a block the caller does not own. */
WR_EXTERN int wr_chan_send_block(wr_chan *c, void *block, size_t len, int64_t timeout_ns);
WR_EXTERN int wr_chan_send_block_key(wr_chan *c, uint64_t key, void *block, size_t len,
                                     int64_t timeout_ns);

/* Two-phase receive, step 1: the next record not yet peeked, from the
 * consumer's lanes in turn (fair). The record stays in the lane (and would
 * be redelivered after a crash) until released. Blocks while every lane is
 * empty. Errors: -WR_EOF (every lane closed and drained), -WR_EAGAIN,
 * -WR_ETIMEDOUT, -WR_EINTR, -WR_EINVAL (a producer handle). */
WR_EXTERN int wr_chan_peek(wr_chan *c, wr_rec *rec, int64_t timeout_ns);
/* Peek up to max records of one lane at once; returns how many (>= 1).
 * Releasing the last one releases them all. Errors: as wr_chan_peek. */
WR_EXTERN int wr_chan_peek_batch(wr_chan *c, wr_rec *recs, size_t max, int64_t timeout_ns);
/* Step 2: done with rec and every earlier record of its lane: the lane's
 * head moves past it (producers waiting for room are woken) and blocks of
 * zero-copy records are freed. Does not block. Errors: -WR_EINVAL (not a
 * peeked record of this handle, or already released), -WR_ECORRUPT (a
 * record's block is not owned by the lane: the head stops before it). */
WR_EXTERN int wr_chan_release(wr_chan *c, const wr_rec *rec);
/* As wr_chan_release, but the block of the zero-copy record rec becomes the
 * caller's (free it with wr_free); *block gets it. Errors: as
 * wr_chan_release, -WR_EINVAL if rec is not a block record. */
WR_EXTERN int wr_rec_take(wr_chan *c, const wr_rec *rec, void **block);
/* peek + copy into buf + release. Returns the record's length.
 * Errors: as wr_chan_peek, -WR_EMSGSIZE (cap too small; the record stays). */
WR_EXTERN int wr_chan_recv(wr_chan *c, void *buf, size_t cap, int64_t timeout_ns);

/* Close this handle's lanes: sends on them fail with -WR_ECLOSED; the
 * consumer drains what was sent, then gets -WR_EOF. Idempotent. */
WR_EXTERN int wr_chan_close(wr_chan *c);
/* The same from outside (the supervisor, for a producer that exits for
 * good): close the lanes of side (role, index). Errors: -WR_ENOENT,
 * -WR_EKIND, -WR_EINVAL. */
WR_EXTERN int wr_chan_close_side(wr_arena *a, const char *name, int role, uint32_t index);

/* After worker (slot, incarnation) died: roll its half-done channel
 * operations forward or back (a block moved into a lane but not published
 * is published; a record it was taking is put back), count the records it
 * had peeked but not released (*redelivered, may be NULL) and free its
 * sides so a new incarnation can open them and continue where it stopped.
 * Call it BEFORE wr_heap_reclaim of the same incarnation. Idempotent.
 * Errors: -WR_EINVAL, -WR_EAGAIN (that incarnation is not dead). */
WR_EXTERN int wr_chan_reclaim(wr_arena *a, uint32_t slot, uint32_t incarnation,
                              uint64_t *redelivered);
/* Verify every lane: indices ordered, depth <= capacity, every zero-copy
 * record's block owned by its lane. Also makes wr_heap_check accept a
 * lane-owned block only inside its lane's live range. 0 or -WR_ECORRUPT
 * with a reason in why. */
WR_EXTERN int wr_chan_check(wr_arena *a, char *why, size_t whylen);
/* Snapshot the counters of channel `name`'s lanes into out[0..max) (lane
 * order: producer-major). Returns the number of lanes (may exceed max).
 * Errors: -WR_ENOENT, -WR_EKIND. Lock-free, does not block. */
WR_EXTERN int wr_chan_stats(wr_arena *a, const char *name, wr_lane_stats *out, size_t max);
/* Call fn(name, opts, ctx) for each channel of the arena; stops early and
 * returns fn's value when it is nonzero. Returns 0 otherwise. */
WR_EXTERN int wr_chan_foreach(wr_arena *a,
                              int (*fn)(const char *name, const wr_chan_opts *opts, void *ctx),
                              void *ctx);
/* Make every wait of this process in progress, or the next one to start,
 * return -WR_EINTR once. Async-signal-safe. */
WR_EXTERN void wr_interrupt(void);

/* ---------------------------------------------------------------- synchronisation
 * (lib/sem.c, mutex.c, mvar.c, map.c, deadlock.c, sync.c.) Every object is a
 * heap block bound to a name with its kind, so any attached process opens it
 * by name; it lives until wr_name_unbind. Handles are process-local: *_open
 * mallocs one, *_close frees it (the object stays). Operations need a worker
 * slot (the creator is slot 0), and a slot uses them from one thread at a
 * time: a thread that needs its own claims its own slot on its own handle.
 * Timeouts as for channels: < 0 forever, 0 try once, > 0 at most that many
 * ns; waits return -WR_EINTR after wr_interrupt(). Errors of every *_open:
 * -WR_ENOENT, -WR_EKIND (the name is bound to another kind), -WR_ECORRUPT
 * (the block is not such an object), -ENOMEM. Errors of every *_create:
 * those of wr_alloc and wr_name_bind. */

#define WR_SEM_MAX 0x7fffffffu /* largest semaphore value */
typedef struct wr_sem wr_sem;
/* Create a counting semaphore holding `value` permits (-WR_EINVAL above
 * WR_SEM_MAX). Does not block. */
WR_EXTERN int wr_sem_create(wr_arena *a, const char *name, uint32_t value);
WR_EXTERN int wr_sem_open(wr_arena *a, const char *name, wr_sem **out);
WR_EXTERN void wr_sem_close(wr_sem *s);
/* Take n >= 1 permits, waiting while fewer are available. The permits are
 * recorded as held by this worker: if it dies, wr_sync_reclaim returns them.
 * A worker holds permits of at most 7 semaphores at once (-WR_ENOMEM).
 * Errors: -WR_EINVAL (n == 0 or > WR_SEM_MAX), -WR_EAGAIN (timeout 0),
 * -WR_ETIMEDOUT, -WR_EINTR, -WR_ENOMEM, -WR_EOVERFLOW (this worker would
 * hold more than WR_SEM_MAX). */
WR_EXTERN int wr_sem_acquire(wr_sem *s, uint32_t n, int64_t timeout_ns);
/* wr_sem_acquire(s, n, 0). */
WR_EXTERN int wr_sem_try(wr_sem *s, uint32_t n);
/* Give n permits back and wake waiters. Permits beyond those this worker
 * holds are a gift (a signal): they are not taken back when it dies.
 * Errors: -WR_EINVAL (n == 0), -WR_EOVERFLOW (value would pass WR_SEM_MAX).
 * Does not block. */
WR_EXTERN int wr_sem_release(wr_sem *s, uint32_t n);
/* Permits available now (a snapshot), and permits this worker holds. */
WR_EXTERN int wr_sem_value(const wr_sem *s);
WR_EXTERN int wr_sem_held(const wr_sem *s);

typedef struct wr_mutex wr_mutex;
/* A robust mutex: the owner's tag is the lock word. When the owner dies,
 * wr_sync_reclaim marks it owner-dead and the next locker gets
 * -WR_EOWNERDEAD *with the lock held*; it repairs the protected data and
 * calls wr_mutex_consistent, else every later locker gets EOWNERDEAD too.
 * Not recursive: locking a mutex this worker holds returns -WR_EDEADLK. */
WR_EXTERN int wr_mutex_create(wr_arena *a, const char *name);
WR_EXTERN int wr_mutex_open(wr_arena *a, const char *name, wr_mutex **out);
WR_EXTERN void wr_mutex_close(wr_mutex *m);
/* Errors: -WR_EOWNERDEAD (locked; see above), -WR_EAGAIN (timeout 0),
 * -WR_ETIMEDOUT, -WR_EINTR, -WR_EDEADLK. */
WR_EXTERN int wr_mutex_lock(wr_mutex *m, int64_t timeout_ns);
/* Errors: -WR_ENOTOWNER (not locked by this worker). Does not block. */
WR_EXTERN int wr_mutex_unlock(wr_mutex *m);
/* After EOWNERDEAD: the data is repaired. Errors: -WR_ENOTOWNER. */
WR_EXTERN int wr_mutex_consistent(wr_mutex *m);

typedef struct wr_rwlock wr_rwlock;
/* A robust reader/writer lock for read-mostly data: many readers or one
 * writer; a waiting writer holds new readers back. Each slot's read holds
 * are counted in the lock, so a dead reader's holds are dropped by
 * wr_sync_reclaim; a dead writer makes the next locker (reader or writer)
 * get -WR_EOWNERDEAD with the lock held, until a writer calls
 * wr_rwlock_consistent. Errors of the lock calls: as wr_mutex_lock. */
WR_EXTERN int wr_rwlock_create(wr_arena *a, const char *name);
WR_EXTERN int wr_rwlock_open(wr_arena *a, const char *name, wr_rwlock **out);
WR_EXTERN void wr_rwlock_close(wr_rwlock *rw);
WR_EXTERN int wr_rwlock_rdlock(wr_rwlock *rw, int64_t timeout_ns);
WR_EXTERN int wr_rwlock_wrlock(wr_rwlock *rw, int64_t timeout_ns);
/* Drop this worker's write lock, or one of its read holds.
 * Errors: -WR_ENOTOWNER. */
WR_EXTERN int wr_rwlock_unlock(wr_rwlock *rw);
WR_EXTERN int wr_rwlock_consistent(wr_rwlock *rw);

typedef struct wr_mvar wr_mvar;
/* An MVar (as the seeds'): a box of at most `size` bytes, full or empty.
 * Created full with [init, init+len) if init is non-NULL, else empty.
 * Crash rule: a take by a worker that dies before its next put is undone
 * by wr_sync_reclaim (the value goes back in, as a robust lock's state
 * would), so a value is never lost with its taker; a put or take cut short
 * by death is rolled back or forward, never torn. Errors: -WR_EINVAL
 * (size 0 or len > size). */
WR_EXTERN int wr_mvar_create(wr_arena *a, const char *name, uint32_t size, const void *init,
                             size_t len);
WR_EXTERN int wr_mvar_open(wr_arena *a, const char *name, wr_mvar **out);
WR_EXTERN void wr_mvar_close(wr_mvar *mv);
/* Take the value (wait while empty) into buf; returns its length.
 * Errors: -WR_EMSGSIZE (cap too small: nothing taken), -WR_EAGAIN (timeout
 * 0 and empty), -WR_ETIMEDOUT, -WR_EINTR. */
WR_EXTERN int wr_mvar_take(wr_mvar *mv, void *buf, size_t cap, int64_t timeout_ns);
/* Put a value (wait while full). Errors: -WR_EMSGSIZE (len > size),
 * -WR_EAGAIN (timeout 0 and full), -WR_ETIMEDOUT, -WR_EINTR. */
WR_EXTERN int wr_mvar_put(wr_mvar *mv, const void *data, size_t len, int64_t timeout_ns);

/* Shared containers (as the seeds' netshm): a hash map of byte keys to
 * byte values (or heap blocks), and a fixed array, both cut into stripes,
 * each behind its own robust lock. A writer copies the slot it changes to
 * the stripe's undo area first, so a writer's death rolls the stripe back
 * (wr_sync_reclaim, or the next locker). Capacity is fixed at creation. */
typedef struct wr_map wr_map;
typedef struct wr_map_opts {
  uint32_t capacity;  /* entries (> 0) */
  uint32_t key_max;   /* bytes of a key (> 0) */
  uint32_t value_max; /* bytes of a value (>= 8 for block values) */
  uint32_t stripes;   /* locks; 0 = 16; rounded down to divide capacity */
} wr_map_opts;
WR_EXTERN int wr_map_create(wr_arena *a, const char *name, const wr_map_opts *opts);
WR_EXTERN int wr_map_open(wr_arena *a, const char *name, wr_map **out);
WR_EXTERN void wr_map_close(wr_map *m);
/* Insert or replace. Errors: -WR_EMSGSIZE (key or value too long),
 * -WR_ENOMEM (the key's stripe is full), -WR_EINTR. Blocks on the stripe
 * lock only. */
WR_EXTERN int wr_map_put(wr_map *m, const void *key, size_t klen, const void *val, size_t vlen);
/* Copy the value into buf (up to cap bytes); returns its full length.
 * Errors: -WR_ENOENT. */
WR_EXTERN int wr_map_get(wr_map *m, const void *key, size_t klen, void *buf, size_t cap);
/* Errors: -WR_ENOENT. */
WR_EXTERN int wr_map_del(wr_map *m, const void *key, size_t klen);
/* Store a heap block this worker owns as the value: ownership moves to the
 * map; the block is freed when its key is replaced or deleted. */
WR_EXTERN int wr_map_put_block(wr_map *m, const void *key, size_t klen, void *block);
/* The block stored under key (valid until the key is replaced/deleted). */
WR_EXTERN int wr_map_get_block(wr_map *m, const void *key, size_t klen, void **block);
/* Read-modify-write under the stripe lock (the seeds' "group"): fn gets
 * the value (exists = 0: absent, *len = 0), may change it in place up to
 * cap bytes and *len, and returns WR_MAP_KEEP (store it), WR_MAP_DELETE, or
 * a negative code (the value is restored; the call returns that code). */
enum { WR_MAP_KEEP = 0, WR_MAP_DELETE = 1 };
typedef int (*wr_map_fn)(void *val, uint32_t *len, uint32_t cap, int exists, void *ctx);
WR_EXTERN int wr_map_group(wr_map *m, const void *key, size_t klen, wr_map_fn fn, void *ctx);
/* Number of entries (a scan, taking each stripe's lock in turn). */
WR_EXTERN int64_t wr_map_count(wr_map *m);
/* Entries the map was created for (its fixed capacity). */
WR_EXTERN uint32_t wr_map_capacity(const wr_map *m);
/* Call fn(key, klen, val, vlen, ctx) for each entry holding a byte value
 * (block values are left out), stripe by stripe, each stripe's lock held
 * while fn runs on its entries: fn must not call into the same map. Stops
 * early and returns fn's value when it is nonzero; 0 otherwise. Entries
 * put or deleted meanwhile in stripes not yet visited may or may not be
 * seen. Errors: those of the stripe lock (-WR_EINTR, -WR_EDEADLK). */
typedef int (*wr_map_each_fn)(const void *key, uint32_t klen, const void *val, uint32_t vlen,
                              void *ctx);
WR_EXTERN int wr_map_foreach(wr_map *m, wr_map_each_fn fn, void *ctx);

typedef struct wr_array wr_array;
/* n elements of elem_size bytes, zeroed. Errors: -WR_EINVAL. */
WR_EXTERN int wr_array_create(wr_arena *a, const char *name, uint32_t n, uint32_t elem_size);
WR_EXTERN int wr_array_open(wr_arena *a, const char *name, wr_array **out);
WR_EXTERN void wr_array_close(wr_array *ar);
WR_EXTERN uint32_t wr_array_len(const wr_array *ar);
/* Errors: -WR_EINVAL (index out of range). */
WR_EXTERN int wr_array_get(wr_array *ar, uint32_t i, void *buf);
WR_EXTERN int wr_array_set(wr_array *ar, uint32_t i, const void *elem);
/* fn changes element i in place under its stripe lock; a negative return
 * restores it and is returned. */
WR_EXTERN int wr_array_group(wr_array *ar, uint32_t i, int (*fn)(void *elem, void *ctx),
                             void *ctx);

/* Return every permit, lock and MVar operation (slot, incarnation) held:
 * permits go back to their semaphores (*permits_returned counts them),
 * mutexes and rwlocks it held become owner-dead, its read holds are
 * dropped, its half-done MVar/map operations are rolled back or forward,
 * and waiters are woken. Idempotent. The worker must be DEAD (-WR_EAGAIN). */
WR_EXTERN int wr_sync_reclaim(wr_arena *a, uint32_t slot, uint32_t incarnation,
                              uint64_t *permits_returned);

/* A wait-for cycle: slots[i] waits on objs[i] (of kinds[i]), which slots[i+1]
 * (cyclically) holds. */
#define WR_DEADLOCK_MAX 16
typedef struct wr_deadlock {
  uint32_t n;
  uint32_t slots[WR_DEADLOCK_MAX];
  int kinds[WR_DEADLOCK_MAX];
  wr_off_t objs[WR_DEADLOCK_MAX];
} wr_deadlock;
/* Build the wait-for graph from the slot table (who waits on which mutex,
 * rwlock, semaphore or MVar; who holds it) and look for a cycle among live
 * workers. Returns 1 and fills *cycle if one exists, 0 if none. A snapshot:
 * workers keep running while it reads. Does not block. */
WR_EXTERN int wr_deadlock_check(wr_arena *a, wr_deadlock *cycle);

/* ---------------------------------------------------------------- worker
 * (lib/worker.c, issue 6.) The worker side of a run supervised by `warren`:
 * the supervisor tells each process who it is and which channels it uses
 * through its environment (WARREN_*). */

typedef struct wr_worker wr_worker; /* process-local; one per process */

/* Attach as the worker the supervisor started: reads WARREN_WORKER,
 * WARREN_REPLICA, WARREN_IN, WARREN_OUT, then wr_arena_attach_env() (the
 * arena, this slot and incarnation, PR_SET_PDEATHSIG). *out is owned by the
 * caller until wr_worker_detach(). Does not block. Errors: -WR_ENOENV (not
 * started by warren), -WR_EINVAL (malformed environment), those of
 * wr_arena_attach_env. */
WR_EXTERN int wr_worker_attach(wr_worker **out);
/* The arena handle (owned by w, valid until wr_worker_detach). */
WR_EXTERN wr_arena *wr_worker_arena(const wr_worker *w);
/* This worker's configured name and replica index (0..replicas-1). */
WR_EXTERN const char *wr_worker_name(const wr_worker *w);
WR_EXTERN uint32_t wr_worker_replica(const wr_worker *w);
/* Number of configured inputs / outputs ("in" / "out" in the config). */
WR_EXTERN uint32_t wr_worker_nin(const wr_worker *w);
WR_EXTERN uint32_t wr_worker_nout(const wr_worker *w);
/* The i-th input (consumer side) / output (producer side) channel as
 * configured, or the one of that name, opened with wr_chan_open at this
 * replica's lane index on first use. *out is owned by w (the same handle on
 * every call) and valid until wr_worker_detach. Errors: -WR_EINVAL (i out
 * of range), -WR_ENOENT (no input/output of that name), those of
 * wr_chan_open. Does not block. */
WR_EXTERN int wr_worker_in(wr_worker *w, uint32_t i, wr_chan **out);
WR_EXTERN int wr_worker_out(wr_worker *w, uint32_t i, wr_chan **out);
WR_EXTERN int wr_worker_in_named(wr_worker *w, const char *name, wr_chan **out);
WR_EXTERN int wr_worker_out_named(wr_worker *w, const char *name, wr_chan **out);
/* Tell the supervisor this worker is ready (it then starts the workers that
 * depend on it). Idempotent; one datagram, does not block. Errors:
 * -WR_ENOENV (WARREN_NOTIFY unset), -errno from sendto. */
WR_EXTERN int wr_worker_ready(wr_worker *w);
/* Tell the supervisor's watchdog (`watchdog_s`) that this worker is alive:
 * call it at least every watchdog_s during a long computation, or a wait
 * outside libwarren (a socket, a sleep), that neither sends nor receives
 * (channel operations and libwarren's waits beat by themselves: a worker
 * blocked on an empty channel or a semaphore is idle, not stuck). A relaxed store to
 * this worker's slot: no syscall, does not block, cannot fail,
 * async-signal-safe. */
WR_EXTERN void wr_worker_alive(wr_worker *w);
/* Detach the channels and the arena, free w. Blocks this worker still owns
 * stay owned until the supervisor reclaims its slot. NULL is accepted. */
WR_EXTERN void wr_worker_detach(wr_worker *w);

/* -------------------------------------------------------- fault injection */

/* Names of the crash points compiled into this build (NULL-terminated), or a
 * list holding only NULL when crash points are compiled out. A process whose
 * environment has WARREN_CRASH_AT=name[:n] SIGKILLs itself the n-th time (1st
 * by default) it passes that point; WARREN_CRASH_AT=name[:n]:exit uses
 * _exit(86) instead. */
WR_EXTERN const char *const *wr_crash_points(void);
/* Re-read WARREN_CRASH_AT (tests set it in a forked child). */
WR_EXTERN void wr_crash_rearm(void);

#ifdef __cplusplus
}
#endif
#endif /* WARREN_H */
