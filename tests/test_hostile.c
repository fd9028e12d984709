/*
 * test_hostile.c: workers that scribble over the arena. The supervisor's
 * side of the library (reclaim, checkers, stats, the locks it takes) must
 * survive whatever a worker wrote: never crash, never hang, and report the
 * corruption through wr_heap_check / wr_chan_check.
 *
 * - A scribbled span descriptor (npages, nblocks, class) is skipped by
 *   reclaim instead of trusted (found by tests/fuzz/fuzz_arena.c).
 * - A directory entry moved off a channel descriptor's or a semaphore's
 *   alignment is refused (fuzzer, UBSan).
 * - A scribbled page or directory lock does not hang the supervisor: its
 *   wait is bounded, the lock is rebuilt (found by the fuzzer too).
 * - The hostile worker: a real process does honest work, then writes
 *   random bytes over its own slot, the lanes, the page map, tag arrays,
 *   the lock words and the directory, and is SIGKILLed; the parent reclaims
 *   it as the supervisor does and runs every checker, round after round.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"
#include "scribble.h"

#include <sys/mman.h>

/* Allocates small and large blocks, then exits holding them. */
static int hoarder(wr_arena *a, void *arg) {
  (void)arg;
  void *p;
  for (int i = 0; i < 50; i++)
    if (wr_alloc(a, 16 + 97 * (size_t)i, &p)) return 1;
  if (wr_alloc(a, 300000, &p)) return 2;
  return 0;
}

static void test_scribbled_span_descriptor(void **state) {
  (void)state;
  static const struct {
    uint32_t npages, nblocks, cls;
  } bad[] = {{0, 0xffffffffu, 0}, {0xffffffffu, 0, 0}, {0, 0, 999}, {7, 0, 0}};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    wr_arena *a = make(8 << 20);
    uint32_t inc;
    pid_t pid = worker_fork(a, 1, &inc, NULL, hoarder, NULL);
    assert_int_equal(worker_wait(pid), 0);
    for (uint32_t p = 0; p < a->npages; p++) { /* every span head the worker owns */
      struct wr__span *s = &a->spans[p];
      uint32_t st = atomic_load(&s->state);
      if ((st != WR__SPAN_SMALL && st != WR__SPAN_LARGE) ||
          atomic_load(&s->owner) != wr__tag_worker(1, inc))
        continue;
      if (bad[k].npages) s->npages = bad[k].npages;
      if (bad[k].nblocks) s->nblocks = bad[k].nblocks;
      if (bad[k].cls) s->cls = (uint16_t)bad[k].cls;
    }
    char why[256];
    assert_int_equal(wr_heap_check(a, NULL, why, sizeof why), -WR_ECORRUPT);
    wr_reclaim_report r;
    assert_int_equal(wr_slot_mark_dead(a, 1, inc), 0);
    assert_int_equal(wr_heap_reclaim(a, 1, inc, &r), 0); /* skips what it cannot trust */
    assert_int_equal(wr_slot_release(a, 1, inc), 0);
    wr_heap_check(a, NULL, why, sizeof why);
    wr_arena_detach(a);
  }
}

static void test_scribbled_locks(void **state) {
  (void)state;
  for (int k = 0; k < 4; k++) {
    wr_arena *a = make(4 << 20);
    pthread_mutex_t *locks[2] = {&a->hdr->page_lock.m, &a->hdr->dir_lock.m};
    for (int i = 0; i < 2; i++) {
      if (k == 0) /* held by us, as far as the word says: a self-deadlock */
        *(uint32_t *)(void *)locks[i] = (uint32_t)getpid();
      else if (k == 1) /* held by a process that is not ours and never lets go */
        *(uint32_t *)(void *)locks[i] = 1;
      else if (k == 2)
        memset(locks[i], 0xa5, sizeof *locks[i]);
      else /* priority-protected with a bad ceiling: glibc asserts in the lock (fuzzer) */
        locks[i]->__data.__kind = 0x40 | 0x80 | 0x10, locks[i]->__data.__lock = 0x7f000000;
    }
    char why[256];
    wr_heap_check(a, NULL, why, sizeof why); /* returns: the wait is bounded */
    void *p;
    assert_int_equal(wr_alloc(a, 100000, &p), 0); /* the page lock works again */
    assert_int_equal(wr_name_bind(a, "after", WR_KIND_BLOCK, wr_off(a, p)), 0);
    assert_int_equal(wr_name_unbind(a, "after"), 0);
    assert_int_equal(wr_heap_check(a, NULL, why, sizeof why), 0);
    wr_arena_detach(a);
  }
}

/* A directory entry whose offset was moved off the channel descriptor's
 * alignment (found by the fuzzer: UBSan, misaligned access). */
static void test_scribbled_chan_entry(void **state) {
  (void)state;
  wr_arena *a = make(4 << 20);
  wr_chan_opts o = {.capacity = 8, .slot_size = 32};
  assert_int_equal(wr_chan_create(a, "m", &o), 0);
  uint32_t e = 0;
  while (e < WR__DIR_ENTRIES && strcmp(a->dir[e].name, "m")) e++;
  assert_true(e < WR__DIR_ENTRIES);
  uint64_t off = a->dir[e].off;
  wr_lane_stats ls[1];
  char why[256];
  for (uint64_t d = 1; d < 16; d += 7) {
    a->dir[e].off = off + d;
    assert_int_equal(wr_chan_stats(a, "m", ls, 1), -WR_ECORRUPT);
    assert_int_not_equal(wr_chan_check(a, why, sizeof why), 0);
  }
  a->dir[e].off = off;
  assert_int_equal(wr_chan_check(a, why, sizeof why), 0);
  wr_arena_detach(a);
}

/* The same for a synchronisation object (fuzzer: UBSan, sync.c). */
static void test_scribbled_sync_entry(void **state) {
  (void)state;
  wr_arena *a = make(4 << 20);
  assert_int_equal(wr_sem_create(a, "s", 3), 0);
  uint32_t e = 0;
  while (e < WR__DIR_ENTRIES && strcmp(a->dir[e].name, "s")) e++;
  assert_true(e < WR__DIR_ENTRIES);
  uint64_t off = a->dir[e].off;
  wr_sem *s;
  uint64_t permits;
  for (uint64_t d = 2; d < 16; d += 5) {
    a->dir[e].off = off + d;
    assert_int_equal(wr_sem_open(a, "s", &s), -WR_ECORRUPT);
    assert_int_equal(wr_sync_reclaim(a, 1, 1, &permits), 0);
  }
  a->dir[e].off = off;
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_value(s), 3);
  wr_sem_close(s);
  wr_arena_detach(a);
}

/* ---------------------------------------------------------------- hostile */

struct hctl {
  _Atomic int scribbled;
  uint64_t seed;
};

static void scribble(uint8_t *p, size_t len, uint64_t *rng) {
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)rng_next(rng);
}

/* Honest work first (blocks in flight, a name, a peeked record), then
 * random bytes over the shared metadata; then it waits to be killed. */
static int hostile(wr_arena *a, void *arg) {
  struct hctl *h = arg;
  uint64_t rng = h->seed;
  wr_chan *p, *c;
  if (wr_chan_open(a, "h", WR_PRODUCER, 0, &p) || wr_chan_open(a, "h", WR_CONSUMER, 0, &c))
    return 1;
  for (int i = 0; i < 5; i++) {
    void *b;
    if (wr_alloc(a, 64 + 5000 * (size_t)i, &b) || wr_chan_send_block(p, b, 64, 0) ||
        wr_chan_send(p, "x", 1, 0))
      return 2;
  }
  wr_rec rec;
  if (wr_chan_peek(c, &rec, 0)) return 3;
  void *root;
  if (wr_alloc(a, 200, &root) || wr_name_bind(a, "hroot", WR_KIND_BLOCK, wr_off(a, root)))
    return 4;
  int n = 1 + (int)(rng_next(&rng) % 8);
  for (int i = 0; i < n; i++) {
    uint64_t r = rng_next(&rng);
    size_t len = 1 + (r >> 8) % 16;
    size_t room;
    uint8_t *t = scribble_target(a, r, 8, &room);
    if (!t) continue;
    size_t at = (size_t)((r >> 24) % room);
    scribble(t + at, len < room - at ? len : room - at, &rng);
  }
  atomic_store(&h->scribbled, 1);
  for (;;) pause();
}

static void test_hostile_worker(void **state) {
  (void)state;
  struct hctl *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(h != MAP_FAILED);
  int rounds = 60, detected = 0;
  for (int round = 0; round < rounds; round++) {
    wr_arena *a = make(4 << 20);
    wr_chan_opts o = {.capacity = 16, .slot_size = 32};
    assert_int_equal(wr_chan_create(a, "h", &o), 0);
    h->scribbled = 0;
    h->seed = 0x9e3779b97f4a7c15ull * (uint64_t)(round + 1);
    uint32_t inc;
    pid_t pid = worker_fork(a, 1, &inc, NULL, hostile, h);
    while (!atomic_load(&h->scribbled) && waitpid(pid, NULL, WNOHANG) == 0) usleep(200);
    if (pid > 1) kill(pid, SIGKILL);
    worker_wait(pid);
    /* The supervisor's part: none of it may crash or hang. */
    char why[256];
    wr_reclaim_report rep;
    uint64_t red;
    wr_lane_stats ls[4];
    wr_slot_mark_dead(a, 1, inc);
    wr_chan_reclaim(a, 1, inc, &red);
    wr_heap_reclaim(a, 1, inc, &rep);
    wr_slot_release(a, 1, inc);
    wr_chan_stats(a, "h", ls, 4);
    wr_name_unbind(a, "hroot");
    int bad = wr_heap_check(a, NULL, why, sizeof why) != 0;
    bad |= wr_chan_check(a, why, sizeof why) != 0;
    detected += bad;
    wr_arena_detach(a);
  }
  printf("hostile worker: %d rounds, corruption detected in %d\n", rounds, detected);
  assert_true(detected > 0);
  munmap(h, sizeof *h);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scribbled_span_descriptor),
      cmocka_unit_test(test_scribbled_locks),
      cmocka_unit_test(test_scribbled_chan_entry),
      cmocka_unit_test(test_scribbled_sync_entry),
      cmocka_unit_test(test_hostile_worker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
