/* test_mutex.c: robust mutexes and reader/writer locks across processes;
 * owner death gives EOWNERDEAD to the next locker; crash points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "crash_row.h"
#include "helpers.h"

static int worker_try(wr_arena *a, void *arg) {
  (void)arg;
  wr_mutex *m;
  if (wr_mutex_open(a, "m", &m)) return 2;
  int rc = wr_mutex_lock(m, 0);
  if (rc != -WR_EAGAIN) return 3;
  if (wr_mutex_unlock(m) != -WR_ENOTOWNER) return 4;
  if (wr_mutex_lock(m, 1000000) != -WR_ETIMEDOUT) return 5;
  return 0;
}

static void test_basic(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mutex_create(a, "m"), 0);
  wr_mutex *m;
  assert_int_equal(wr_mutex_open(a, "m", &m), 0);
  assert_int_equal(wr_mutex_lock(m, -1), 0);
  assert_int_equal(wr_mutex_lock(m, -1), -WR_EDEADLK);
  tl_run_all(a, 1, worker_try, NULL);
  assert_int_equal(wr_mutex_unlock(m), 0);
  assert_int_equal(wr_mutex_unlock(m), -WR_ENOTOWNER);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "m", &s), -WR_EKIND);
  wr_mutex_close(m);
  wr_arena_detach(a);
}

#define ROUNDS 3000
static int worker_count(wr_arena *a, void *arg) {
  volatile uint64_t *c = wr_ptr(a, *(wr_off_t *)arg);
  wr_mutex *m;
  if (wr_mutex_open(a, "m", &m)) return 2;
  for (int i = 0; i < ROUNDS; i++) {
    if (wr_mutex_lock(m, -1)) return 3;
    uint64_t v = *c;
    if (i % 64 == 0) sched_yield();
    *c = v + 1;
    if (wr_mutex_unlock(m)) return 4;
  }
  return 0;
}

static void test_contended(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mutex_create(a, "m"), 0);
  void *p;
  assert_int_equal(wr_calloc(a, 1, 8, &p), 0);
  wr_off_t off = wr_off(a, p);
  tl_run_all(a, 3, worker_count, &off);
  assert_int_equal(*(uint64_t *)p, 3 * ROUNDS);
  wr_arena_detach(a);
}

/* Lock, then die at the armed point (or at the end, holding the lock). */
static int worker_die(wr_arena *a, void *arg) {
  (void)arg;
  wr_mutex *m;
  if (wr_mutex_open(a, "m", &m)) return 2;
  if (wr_mutex_lock(m, -1)) return 3;
  if (wr_mutex_unlock(m)) return 4;
  if (wr_mutex_lock(m, -1)) return 3;
  tl_die();
  return 0;
}

/* Blocks on the mutex until the holder's death is reclaimed. */
static int worker_waiter(wr_arena *a, void *arg) {
  (void)arg;
  wr_mutex *m;
  if (wr_mutex_open(a, "m", &m)) return 2;
  int rc = wr_mutex_lock(m, -1);
  if (rc != 0 && rc != -WR_EOWNERDEAD) return 3;
  if (rc == -WR_EOWNERDEAD && wr_mutex_consistent(m)) return 4;
  return wr_mutex_unlock(m) ? 5 : 0;
}

static void test_owner_dead(void **state) {
  (void)state;
  const char *pts[8];
  int n = tl_points("mutex.", pts, 8);
  assert_int_equal(n, 2);
  for (int i = 0; i <= n; i++) {
    wr_arena *a = tl_arena();
    assert_int_equal(wr_mutex_create(a, "m"), 0);
    wr_mutex *m;
    assert_int_equal(wr_mutex_open(a, "m", &m), 0);
    assert_int_equal(wr_mutex_lock(m, -1), 0); /* the holder waits for us */
    tl_child c = tl_spawn(a, pts[i], worker_die, NULL);
    tl_child w = tl_spawn(a, NULL, worker_waiter, NULL);
    assert_int_equal(wr_mutex_unlock(m), 0);
    tl_reap(a, &c);
    if (pts[i]) crash_row(pts[i], tl_killed(&c), tl_dead_bytes(a, &c), 0, 0);
    assert_true(tl_killed(&c));
    tl_reap(a, &w); /* woken by the reclaim, whatever the point */
    assert_int_equal(tl_exit_code(&w), 0);
    int rc = wr_mutex_lock(m, 0);
    assert_true(rc == 0 || rc == -WR_EOWNERDEAD);
    assert_int_equal(wr_mutex_unlock(m), 0);
    wr_mutex_close(m);
    arena_done(a);
  }
}

static int worker_hold(wr_arena *a, void *arg) {
  (void)arg;
  wr_mutex *m;
  if (wr_mutex_open(a, "m", &m) || wr_mutex_lock(m, -1)) return 2;
  tl_die();
  return 0;
}

static void test_consistent(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mutex_create(a, "m"), 0);
  wr_mutex *m;
  assert_int_equal(wr_mutex_open(a, "m", &m), 0);
  tl_child c = tl_spawn(a, NULL, worker_hold, NULL);
  tl_reap(a, &c);
  assert_int_equal(wr_mutex_lock(m, -1), -WR_EOWNERDEAD);
  assert_int_equal(wr_mutex_unlock(m), 0); /* not repaired: still owner-dead */
  assert_int_equal(wr_mutex_lock(m, -1), -WR_EOWNERDEAD);
  assert_int_equal(wr_mutex_consistent(m), 0);
  assert_int_equal(wr_mutex_unlock(m), 0);
  assert_int_equal(wr_mutex_lock(m, -1), 0);
  assert_int_equal(wr_mutex_unlock(m), 0);
  assert_int_equal(wr_mutex_consistent(m), -WR_ENOTOWNER);
  wr_mutex_close(m);
  wr_arena_detach(a);
}

/* --- rwlock ---------------------------------------------------------------- */

static int worker_reader(wr_arena *a, void *arg) {
  int mode = *(int *)arg;
  wr_rwlock *rw;
  if (wr_rwlock_open(a, "rw", &rw)) return 2;
  if (mode == 0) { /* the parent reads: we can read, not write */
    if (wr_rwlock_rdlock(rw, 0)) return 3;
    if (wr_rwlock_unlock(rw)) return 4;
    if (wr_rwlock_wrlock(rw, 0) != -WR_EAGAIN) return 5;
    return 0;
  }
  if (mode == 1) { /* die holding two read holds */
    if (wr_rwlock_rdlock(rw, -1) || wr_rwlock_rdlock(rw, -1)) return 3;
    tl_die();
  }
  /* mode 2: die holding the write lock */
  if (wr_rwlock_wrlock(rw, -1)) return 3;
  tl_die();
  return 0;
}

static void test_rwlock(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_rwlock_create(a, "rw"), 0);
  wr_rwlock *rw;
  assert_int_equal(wr_rwlock_open(a, "rw", &rw), 0);
  assert_int_equal(wr_rwlock_rdlock(rw, -1), 0);
  assert_int_equal(wr_rwlock_wrlock(rw, 0), -WR_EDEADLK);
  int mode = 0;
  tl_child c = tl_spawn(a, NULL, worker_reader, &mode);
  tl_reap(a, &c);
  assert_int_equal(tl_exit_code(&c), 0);
  assert_int_equal(wr_rwlock_unlock(rw), 0);
  assert_int_equal(wr_rwlock_unlock(rw), -WR_ENOTOWNER);
  /* A dead reader's holds are dropped by the reclaim. */
  mode = 1;
  c = tl_spawn(a, NULL, worker_reader, &mode);
  tl_reap(a, &c);
  assert_true(tl_killed(&c));
  assert_int_equal(wr_rwlock_wrlock(rw, 0), 0);
  assert_int_equal(wr_rwlock_unlock(rw), 0);
  /* Killed right after counting itself in as a reader: dropped too. */
  c = tl_spawn(a, "rwlock.read.after_inc", worker_reader, &mode);
  tl_reap(a, &c);
  int got = wr_rwlock_wrlock(rw, 0);
  crash_row("rwlock.read.after_inc", tl_killed(&c), tl_dead_bytes(a, &c), got != 0, 0);
  assert_true(tl_killed(&c));
  assert_int_equal(got, 0);
  assert_int_equal(wr_rwlock_unlock(rw), 0);
  /* A dead writer: owner-dead for readers and writers until repaired. */
  mode = 2;
  c = tl_spawn(a, NULL, worker_reader, &mode);
  tl_reap(a, &c);
  assert_int_equal(wr_rwlock_rdlock(rw, 0), -WR_EOWNERDEAD);
  assert_int_equal(wr_rwlock_unlock(rw), 0);
  assert_int_equal(wr_rwlock_wrlock(rw, 0), -WR_EOWNERDEAD);
  assert_int_equal(wr_rwlock_consistent(rw), 0);
  assert_int_equal(wr_rwlock_unlock(rw), 0);
  assert_int_equal(wr_rwlock_rdlock(rw, 0), 0);
  assert_int_equal(wr_rwlock_unlock(rw), 0);
  wr_rwlock_close(rw);
  arena_done(a);
}

/* Writers and readers from several processes: readers never see a torn
 * pair (a, b) with a != b. */
static int worker_rw_mix(wr_arena *a, void *arg) {
  volatile uint64_t *pair = wr_ptr(a, *(wr_off_t *)arg);
  wr_rwlock *rw;
  if (wr_rwlock_open(a, "rw", &rw)) return 2;
  for (int i = 0; i < 2000; i++) {
    if (i % 4 == 0) {
      if (wr_rwlock_wrlock(rw, -1)) return 3;
      pair[0]++;
      if (i % 64 == 0) sched_yield();
      pair[1]++;
    } else {
      if (wr_rwlock_rdlock(rw, -1)) return 4;
      if (pair[0] != pair[1]) return 5;
    }
    if (wr_rwlock_unlock(rw)) return 6;
  }
  return 0;
}

static void test_rwlock_mix(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_rwlock_create(a, "rw"), 0);
  void *p;
  assert_int_equal(wr_calloc(a, 2, 8, &p), 0);
  wr_off_t off = wr_off(a, p);
  tl_run_all(a, 3, worker_rw_mix, &off);
  assert_int_equal(((uint64_t *)p)[0], 3 * 500);
  assert_int_equal(((uint64_t *)p)[1], 3 * 500);
  wr_arena_detach(a);
}

/* Workers update a pair (a, b) under the mutex, a != b in the middle, and
 * are SIGKILLed at random moments. Whoever locks next sees a == b, unless
 * it gets EOWNERDEAD: then it repairs (b = a) and marks consistent. */
static int worker_pair(wr_arena *a, void *arg) {
  volatile uint64_t *pair = wr_ptr(a, *(wr_off_t *)arg);
  wr_mutex *m;
  if (wr_mutex_open(a, "m", &m)) return 2;
  for (;;) {
    int rc = wr_mutex_lock(m, -1);
    if (rc == -WR_EOWNERDEAD) {
      pair[1] = pair[0];
      wr_mutex_consistent(m);
    } else if (rc) {
      return 3;
    }
    if (pair[0] != pair[1]) return 4;
    pair[0]++;
    pair[1]++;
    if (wr_mutex_unlock(m)) return 5;
  }
}

static void test_random_kills(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mutex_create(a, "m"), 0);
  wr_mutex *m;
  assert_int_equal(wr_mutex_open(a, "m", &m), 0);
  void *p;
  assert_int_equal(wr_calloc(a, 2, 8, &p), 0);
  volatile uint64_t *pair = p;
  wr_off_t off = wr_off(a, p);
  unsigned seed = 5;
  int dead = 0;
  for (int round = 0; round < 30; round++) {
    tl_kill_round(a, 3, worker_pair, &off, &seed, round);
    int rc = wr_mutex_lock(m, 0);
    if (rc == -WR_EOWNERDEAD) {
      dead++;
      pair[1] = pair[0];
      assert_int_equal(wr_mutex_consistent(m), 0);
    } else if (rc != 0 || pair[0] != pair[1]) {
      fail_msg("round %d: lock %d, pair %llu %llu", round, rc, (unsigned long long)pair[0],
               (unsigned long long)pair[1]);
    }
    assert_int_equal(wr_mutex_unlock(m), 0);
  }
  print_message("owner died holding the mutex in %d of 30 rounds\n", dead);
  wr_mutex_close(m);
  arena_done(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),        cmocka_unit_test(test_contended),
      cmocka_unit_test(test_owner_dead),   cmocka_unit_test(test_consistent),
      cmocka_unit_test(test_rwlock),       cmocka_unit_test(test_rwlock_mix),
      cmocka_unit_test(test_random_kills),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
