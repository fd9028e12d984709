/*
 * fuzz_arena.c: libFuzzer harness for attaching a corrupted arena, as the
 * supervisor meets one after a worker scribbled over it.
 *
 * A template arena is built once: a channel with blocks and records in
 * flight, a bound name, and two worker slots that died mid-work (slot 1 a
 * producer holding blocks and semaphore permits, slot 2 a consumer with a
 * record peeked, a mutex locked and an MVar taken). Each
 * input is a list of patches, [region:1][offset:3][len:1][bytes], applied
 * to a fresh copy of the template (regions: header, slots, directory, lane
 * table, page map, heap, anywhere). Whatever attaches then goes through
 * everything the supervisor does: wr_heap_check, wr_chan_check, stats,
 * the reclaim of both dead slots (channels, sync objects, heap),
 * close_side, the checks again. None of it
 * may crash, hang or touch memory outside the mapping (ASan, UBSan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ARENA (2u << 20)

static uint8_t *tmpl;    /* the template's bytes */
static int scratch_fd;   /* a memfd the size of the arena */
static uint8_t *scratch; /* its mapping, where patches land */
static uint32_t inc1, inc2;
static uint64_t region[7][2]; /* offset, length */
static wr_arena *a, *w1, *w2;  /* the template's handles, kept for the run */
static wr_chan *p, *c;
static wr_sem *sem;
static wr_mutex *mtx;
static wr_mvar *mv;

static void die(const char *what) {
  (void)!write(2, what, strlen(what));
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  wr_arena_opts o = {.size = ARENA};
  if (wr_arena_create(&o, &a)) die("create\n");
  wr_chan_opts co = {.capacity = 8, .slot_size = 64, .producers = 1, .consumers = 2};
  if (wr_chan_create(a, "f", &co)) die("chan\n");
  void *root;
  if (wr_alloc(a, 300, &root) || wr_name_bind(a, "root", WR_KIND_BLOCK, wr_off(a, root)))
    die("bind\n");
  if (wr_arena_attach_fd(wr_arena_fd(a), &w1) || wr_slot_prepare(a, 1, &inc1) ||
      wr_slot_enter(w1, 1, inc1))
    die("w1\n");
  if (wr_arena_attach_fd(wr_arena_fd(a), &w2) || wr_slot_prepare(a, 2, &inc2) ||
      wr_slot_enter(w2, 2, inc2))
    die("w2\n");
  if (wr_chan_open(w1, "f", WR_PRODUCER, 0, &p) || wr_chan_open(w2, "f", WR_CONSUMER, 0, &c))
    die("open\n");
  for (int i = 0; i < 6; i++) {
    void *b, *keep;
    if (wr_alloc(w1, 100 + 900 * (size_t)i, &b) || wr_alloc(w1, 70000, &keep)) die("alloc\n");
    memset(b, i, 100);
    if (wr_chan_send_block(p, b, 100, 0) || wr_chan_send(p, "inline", 6, 0)) die("send\n");
  }
  wr_rec r;
  if (wr_chan_peek(c, &r, 0)) die("peek\n");
  /* sync objects the dead workers hold: permits, a lock, an MVar taken */
  char v[32] = "value";
  if (wr_sem_create(a, "sem", 4) || wr_mutex_create(a, "mtx") ||
      wr_mvar_create(a, "mv", sizeof v, v, sizeof v))
    die("sync\n");
  if (wr_sem_open(w1, "sem", &sem) || wr_sem_acquire(sem, 3, 0) ||
      wr_mutex_open(w2, "mtx", &mtx) || wr_mutex_lock(mtx, 0) ||
      wr_mvar_open(w2, "mv", &mv) || wr_mvar_take(mv, v, sizeof v, 0) != sizeof v)
    die("hold\n");
  /* w1 and w2 are never detached: their slots stay LIVE in the copy, as
   * workers that were SIGKILLed; the harness marks them dead. */
  tmpl = malloc(ARENA);
  memcpy(tmpl, a->base, ARENA);
  uint64_t used_heap = (uint64_t)a->hdr->pages_hwm * WR__PAGE_SIZE;
  struct wr__header *h = a->hdr;
  uint64_t r0[7][2] = {{0, WR__OSPAGE},
                       {h->slots_off, h->dir_off - h->slots_off},
                       {h->dir_off, h->lanes_off - h->dir_off},
                       {h->lanes_off, h->spans_off - h->lanes_off},
                       {h->spans_off, (uint64_t)h->npages * sizeof(struct wr__span)},
                       {h->heap_off, used_heap ? used_heap : WR__PAGE_SIZE},
                       {0, ARENA}};
  memcpy(region, r0, sizeof region);
  scratch_fd = memfd_create("fuzz-arena", MFD_CLOEXEC);
  if (scratch_fd < 0 || ftruncate(scratch_fd, ARENA)) die("memfd\n");
  scratch = mmap(NULL, ARENA, PROT_READ | PROT_WRITE, MAP_SHARED, scratch_fd, 0);
  if (scratch == MAP_FAILED) die("mmap\n");
  return 0;
}

static void supervise(wr_arena *x) {
  char why[256];
  wr_heap_usage u;
  wr_heap_stats hs;
  wr_lane_stats ls[4];
  wr_reclaim_report rep;
  uint64_t red;
  wr_heap_check(x, &u, why, sizeof why);
  wr_chan_check(x, why, sizeof why);
  wr_heap_stats_get(x, &hs);
  wr_chan_stats(x, "f", ls, 4);
  wr_name_lookup(x, "root", NULL, NULL);
  uint32_t inc[3] = {0, inc1, inc2};
  for (uint32_t s = 1; s <= 2; s++) {
    wr_slot_mark_dead(x, s, inc[s]);
    wr_chan_reclaim(x, s, inc[s], &red);
    wr_sync_reclaim(x, s, inc[s], &red);
    wr_heap_reclaim(x, s, inc[s], &rep);
    wr_slot_release(x, s, inc[s]);
  }
  wr_chan_close_side(x, "f", WR_PRODUCER, 0);
  wr_heap_check(x, &u, why, sizeof why);
  wr_chan_check(x, why, sizeof why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  memcpy(scratch, tmpl, ARENA);
  while (size >= 5) {
    uint32_t reg = data[0] % 7;
    uint64_t off = ((uint64_t)data[1] | (uint64_t)data[2] << 8 | (uint64_t)data[3] << 16);
    size_t len = data[4];
    data += 5, size -= 5;
    if (len > size) len = size;
    off = region[reg][0] + off % region[reg][1];
    if (off + len > ARENA) len = ARENA - off;
    memcpy(scratch + off, data, len);
    data += len, size -= len;
  }
  wr_arena *x;
  if (wr_arena_attach_fd(scratch_fd, &x) == 0) {
    supervise(x);
    wr_arena_detach(x);
  }
  return 0;
}
