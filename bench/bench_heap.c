/*
 * bench_heap.c: the heap benchmark. Every figure is a ratio against a
 * baseline measured in the same run on the same machine:
 *
 *   P4   alloc+free pair in one process        vs glibc malloc   (goal <= 2x)
 *   P4b  2 processes allocating/freeing        vs a single-mutex shared heap
 *                                                                  (goal >= 10x faster)
 *   P4c  remote free (alloc in A, free in B)   vs local free     (goal <= 5x)
 *   P5b  reclaim of a dead worker holding a full heap of small blocks
 *                                              (goal <= 10 ms per GiB)
 *
 * Each timing is the best of several runs (the machine is shared and
 * noisy). --quick shrinks the sizes for the demo and CI smoke runs.
 */
#include "baseline_mutex_heap.h"
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int quick;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_heap: %s: %s\n", what, wr_strerror(rc));
  exit(1);
}

static wr_arena *make(uint64_t size) {
  wr_arena_opts o = {.size = size};
  wr_arena *a;
  int rc = wr_arena_create(&o, &a);
  if (rc) die("arena", rc);
  return a;
}

/* Keeps the compiler from pairing and deleting malloc/free. */
static void *volatile sink;

#define BATCH 512
static const size_t sizes[8] = {16, 24, 40, 64, 100, 128, 200, 256};

/* ---------------------------------------------------------------- P4 */

static double pairs_warren(wr_arena *a, long n) {
  void *p;
  double t = now_ns();
  for (long i = 0; i < n; i++) {
    wr_alloc(a, 64, &p);
    sink = p;
    wr_free(a, p);
  }
  return (now_ns() - t) / (double)n;
}

static double pairs_glibc(long n) {
  double t = now_ns();
  for (long i = 0; i < n; i++) {
    void *p = malloc(64);
    sink = p;
    free(p);
  }
  return (now_ns() - t) / (double)n;
}

/* Allocate a batch of mixed sizes, free it: per operation (alloc or free). */
static double batch_warren(wr_arena *a, long rounds) {
  static void *b[BATCH];
  double t = now_ns();
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < BATCH; i++) wr_alloc(a, sizes[i & 7], &b[i]);
    for (int i = 0; i < BATCH; i++) wr_free(a, b[i]);
  }
  return (now_ns() - t) / (double)(rounds * BATCH * 2);
}

static double batch_glibc(long rounds) {
  static void *b[BATCH];
  double t = now_ns();
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < BATCH; i++) b[i] = malloc(sizes[i & 7]);
    sink = b[rounds & (BATCH - 1)];
    for (int i = 0; i < BATCH; i++) free(b[i]);
  }
  return (now_ns() - t) / (double)(rounds * BATCH * 2);
}

static double batch_mutex(mheap *h, long rounds) {
  static void *b[BATCH];
  double t = now_ns();
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < BATCH; i++) b[i] = mheap_alloc(h, sizes[i & 7]);
    for (int i = 0; i < BATCH; i++) mheap_free(h, b[i]);
  }
  return (now_ns() - t) / (double)(rounds * BATCH * 2);
}

static double best3(double x, double y, double z) {
  double m = x < y ? x : y;
  return m < z ? m : z;
}

static void p4(void) {
  wr_arena *a = make(64 << 20);
  long n = quick ? 2000000 : 20000000, rounds = quick ? 1000 : 10000;
  pairs_warren(a, n / 10);
  pairs_glibc(n / 10);
  double w = best3(pairs_warren(a, n), pairs_warren(a, n), pairs_warren(a, n));
  double g = best3(pairs_glibc(n), pairs_glibc(n), pairs_glibc(n));
  printf("P4   alloc+free pair, 64 B:        warren %6.1f ns  glibc %6.1f ns  ratio %.2fx"
         "  (goal <= 2x)\n", w, g, w / g);
  double wb = best3(batch_warren(a, rounds), batch_warren(a, rounds), batch_warren(a, rounds));
  double gb = best3(batch_glibc(rounds), batch_glibc(rounds), batch_glibc(rounds));
  printf("P4   batch of %d, 16-256 B, per op: warren %6.1f ns  glibc %6.1f ns  ratio %.2fx"
         "  (goal <= 2x)\n", BATCH, wb, gb, wb / gb);
  wr_arena_detach(a);
}

/* ---------------------------------------------------------------- P4b */

/* Two processes run `rounds` batches each at the same time; returns the
 * wall time per operation of the slower one. */
static double p4b_run(int use_mutex, long rounds) {
  size_t msize = 256 << 20;
  void *mem = mmap(NULL, msize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  mheap *h = mheap_init(mem, msize);
  wr_arena *a = make(256 << 20);
  _Atomic int *go = mem == MAP_FAILED ? NULL : (_Atomic int *)((uint8_t *)mem + msize - 64);
  atomic_store(go, 0);
  pid_t pid[2];
  for (int k = 0; k < 2; k++) {
    uint32_t inc;
    wr_slot_prepare(a, 1 + k, &inc);
    pid[k] = fork();
    if (pid[k] == 0) {
      wr_slot_enter(a, 1 + k, inc);
      atomic_fetch_add(go, 1);
      while (atomic_load(go) < 2) {
      }
      if (use_mutex)
        batch_mutex(h, rounds);
      else
        batch_warren(a, rounds);
      _exit(0);
    }
  }
  double t0 = 0;
  while (atomic_load(go) < 2) {
  }
  t0 = now_ns();
  for (int k = 0; k < 2; k++) waitpid(pid[k], NULL, 0);
  double per = (now_ns() - t0) / (double)(rounds * BATCH * 2 * 2);
  wr_arena_detach(a);
  munmap(mem, msize);
  return per;
}

static void p4b(void) {
  long rounds = quick ? 400 : 4000;
  double w = best3(p4b_run(0, rounds), p4b_run(0, rounds), p4b_run(0, rounds));
  double m = best3(p4b_run(1, rounds), p4b_run(1, rounds), p4b_run(1, rounds));
  printf("P4b  2 processes, per op (wall):    warren %6.1f ns  1-mutex %5.1f ns  warren is %.1fx"
         " faster  (goal >= 10x)\n", w, m, m / w);
}

/* ---------------------------------------------------------------- P4c */

/* A allocates n blocks and hands each to B's worker tag (as a channel
 * hand-over does); B frees them: every free is a remote free into spans
 * owned by A's cache. Local: A frees n of its own. */
static void p4c(void) {
  long n = quick ? 200000 : 2000000;
  wr_arena *a = make(512 << 20);
  uint64_t *offs = mmap(NULL, (size_t)n * 8, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double *result = mmap(NULL, 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double best_local = 1e18, best_remote = 1e18;
  for (int rep = 0; rep < 3; rep++) {
    /* local */
    for (long i = 0; i < n; i++) {
      void *p;
      wr_alloc(a, 64, &p);
      offs[i] = wr_off(a, p);
    }
    double t = now_ns();
    for (long i = 0; i < n; i++) wr_free(a, wr_ptr(a, offs[i]));
    double local = (now_ns() - t) / (double)n;
    /* remote */
    uint32_t inc;
    wr_slot_prepare(a, 3, &inc);
    wr_tag btag = wr__tag_worker(3, inc);
    for (long i = 0; i < n; i++) {
      void *p;
      wr_alloc(a, 64, &p);
      offs[i] = wr_off(a, p);
      wr__heap_transfer(a, offs[i], wr_self_tag(a), btag);
    }
    pid_t pid = fork();
    if (pid == 0) {
      wr_slot_enter(a, 3, inc);
      double t1 = now_ns();
      for (long i = 0; i < n; i++) wr_free(a, wr_ptr(a, offs[i]));
      result[0] = (now_ns() - t1) / (double)n;
      _exit(0);
    }
    waitpid(pid, NULL, 0);
    wr_slot_mark_dead(a, 3, inc);
    wr_heap_reclaim(a, 3, inc, NULL);
    wr_slot_release(a, 3, inc);
    /* A collects the pending blocks on its next refills. */
    if (local < best_local) best_local = local;
    if (result[0] < best_remote) best_remote = result[0];
  }
  printf("P4c  free of a 64 B block:         remote %6.1f ns  local %6.1f ns  ratio %.2fx"
         "  (goal <= 5x)\n", best_remote, best_local, best_remote / best_local);
  munmap(offs, (size_t)n * 8);
  wr_arena_detach(a);
}

/* ---------------------------------------------------------------- P5b */

static void p5b(void) {
  uint64_t heap = quick ? (256ull << 20) : (1ull << 30);
  wr_arena *a = make(heap + heap / 64 + (8 << 20));
  double best = 1e18;
  wr_reclaim_report r = {0};
  for (int rep = 0; rep < (quick ? 1 : 3); rep++) {
    uint32_t inc;
    wr_slot_prepare(a, 1, &inc);
    pid_t pid = fork();
    if (pid == 0) {
      wr_slot_enter(a, 1, inc);
      void *p;
      while (wr_alloc(a, 64, &p) == 0) {
      }
      kill(getpid(), SIGKILL);
    }
    waitpid(pid, NULL, 0);
    wr_slot_mark_dead(a, 1, inc);
    double t = now_ns();
    int rc = wr_heap_reclaim(a, 1, inc, &r);
    double ms = (now_ns() - t) / 1e6;
    if (rc) die("reclaim", rc);
    wr_slot_release(a, 1, inc);
    if (ms < best) best = ms;
  }
  double gib = (double)r.bytes / (double)(1ull << 30);
  char why[200];
  wr_heap_usage u;
  int rc = wr_heap_check(a, &u, why, sizeof why);
  printf("P5b  reclaim of a dead worker:      %.0f MiB in %llu blocks of 64 B: %.2f ms"
         " = %.2f ms/GiB  (goal <= 10 ms/GiB); heap check %s, %llu bytes left\n",
         (double)r.bytes / 1048576.0, (unsigned long long)r.blocks, best, best / gib,
         rc ? why : "ok", (unsigned long long)u.bytes);
  wr_arena_detach(a);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: bench_heap [--quick]\n"
             "Heap benchmark: P4, P4b, P4c, P5b, each against a baseline measured in the\n"
             "same run (glibc malloc, a single-mutex shared heap, local free).\n");
      return 0;
    } else {
      fprintf(stderr, "bench_heap: unknown argument '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("warren %s heap benchmark%s (best of 3 runs each; ratios vs same-run baselines)\n",
         wr_version(), quick ? " (quick)" : "");
  p4();
  p4b();
  p4c();
  p5b();
  return 0;
}
