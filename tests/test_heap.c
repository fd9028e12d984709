/*
 * test_heap.c: the shared heap's behaviour: every size class, large blocks,
 * realloc/calloc, out of memory, bad frees, threads, several processes
 * allocating and freeing each other's blocks, and reclaim of dead workers.
 * Crash points are exercised in test_heap_crash.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

#include <pthread.h>
#include <string.h>

static void fill(void *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)(seed + i * 7);
}
static int same(const void *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (((const uint8_t *)p)[i] != (uint8_t)(seed + i * 7)) return 0;
  return 1;
}

static void test_every_size(void **state) {
  wr_arena *a = make(64 << 20);
  enum { N = 600 };
  static void *ptrs[N];
  static size_t sizes[N];
  size_t k = 0;
  for (size_t s = 1; s <= 140000 && k < N; s += (s < 256 ? 1 : s / 9)) {
    sizes[k] = s;
    assert_int_equal(wr_alloc(a, s, &ptrs[k]), 0);
    assert_int_equal((uintptr_t)ptrs[k] % 16, 0);
    assert_true(wr_block_size(a, ptrs[k]) >= s);
    fill(ptrs[k], s, (uint8_t)k);
    k++;
  }
  for (size_t i = 0; i < k; i++) assert_true(same(ptrs[i], sizes[i], (uint8_t)i));
  wr_heap_usage u;
  heap_ok(a, &u);
  assert_int_equal(u.blocks, k);
  assert_int_equal(u.bytes, wr_heap_bytes_owned(a, wr_self_tag(a)));
  for (size_t i = 0; i < k; i++) assert_int_equal(wr_free(a, ptrs[i]), 0);
  heap_empty(a);
  wr_arena_detach(a);
}

static void test_large(void **state) {
  wr_arena *a = make(64 << 20);
  size_t sizes[] = {131073, 200000, 65536 * 3 + 5, 1 << 20, 10 << 20};
  void *p[5];
  for (int i = 0; i < 5; i++) {
    assert_int_equal(wr_alloc(a, sizes[i], &p[i]), 0);
    assert_int_equal((uintptr_t)p[i] % 64, 0);
    fill(p[i], sizes[i], (uint8_t)i);
  }
  for (int i = 0; i < 5; i++) assert_true(same(p[i], sizes[i], (uint8_t)i));
  wr_heap_stats st;
  wr_heap_stats_get(a, &st);
  assert_true(st.pages_in_use >= (10u << 20) / st.page_size);
  for (int i = 0; i < 5; i++) assert_int_equal(wr_free(a, p[i]), 0);
  wr_heap_stats_get(a, &st);
  assert_int_equal(st.pages_in_use, 0);
  assert_true(st.pages_hwm > 0);
  arena_done(a);
}

static void test_realloc_calloc(void **state) {
  wr_arena *a = make(32 << 20);
  void *p = NULL;
  assert_int_equal(wr_realloc(a, &p, 10), 0);
  fill(p, 10, 3);
  size_t steps[] = {10, 100, 3000, 17000, 300000, 40, 5};
  for (size_t i = 1; i < sizeof steps / sizeof *steps; i++) {
    assert_int_equal(wr_realloc(a, &p, steps[i]), 0);
    size_t keep = steps[i] < steps[i - 1] ? steps[i] : steps[i - 1];
    assert_true(same(p, keep < 10 ? keep : 10, 3));
    assert_true(wr_block_size(a, p) >= steps[i]);
  }
  assert_int_equal(wr_realloc(a, &p, 0), -WR_EINVAL);
  assert_int_equal(wr_free(a, p), 0);
  uint64_t *z;
  assert_int_equal(wr_calloc(a, 100, 8, (void **)&z), 0);
  for (int i = 0; i < 100; i++) assert_int_equal(z[i], 0);
  assert_int_equal(wr_free(a, z), 0);
  void *q;
  assert_int_equal(wr_calloc(a, SIZE_MAX / 2, 4, &q), -WR_EINVAL);
  assert_int_equal(wr_alloc(a, 0, &q), -WR_EINVAL);
  arena_done(a);
}

static void test_oom(void **state) {
  wr_arena *a = make(2 << 20); /* a handful of 64 KiB pages */
  static void *ptrs[100000];
  size_t n = 0;
  int rc;
  while ((rc = wr_alloc(a, 1000, &ptrs[n])) == 0) n++;
  assert_int_equal(rc, -WR_ENOMEM);
  assert_true(n > 100);
  void *big;
  assert_int_equal(wr_alloc(a, 1 << 20, &big), -WR_ENOMEM);
  assert_int_equal(wr_alloc(a, (size_t)1 << 40, &big), -WR_ENOMEM);
  heap_ok(a, NULL);
  for (size_t i = 0; i < n; i++) assert_int_equal(wr_free(a, ptrs[i]), 0);
  /* Empty spans went back to the page allocator: a large block fits now. */
  assert_int_equal(wr_alloc(a, 1 << 20, &big), 0);
  assert_int_equal(wr_free(a, big), 0);
  arena_done(a);
}

static void test_bad_frees(void **state) {
  wr_arena *a = make(8 << 20);
  void *p, *l;
  int local;
  assert_int_equal(wr_alloc(a, 64, &p), 0);
  assert_int_equal(wr_alloc(a, 200000, &l), 0);
  assert_int_equal(wr_free(a, (uint8_t *)p + 16), -WR_EINVAL);
  assert_int_equal(wr_free(a, &local), -WR_EINVAL);
  assert_int_equal(wr_free(a, wr_ptr(a, 4096)), -WR_EINVAL); /* header, not heap */
  assert_int_equal(wr_free(a, (uint8_t *)l + 64), -WR_EINVAL);
  assert_int_equal(wr_free(a, p), 0);
  assert_int_equal(wr_free(a, p), -WR_ENOTOWNER); /* double free */
  assert_int_equal(wr_free(a, l), 0);
  assert_int_equal(wr_free(a, l), -WR_EINVAL); /* its pages are free now */
  assert_int_equal(wr_free(a, NULL), 0);
  assert_int_equal(wr_block_size(a, &local), 0);
  arena_done(a);
}

/* ---- threads: each thread allocates; half of the frees go to another
 * thread through a private mailbox, so remote frees and collection run. */
#define THREADS 4
#define BOX 4096
static struct {
  wr_arena *a;
  pthread_mutex_t lock;
  void *box[THREADS][BOX];
  int n[THREADS];
} tt;

static void *thread_main(void *arg) {
  int me = (int)(intptr_t)arg;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (me + 1);
  void *held[256] = {0};
  for (int it = 0; it < 40000; it++) {
    int i = (int)(rng_next(&rng) % 256);
    if (held[i]) {
      if (rng_next(&rng) & 1) {
        pthread_mutex_lock(&tt.lock);
        int to = (me + 1) % THREADS;
        if (tt.n[to] < BOX) {
          tt.box[to][tt.n[to]++] = held[i];
          held[i] = NULL;
        }
        pthread_mutex_unlock(&tt.lock);
      }
      if (held[i]) {
        if (wr_free(tt.a, held[i]) != 0) return (void *)1;
        held[i] = NULL;
      }
    } else if (wr_alloc(tt.a, rng_size(&rng) % 2000 + 1, &held[i]) != 0) {
      return (void *)2;
    }
    pthread_mutex_lock(&tt.lock);
    while (tt.n[me] > 0)
      if (wr_free(tt.a, tt.box[me][--tt.n[me]]) != 0) {
        pthread_mutex_unlock(&tt.lock);
        return (void *)3;
      }
    pthread_mutex_unlock(&tt.lock);
  }
  for (int i = 0; i < 256; i++)
    if (held[i] && wr_free(tt.a, held[i]) != 0) return (void *)4;
  return NULL;
}

static void test_threads(void **state) {
  tt.a = make(64 << 20);
  pthread_mutex_init(&tt.lock, NULL);
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i);
  for (int i = 0; i < THREADS; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  for (int t = 0; t < THREADS; t++)
    while (tt.n[t] > 0) assert_int_equal(wr_free(tt.a, tt.box[t][--tt.n[t]]), 0);
  wr_heap_usage u;
  heap_ok(tt.a, &u);
  assert_int_equal(u.bytes, 0);
  /* Exited threads left their spans as orphans; adopting them works. */
  void *p;
  for (int i = 0; i < 20000; i++) assert_int_equal(wr_alloc(tt.a, 48, &p), 0);
  heap_ok(tt.a, &u);
  assert_int_equal(u.blocks, 20000);
  wr_arena_detach(tt.a);
}

/* ---- processes: nprocs (<= PROCS) workers hand blocks to each other (ownership moves
 * as a channel would move it) and free what they receive: cross-process
 * frees into spans owned by a live cache of another process. */
#define PROCS 4
#define MAIL 1024
struct mailbox {
  _Atomic uint64_t cell[PROCS][MAIL];
  _Atomic uint32_t done;
  int nprocs;
  wr_tag tags[PROCS];
};

struct proc_arg {
  struct mailbox *mb;
  int me, iters;
};

static int drain(wr_arena *a, struct mailbox *mb, int me) {
  int got = 0;
  for (int i = 0; i < MAIL; i++) {
    uint64_t off = atomic_exchange(&mb->cell[me][i], 0);
    if (off) {
      if (wr_free(a, wr_ptr(a, off)) != 0) return -1;
      got++;
    }
  }
  return got;
}

static int proc_main(wr_arena *a, void *argp) {
  struct proc_arg *arg = argp;
  struct mailbox *mb = arg->mb;
  mb->tags[arg->me] = wr_self_tag(a);
  uint64_t rng = 77 + arg->me;
  void *held[512] = {0};
  for (int it = 0; it < arg->iters; it++) {
    int i = (int)(rng_next(&rng) % 512);
    if (!held[i]) {
      if (wr_alloc(a, rng_size(&rng), &held[i]) != 0) return 2;
      continue;
    }
    int to = (int)(rng_next(&rng) % (uint64_t)mb->nprocs);
    wr_tag tt2 = mb->tags[to];
    if (to != arg->me && tt2) {
      uint64_t off = wr_off(a, held[i]);
      int c = (int)(rng_next(&rng) % MAIL);
      uint64_t zero = 0;
      if (atomic_load(&mb->cell[to][c]) == 0 &&
          wr__heap_transfer(a, off, wr_self_tag(a), tt2) == 0) {
        if (!atomic_compare_exchange_strong(&mb->cell[to][c], &zero, off)) {
          /* lost the cell: take the block back */
          if (wr__heap_transfer(a, off, tt2, wr_self_tag(a)) != 0) return 3;
        } else {
          held[i] = NULL;
          continue;
        }
      }
    }
    if (wr_free(a, held[i]) != 0) return 4;
    held[i] = NULL;
    if (drain(a, mb, arg->me) < 0) return 5;
  }
  for (int i = 0; i < 512; i++)
    if (held[i] && wr_free(a, held[i]) != 0) return 6;
  /* Everyone stops sending before the last drain. */
  atomic_fetch_add(&mb->done, 1);
  while (atomic_load(&mb->done) < (uint32_t)mb->nprocs) {
    if (drain(a, mb, arg->me) < 0) return 7;
    usleep(100);
  }
  if (drain(a, mb, arg->me) < 0) return 8;
  wr_heap_flush(a);
  return 0;
}

static void run_processes(int nprocs) {
  wr_arena *a = make(128 << 20);
  struct mailbox *mb;
  assert_int_equal(wr_calloc(a, 1, sizeof *mb, (void **)&mb), 0);
  mb->nprocs = nprocs;
  pid_t pid[PROCS];
  uint32_t inc[PROCS];
  struct proc_arg args[PROCS];
  for (int i = 0; i < nprocs; i++) {
    args[i] = (struct proc_arg){mb, i, 30000};
  }
  for (int i = 0; i < nprocs; i++) {
    pid[i] = worker_fork(a, 10 + i, &inc[i], NULL, proc_main, &args[i]);
    mb->tags[i] = wr__tag_worker(10 + i, inc[i]);
  }
  for (int i = 0; i < nprocs; i++) {
    int st = worker_wait(pid[i]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  wr_heap_usage u;
  heap_ok(a, &u);
  assert_int_equal(u.bytes, wr_block_size(a, mb)); /* only the mailbox */
  wr_heap_stats st;
  wr_heap_stats_get(a, &st);
  assert_true(st.allocs >= st.frees && st.frees > 1000);
  for (int i = 0; i < nprocs; i++) worker_reclaim(a, 10 + i, inc[i], NULL);
  assert_int_equal(wr_free(a, mb), 0);
  heap_empty(a);
  wr_arena_detach(a);
}

static void test_two_processes(void **state) { run_processes(2); }
static void test_four_processes(void **state) { run_processes(PROCS); }

/* ---- reclaim: a worker dies holding blocks of every kind. */
struct hold_arg {
  int nsmall, nlarge;
  int die_by_kill;
};

static int hold_main(wr_arena *a, void *argp) {
  struct hold_arg *h = argp;
  void *p;
  for (int i = 0; i < h->nsmall; i++)
    if (wr_alloc(a, 1 + (size_t)(i * 37) % 4000, &p)) return 1;
  for (int i = 0; i < h->nlarge; i++)
    if (wr_alloc(a, 70000 + (size_t)i * 1000, &p)) return 2;
  /* A root that must survive its creator. */
  if (wr_alloc(a, 128, &p)) return 3;
  strcpy(p, "survives");
  if (wr_name_bind(a, "root", WR_KIND_BLOCK, wr_off(a, p))) return 4;
  /* A block from a span that was shared, still held: reclaim must scan. */
  void *q;
  if (wr_alloc(a, 128, &q)) return 5;
  if (h->die_by_kill) kill(getpid(), SIGKILL);
  return 0; /* exit without freeing */
}

static void test_reclaim(void **state) {
  for (int kill_it = 0; kill_it < 2; kill_it++) {
    wr_arena *a = make(64 << 20);
    struct hold_arg h = {5000, 7, kill_it};
    uint32_t inc;
    pid_t pid = worker_fork(a, 2, &inc, NULL, hold_main, &h);
    int st = worker_wait(pid);
    assert_true(kill_it ? WIFSIGNALED(st) : WIFEXITED(st) && WEXITSTATUS(st) == 0);
    wr_tag dead = wr__tag_worker(2, inc);
    uint64_t before = wr_heap_bytes_owned(a, dead);
    assert_true(before > 5000);
    /* Refused while the slot is still live. */
    assert_int_equal(wr_heap_reclaim(a, 2, inc, NULL), -WR_EAGAIN);
    wr_reclaim_report r;
    worker_reclaim(a, 2, inc, &r);
    assert_int_equal(r.blocks, 5000 + 7 + 1);
    assert_int_equal(r.bytes, before);
    assert_int_equal(wr_heap_bytes_owned(a, dead), 0);
    wr_heap_usage u;
    heap_ok(a, &u);
    wr_off_t off;
    assert_int_equal(wr_name_lookup(a, "root", NULL, &off), 0);
    assert_string_equal(wr_ptr(a, off), "survives");
    assert_int_equal(u.bytes, wr_block_size(a, wr_ptr(a, off)));
    /* Idempotent. */
    assert_int_equal(wr_heap_reclaim(a, 2, inc, &r), 0);
    assert_int_equal(r.blocks, 0);
    assert_int_equal(wr_name_unbind(a, "root"), 0);
    heap_ok(a, &u);
    assert_int_equal(u.bytes, 0);
    wr_heap_stats hs;
    wr_heap_stats_get(a, &hs);
    assert_int_equal(hs.reclaimed_blocks, 5008);
    wr_arena_detach(a);
  }
}

/* ---- reclaim while another worker keeps allocating and freeing */
struct busy {
  _Atomic int stop;
  _Atomic long ops;
};

static int busy_main(wr_arena *a, void *argp) {
  struct busy *b = argp;
  uint64_t rng = 5;
  void *held[300] = {0};
  while (!atomic_load(&b->stop)) {
    int i = (int)(rng_next(&rng) % 300);
    if (held[i]) {
      if (wr_free(a, held[i])) return 1;
      held[i] = NULL;
    } else if (wr_alloc(a, rng_size(&rng), &held[i])) {
      return 2;
    }
    atomic_fetch_add(&b->ops, 1);
  }
  for (int i = 0; i < 300; i++)
    if (held[i] && wr_free(a, held[i])) return 3;
  return 0;
}

static void test_reclaim_concurrent(void **state) {
  wr_arena *a = make(128 << 20);
  struct busy *b;
  assert_int_equal(wr_calloc(a, 1, sizeof *b, (void **)&b), 0);
  uint32_t binc;
  pid_t bpid = worker_fork(a, 1, &binc, NULL, busy_main, b);
  for (int round = 0; round < 10; round++) {
    struct hold_arg h = {3000, 3, 1};
    uint32_t inc;
    pid_t pid = worker_fork(a, 2, &inc, NULL, hold_main, &h);
    worker_wait(pid);
    long ops = atomic_load(&b->ops);
    worker_reclaim(a, 2, inc, NULL);
    assert_int_equal(wr_heap_bytes_owned(a, wr__tag_worker(2, inc)), 0);
    heap_ok(a, NULL);
    while (atomic_load(&b->ops) < ops + 1000) usleep(100);
    assert_int_equal(wr_name_unbind(a, "root"), 0);
  }
  atomic_store(&b->stop, 1);
  worker_join(a, bpid, 1, binc);
  assert_int_equal(wr_free(a, b), 0);
  heap_empty(a);
  wr_arena_detach(a);
}

/* ---- the checker catches scribbles */
static void test_check_detects(void **state) {
  wr_arena *a = make(8 << 20);
  void *p;
  assert_int_equal(wr_alloc(a, 64, &p), 0);
  char why[256];
  uint32_t pg = (uint32_t)((wr_off(a, p) - a->hdr->heap_off) >> WR__PAGE_SHIFT);
  _Atomic uint32_t *tags = (_Atomic uint32_t *)(a->heap + ((uint64_t)pg << WR__PAGE_SHIFT));
  uint32_t saved = atomic_load(&tags[0]);
  atomic_store(&tags[0], wr__tag_worker(9, 3)); /* a worker that never lived */
  assert_int_equal(wr_heap_check(a, NULL, why, sizeof why), -WR_ECORRUPT);
  assert_non_null(strstr(why, "dead or unknown"));
  atomic_store(&tags[0], saved);
  a->hdr->pages_in_use += 3;
  assert_int_equal(wr_heap_check(a, NULL, why, sizeof why), -WR_ECORRUPT);
  assert_non_null(strstr(why, "pages_in_use"));
  a->hdr->pages_in_use -= 3;
  arena_done(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_size),      cmocka_unit_test(test_large),
      cmocka_unit_test(test_realloc_calloc),  cmocka_unit_test(test_oom),
      cmocka_unit_test(test_bad_frees),       cmocka_unit_test(test_threads),
      cmocka_unit_test(test_two_processes),
      cmocka_unit_test(test_four_processes),       cmocka_unit_test(test_reclaim),
      cmocka_unit_test(test_reclaim_concurrent), cmocka_unit_test(test_check_detects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
