/*
 * test_heap_crash.c: kill workers inside the heap and the directory, then
 * prove that reclaim leaves nothing behind.
 *
 * - The crash matrix arms every heap.* and name.* crash point in turn
 *   (WARREN_CRASH_AT) in a worker whose workload passes through all of them,
 *   while a survivor worker keeps allocating, freeing and verifying its own
 *   data. After each SIGKILL the parent reclaims, runs wr_heap_check, and
 *   asserts that the dead worker owns 0 bytes and that the heap holds
 *   exactly the survivor's bytes. It prints a table.
 * - The random kill test SIGKILLs workers doing random heap work at random
 *   moments, many times, with the same checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "crash_row.h"
#include "helpers.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- survivor */

struct ctl {
  _Atomic int stop, pause_req, paused;
  _Atomic long ops, started;
};

static void stamp(void *p, size_t n, uint64_t off) {
  uint64_t *w = p;
  for (size_t i = 0; i < n / 8; i++) w[i] = off ^ (i * 0x9e3779b97f4a7c15ull);
}
static int stamped(const void *p, size_t n, uint64_t off) {
  const uint64_t *w = p;
  for (size_t i = 0; i < n / 8; i++)
    if (w[i] != (off ^ (i * 0x9e3779b97f4a7c15ull))) return 0;
  return 1;
}

/* Allocates, verifies and frees its own blocks until told to stop; parks
 * when asked so that the parent can count bytes exactly. */
static int survivor_main(wr_arena *a, void *argp) {
  struct ctl *c = argp;
  uint64_t rng = 99;
  void *held[400] = {0};
  size_t len[400];
  while (!atomic_load(&c->stop)) {
    if (atomic_load(&c->pause_req)) {
      wr_heap_flush(a);
      atomic_store(&c->paused, 1);
      while (atomic_load(&c->pause_req) && !atomic_load(&c->stop)) usleep(50);
      atomic_store(&c->paused, 0);
      continue;
    }
    int i = (int)(rng_next(&rng) % 400);
    if (held[i]) {
      if (!stamped(held[i], len[i], wr_off(a, held[i]))) return 10;
      if (wr_free(a, held[i])) return 11;
      held[i] = NULL;
    } else {
      len[i] = rng_size(&rng);
      if (wr_alloc(a, len[i], &held[i])) return 12;
      stamp(held[i], len[i], wr_off(a, held[i]));
    }
    atomic_fetch_add(&c->ops, 1);
  }
  for (int i = 0; i < 400; i++)
    if (held[i] && (!stamped(held[i], len[i], wr_off(a, held[i])) || wr_free(a, held[i])))
      return 13;
  return 0;
}

static void survivor_pause(struct ctl *c) {
  atomic_store(&c->pause_req, 1);
  while (!atomic_load(&c->paused)) usleep(50);
}
static void survivor_resume(struct ctl *c) {
  atomic_store(&c->pause_req, 0);
  while (atomic_load(&c->paused)) usleep(50);
}

/* The survivor in slot 1, and its ctl block (the heap's only other bytes). */
struct survivor {
  struct ctl *c;
  uint64_t own; /* bytes of c */
  wr_tag tag;
  pid_t pid;
  uint32_t inc;
};

static void survivor_start(wr_arena *a, struct survivor *s) {
  assert_int_equal(wr_calloc(a, 1, sizeof *s->c, (void **)&s->c), 0);
  s->own = wr_block_size(a, s->c);
  s->pid = worker_fork(a, 1, &s->inc, NULL, survivor_main, s->c);
  s->tag = wr__tag_worker(1, s->inc);
}

/* Stop it (it verifies its data on the way out: exit 0), reclaim its slot,
 * free c: the heap is then empty. */
static void survivor_stop(wr_arena *a, struct survivor *s) {
  atomic_store(&s->c->stop, 1);
  worker_join(a, s->pid, 1, s->inc);
  assert_int_equal(wr_free(a, s->c), 0);
  heap_empty(a);
}

/* ---------------------------------------------------------------- workload */

struct tjob {
  wr_arena *a;
  void **blocks;
  int n;
  size_t size;
  int op; /* 0 = allocate n blocks and exit (spans orphaned); 1 = free them */
};

static void *tjob_main(void *p) {
  struct tjob *j = p;
  for (int i = 0; i < j->n; i++) {
    if (j->op == 0 && wr_alloc(j->a, j->size, &j->blocks[i])) return (void *)1;
    if (j->op == 1 && wr_free(j->a, j->blocks[i])) return (void *)2;
  }
  return NULL;
}

static int run_thread(struct tjob *j) {
  pthread_t t;
  void *r;
  pthread_create(&t, NULL, tjob_main, j);
  pthread_join(t, &r);
  return r != NULL;
}

/* Passes through every heap.* and name.* crash point at least once. */
static int workload_main(wr_arena *a, void *argp) {
  static void *b[1000];
  void *p, *big, *tmp;
  /* small allocs and local frees */
  for (int i = 0; i < 100; i++)
    if (wr_alloc(a, 32, &b[i])) return 1;
  for (int i = 0; i < 50; i++)
    if (wr_free(a, b[i])) return 2;
  /* large blocks: multi-page spans */
  if (wr_alloc(a, 200000, &big) || wr_alloc(a, 300000, &tmp) || wr_free(a, tmp)) return 3;
  /* realloc moves a block */
  if (wr_alloc(a, 100, &p) || wr_realloc(a, &p, 5000)) return 4;
  /* names: the first hand-over of a fresh span, bind, unbind */
  if (wr_alloc(a, 200, &p)) return 5;
  strcpy(p, "root");
  if (wr_name_bind(a, "crash.root", WR_KIND_BLOCK, wr_off(a, p))) return 6;
  if (wr_alloc(a, 200, &p) || wr_name_bind(a, "crash.tmp", WR_KIND_BLOCK, wr_off(a, p)) ||
      wr_name_unbind(a, "crash.tmp"))
    return 7;
  /* a thread allocates and exits: its span becomes an orphan holding our
   * blocks; our frees of them are remote; then we adopt the orphan */
  struct tjob j = {a, b, 200, 48, 0};
  if (run_thread(&j)) return 8;
  for (int i = 0; i < 200; i++)
    if (wr_free(a, b[i])) return 9;
  for (int i = 0; i < 300; i++)
    if (wr_alloc(a, 48, &b[i])) return 10;
  /* another thread frees our blocks: PENDING, collected on refill */
  for (int i = 0; i < 300; i++)
    if (wr_alloc(a, 80, &b[i])) return 11;
  struct tjob f = {a, b, 300, 80, 1};
  if (run_thread(&f)) return 12;
  for (int i = 0; i < 900; i++)
    if (wr_alloc(a, 80, &b[i])) return 13;
  return 0; /* exit holding blocks: reclaim frees them */
}

/* After the dead worker was reclaimed: settle the directory and check that
 * the heap holds exactly `expect_bytes` + the survivor's. */
static uint64_t settle_and_check(wr_arena *a, uint32_t slot, uint32_t inc,
                                 const struct survivor *sv) {
  struct ctl *c = sv->c;
  int rc = wr_name_unbind(a, "crash.root");
  assert_true(rc == 0 || rc == -WR_ENOENT);
  rc = wr_name_unbind(a, "crash.tmp");
  assert_true(rc == 0 || rc == -WR_ENOENT);
  survivor_pause(c);
  wr_heap_usage u;
  heap_ok(a, &u);
  uint64_t dead = wr_heap_bytes_owned(a, wr__tag_worker(slot, inc));
  uint64_t surv = wr_heap_bytes_owned(a, sv->tag);
  survivor_resume(c);
  assert_int_equal(dead, 0);
  return u.bytes - surv - sv->own; /* the caller prints its row, then asserts 0 */
}

/* A reclaimer killed at its n-th span (holding the page lock): the next
 * reclaim takes the robust lock over and finishes the job. */
static int reclaim_killed(wr_arena *a, uint32_t slot, uint32_t inc, int nth) {
  assert_int_equal(wr_slot_mark_dead(a, slot, inc), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char spec[64];
    snprintf(spec, sizeof spec, "heap.reclaim.mid:%d", nth);
    setenv("WARREN_CRASH_AT", spec, 1);
    wr_crash_rearm();
    wr_reclaim_report r;
    wr_heap_reclaim(a, slot, inc, &r);
    _exit(0);
  }
  int st = worker_wait(pid);
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static void test_crash_matrix(void **state) {
  const char *const *pts = wr_crash_points();
  if (!pts[0]) skip();
  wr_arena *a = make(128 << 20);
  struct survivor sv;
  survivor_start(a, &sv);
  struct ctl *c = sv.c;
  int points = 0, kills = 0;
  crash_points_list();
  for (int i = 0; pts[i]; i++) {
    if (strncmp(pts[i], "heap.", 5) && strncmp(pts[i], "name.", 5)) continue;
    if (!strcmp(pts[i], "heap.reclaim.mid")) continue; /* the reclaimer's: below */
    points++;
    int row_kills = 0;
    uint64_t leaked = 0;
    for (int nth = 1; nth <= 3; nth += 2) {
      char spec[96];
      snprintf(spec, sizeof spec, "%s:%d", pts[i], nth);
      uint32_t inc;
      pid_t pid = worker_fork(a, 2, &inc, spec, workload_main, NULL);
      int st = worker_wait(pid);
      if (nth == 1 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
        fail_msg("crash point %s was not reached (status 0x%x)", pts[i], st);
      if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        fail_msg("workload failed at step %d under %s", WEXITSTATUS(st), spec);
      row_kills += WIFSIGNALED(st);
      worker_reclaim(a, 2, inc, NULL);
      leaked += settle_and_check(a, 2, inc, &sv);
    }
    kills += row_kills;
    crash_row(pts[i], row_kills, leaked, 0, 0);
    assert_int_equal(leaked, 0);
  }
  /* The reclaimer itself killed mid-scan, after the workload exited holding
   * blocks in spans of every kind. */
  int row_kills = 0;
  uint64_t leaked = 0;
  for (int nth = 1; nth <= 5; nth += 2) {
    uint32_t inc;
    pid_t pid = worker_fork(a, 2, &inc, NULL, workload_main, NULL);
    int st = worker_wait(pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("workload failed: 0x%x", st);
    row_kills += reclaim_killed(a, 2, inc, nth);
    worker_reclaim(a, 2, inc, NULL);
    leaked += settle_and_check(a, 2, inc, &sv);
  }
  crash_row("heap.reclaim.mid", row_kills, leaked, 0, 0);
  assert_int_equal(row_kills, 3);
  assert_int_equal(leaked, 0);
  points++;
  kills += row_kills;
  printf("%d crash points, %d kills, 0 bytes leaked\n", points, kills);
  assert_true(points >= 16);
  assert_true(atomic_load(&c->ops) > 0);
  survivor_stop(a, &sv);
  wr_arena_detach(a);
}

/* ---------------------------------------------------------------- random kills */

static int random_main(wr_arena *a, void *argp) {
  struct ctl *c = argp;
  uint64_t rng = (uint64_t)getpid() * 2654435761u;
  void *held[256] = {0};
  char names[16][WR_NAME_MAX] = {{0}};
  atomic_fetch_add(&c->started, 1);
  for (;;) {
    uint64_t r = rng_next(&rng);
    int i = (int)(r % 256);
    switch ((r >> 8) % 10) {
    case 0: case 1: case 2: case 3:
      if (!held[i] && wr_alloc(a, rng_size(&rng), &held[i])) held[i] = NULL;
      break;
    case 4: case 5: case 6:
      if (held[i] && wr_free(a, held[i])) return 1;
      held[i] = NULL;
      break;
    case 7:
      if (held[i] && wr_realloc(a, &held[i], rng_size(&rng)) == -WR_ENOTOWNER) return 2;
      break;
    case 8: {
      int k = (int)((r >> 16) % 16);
      if (held[i] && !names[k][0] && wr_name_unique(a, "rk", names[k], WR_NAME_MAX) == 0) {
        if (wr_name_bind(a, names[k], WR_KIND_BLOCK, wr_off(a, held[i])) == 0)
          held[i] = NULL;
        else
          names[k][0] = 0;
      }
      break;
    }
    default: {
      int k = (int)((r >> 16) % 16);
      if (names[k][0] && wr_name_unbind(a, names[k])) return 3;
      names[k][0] = 0;
    }
    }
  }
}

static void test_random_kills(void **state) {
  wr_arena *a = make(256 << 20);
  struct survivor sv;
  survivor_start(a, &sv);
  struct ctl *c = sv.c;
  uint64_t rng = 12345;
  int rounds = 40;
  for (int round = 0; round < rounds; round++) {
    long start = atomic_load(&c->started);
    uint32_t inc;
    pid_t pid = worker_fork(a, 2, &inc, NULL, random_main, c);
    while (atomic_load(&c->started) == start) usleep(100);
    long us = 1000 + (long)(rng_next(&rng) % 20000);
    for (long t = 0; t < us; t += 100) {
      if (atomic_load(&a->slots[2].state) != WR_SLOT_LIVE)
        fail_msg("round %d: slot 2 state %u at %ld us (pid %d alive %d)", round,
                 atomic_load(&a->slots[2].state), t, pid, kill(pid, 0) == 0);
      usleep(100);
    }
    wr_slot_info si;
    wr_slot_info_get(a, 2, &si);
    if (si.state != WR_SLOT_LIVE) fail_msg("round %d: slot 2 state %u before kill", round, si.state);
    if (pid > 1) kill(pid, SIGKILL);
    int st = worker_wait(pid);
    if (!WIFSIGNALED(st)) fail_msg("random worker exited by itself: 0x%x", st);
    worker_reclaim(a, 2, inc, NULL);
    /* Names the dead worker bound are roots: they stay until unbound. */
    for (uint32_t e = 0; e < WR__DIR_ENTRIES; e++)
      if (atomic_load(&a->dir[e].state) != WR__DIR_FREE && !strncmp(a->dir[e].name, "rk.", 3)) {
        char nm[WR_NAME_MAX];
        memcpy(nm, a->dir[e].name, sizeof nm);
        int rc = wr_name_unbind(a, nm);
        assert_true(rc == 0 || rc == -WR_ENOENT);
      }
    assert_int_equal(settle_and_check(a, 2, inc, &sv), 0);
  }
  survivor_stop(a, &sv);
  wr_heap_stats hs;
  wr_heap_stats_get(a, &hs);
  printf("random kills: %d rounds, %llu blocks reclaimed, 0 bytes leaked\n", rounds,
         (unsigned long long)hs.reclaimed_blocks);
  wr_arena_detach(a);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crash_matrix),
      cmocka_unit_test(test_random_kills),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
