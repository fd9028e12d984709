/* test_sem.c: counting semaphores across real processes, and the crash
 * matrix: a holder killed at every crash point gives back exactly what it
 * held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "crash_row.h"
#include "helpers.h"

static void test_basic(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "s", 3), 0);
  assert_int_equal(wr_sem_create(a, "s", 3), -WR_EEXIST);
  assert_int_equal(wr_sem_create(a, "big", WR_SEM_MAX + 1u), -WR_EINVAL);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "nope", &s), -WR_ENOENT);
  assert_int_equal(wr_mutex_create(a, "m"), 0);
  assert_int_equal(wr_sem_open(a, "m", &s), -WR_EKIND);
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_value(s), 3);
  assert_int_equal(wr_sem_acquire(s, 0, -1), -WR_EINVAL);
  assert_int_equal(wr_sem_acquire(s, 2, -1), 0);
  assert_int_equal(wr_sem_held(s), 2);
  assert_int_equal(wr_sem_try(s, 2), -WR_EAGAIN);
  assert_int_equal(wr_sem_acquire(s, 2, 1000000), -WR_ETIMEDOUT);
  assert_int_equal(wr_sem_try(s, 1), 0);
  assert_int_equal(wr_sem_value(s), 0);
  assert_int_equal(wr_sem_held(s), 3);
  assert_int_equal(wr_sem_release(s, 3), 0);
  assert_int_equal(wr_sem_held(s), 0);
  assert_int_equal(wr_sem_value(s), 3);
  /* A gift beyond what is held, then overflow. */
  assert_int_equal(wr_sem_release(s, WR_SEM_MAX - 3), 0);
  assert_int_equal(wr_sem_value(s), (int)WR_SEM_MAX);
  assert_int_equal(wr_sem_release(s, 1), -WR_EOVERFLOW);
  assert_int_equal(wr_sem_release(s, 0), -WR_EINVAL);
  /* An interrupt makes the next wait return EINTR, once. */
  wr_sem *z;
  assert_int_equal(wr_sem_create(a, "z", 0), 0);
  assert_int_equal(wr_sem_open(a, "z", &z), 0);
  wr_interrupt();
  assert_int_equal(wr_sem_acquire(z, 1, -1), -WR_EINTR);
  assert_int_equal(wr_sem_acquire(z, 1, 1000), -WR_ETIMEDOUT);
  wr_sem_close(z);
  wr_sem_close(s);
  arena_done(a);
}

/* --- mutual exclusion and wake-ups under contention ---------------------- */

#define ROUNDS 3000

static int worker_count(wr_arena *a, void *arg) {
  wr_off_t counter = *(wr_off_t *)arg;
  wr_sem *s;
  if (wr_sem_open(a, "lock", &s)) return 2;
  volatile uint64_t *c = wr_ptr(a, counter);
  for (int i = 0; i < ROUNDS; i++) {
    if (wr_sem_acquire(s, 1, -1)) return 3;
    uint64_t v = *c;
    if (i % 64 == 0) sched_yield(); /* widen the race window */
    *c = v + 1;
    if (wr_sem_release(s, 1)) return 4;
  }
  wr_sem_close(s);
  return 0;
}

static void test_contended(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "lock", 1), 0);
  void *p;
  assert_int_equal(wr_calloc(a, 1, 8, &p), 0);
  wr_off_t off = wr_off(a, p);
  assert_int_equal(tl_run_all(a, 3, worker_count, &off), 0);
  assert_int_equal(*(uint64_t *)p, 3 * ROUNDS);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "lock", &s), 0);
  assert_int_equal(wr_sem_value(s), 1);
  wr_sem_close(s);
  wr_free(a, p);
  arena_done(a);
}

/* A waiter blocked forever is woken by another process's release. */
static int worker_gate(wr_arena *a, void *arg) {
  (void)arg;
  wr_sem *s;
  if (wr_sem_open(a, "gate", &s)) return 2;
  int rc = wr_sem_acquire(s, 2, -1);
  return rc == 0 && wr_sem_held(s) == 2 ? 0 : 3;
}

static void test_wake(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "gate", 0), 0);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "gate", &s), 0);
  tl_child c = tl_spawn(a, NULL, worker_gate, NULL);
  assert_int_equal(wr_sem_release(s, 1), 0);
  assert_int_equal(wr_sem_release(s, 1), 0);
  /* It exits holding 2 permits: the reclaim returns them. */
  assert_int_equal(tl_reap(a, &c), 2);
  assert_int_equal(tl_exit_code(&c), 0);
  assert_int_equal(wr_sem_value(s), 2);
  wr_sem_close(s);
  wr_arena_detach(a);
}

/* --- crash matrix ---------------------------------------------------------- */

/* Acquire 2 and 1 (two entries' worth of ops), release 1, gift-free: then
 * die holding 2. Every sem crash point is passed once. */
static int worker_crash(wr_arena *a, void *arg) {
  (void)arg;
  wr_sem *s, *t;
  if (wr_sem_open(a, "s", &s) || wr_sem_open(a, "t", &t)) return 2;
  if (wr_sem_acquire(s, 2, -1)) return 3;
  if (wr_sem_acquire(t, 1, -1)) return 3;
  if (wr_sem_release(s, 1)) return 4;
  if (wr_sem_acquire(s, 1, -1)) return 3;
  tl_die();
  return 0;
}

static void test_crash_matrix(void **state) {
  (void)state;
  const char *pts[32];
  int n = tl_points("sem.", pts, 32);
  assert_true(n >= 8);
  for (int i = 0; i <= n; i++) {
    for (int hit = 1; hit <= 3; hit++) {
      if (!pts[i] && hit > 1) break;
      wr_arena *a = tl_arena();
      assert_int_equal(wr_sem_create(a, "s", 5), 0);
      assert_int_equal(wr_sem_create(a, "t", 1), 0);
      char at[TL_AT_MAX];
      uint64_t back;
      tl_child c = tl_crash_run(a, pts[i], hit, at, worker_crash, NULL, &back);
      wr_sem *s, *t;
      assert_int_equal(wr_sem_open(a, "s", &s), 0);
      assert_int_equal(wr_sem_open(a, "t", &t), 0);
      if (pts[i])
        crash_row(pts[i], tl_killed(&c), tl_dead_bytes(a, &c),
                  (uint64_t)(labs(5L - wr_sem_value(s)) + labs(1L - wr_sem_value(t))), 0);
      if (wr_sem_value(s) != 5 || wr_sem_value(t) != 1)
        fail_msg("%s: values %d %d after reclaim (returned %llu)", at, wr_sem_value(s),
                 wr_sem_value(t), (unsigned long long)back);
      assert_true(back <= 4);
      /* Reclaim is idempotent. */
      uint64_t again = 9;
      assert_int_equal(wr_sync_reclaim(a, c.slot, c.inc, &again), 0);
      assert_int_equal(again, 0);
      assert_int_equal(wr_sem_value(s), 5);
      /* Nothing is stuck: the full count can be taken. */
      assert_int_equal(wr_sem_try(s, 5), 0);
      assert_int_equal(wr_sem_release(s, 5), 0);
      wr_sem_close(s);
      wr_sem_close(t);
      arena_done(a);
    }
  }
}

/* A dead worker's gifts stay given. */
static int worker_gift(wr_arena *a, void *arg) {
  (void)arg;
  wr_sem *s;
  if (wr_sem_open(a, "s", &s)) return 2;
  return wr_sem_release(s, 2) ? 3 : 0;
}

static void test_gift(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "s", 0), 0);
  tl_child c = tl_spawn(a, NULL, worker_gift, NULL);
  assert_int_equal(tl_reap(a, &c), 0);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_value(s), 2);
  wr_sem_close(s);
  wr_arena_detach(a);
}

/* Two workers die: A inside an update (its tag still in the word), B
 * holding a permit. Reclaiming B first must not wait for A's reclaim. */
static int worker_hold_one(wr_arena *a, void *arg) {
  (void)arg;
  wr_sem *s;
  if (wr_sem_open(a, "s", &s) || wr_sem_acquire(s, 1, -1)) return 2;
  tl_die();
  return 0;
}

static void test_two_deaths(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "s", 5), 0);
  assert_int_equal(wr_sem_create(a, "t", 1), 0);
  tl_child B = tl_spawn(a, NULL, worker_hold_one, NULL);
  assert_int_equal(waitpid(B.pid, &B.status, 0), B.pid);
  tl_child A = tl_spawn(a, "sem.acquire.after_cas:3", worker_crash, NULL);
  assert_int_equal(waitpid(A.pid, &A.status, 0), A.pid);
  assert_true(tl_killed(&A));
  assert_int_equal(wr_slot_mark_dead(a, A.slot, A.inc), 0);
  assert_int_equal(tl_reclaim(a, &B), 1); /* A's tag is still in s's word */
  /* A held 2 - 1 of s, + 1 from the acquire it died in (committed), + 1 of t. */
  assert_int_equal(tl_reclaim(a, &A), 3);
  wr_sem *s, *t;
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_open(a, "t", &t), 0);
  assert_int_equal(wr_sem_value(s), 5);
  assert_int_equal(wr_sem_value(t), 1);
  wr_sem_close(s);
  wr_sem_close(t);
  wr_arena_detach(a);
}

/* A real signal whose handler calls wr_interrupt ends a blocked wait. */
static void on_usr1(int sig) {
  (void)sig;
  wr_interrupt();
}

static int worker_interrupted(wr_arena *a, void *arg) {
  (void)arg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART */
  sigaction(SIGUSR1, &sa, NULL);
  wr_sem *s, *ready;
  if (wr_sem_open(a, "z", &s) || wr_sem_open(a, "ready", &ready)) return 2;
  if (wr_sem_release(ready, 1)) return 3;
  int rc;
  do /* the signal may come before we sleep: then the flag ends the wait */
    rc = wr_sem_acquire(s, 1, -1);
  while (rc == 0);
  return rc == -WR_EINTR ? 0 : 4;
}

static void test_signal_interrupt(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "z", 0), 0);
  assert_int_equal(wr_sem_create(a, "ready", 0), 0);
  wr_sem *ready;
  assert_int_equal(wr_sem_open(a, "ready", &ready), 0);
  tl_child c = tl_spawn(a, NULL, worker_interrupted, NULL);
  assert_int_equal(wr_sem_acquire(ready, 1, -1), 0);
  if (c.pid > 1) kill(c.pid, SIGUSR1);
  tl_reap(a, &c);
  assert_int_equal(tl_exit_code(&c), 0);
  wr_sem_close(ready);
  wr_arena_detach(a);
}

/* A worker blocked on a semaphore keeps its watchdog heartbeat moving
 * (every wait slice comes back through the wait mark): idle, not stuck. */
static int worker_blocked(wr_arena *a, void *arg) {
  (void)arg;
  wr_sem *s, *ready;
  if (wr_sem_open(a, "z", &s) || wr_sem_open(a, "ready", &ready)) return 2;
  if (wr_sem_release(ready, 1)) return 3;
  return wr_sem_acquire(s, 1, -1) == 0 ? 0 : 4;
}

static void test_heartbeat_while_blocked(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "z", 0), 0);
  assert_int_equal(wr_sem_create(a, "ready", 0), 0);
  wr_sem *z, *ready;
  assert_int_equal(wr_sem_open(a, "z", &z), 0);
  assert_int_equal(wr_sem_open(a, "ready", &ready), 0);
  tl_child c = tl_spawn(a, NULL, worker_blocked, NULL);
  assert_int_equal(wr_sem_acquire(ready, 1, -1), 0);
  wr_slot_info in;
  assert_int_equal(wr_slot_info_get(a, c.slot, &in), 0);
  uint64_t last = in.heartbeat;
  int moves = 0;
  for (int i = 0; i < 30000 && moves < 5; i++) { /* bounded at 30 s, never timed */
    usleep(1000);
    assert_int_equal(wr_slot_info_get(a, c.slot, &in), 0);
    if (in.heartbeat != last) moves++, last = in.heartbeat;
  }
  assert_int_equal(moves, 5);
  assert_int_equal(waitpid(c.pid, NULL, WNOHANG), 0); /* still blocked */
  assert_int_equal(wr_sem_release(z, 1), 0);
  tl_reap(a, &c);
  assert_int_equal(tl_exit_code(&c), 0);
  wr_sem_close(z);
  wr_sem_close(ready);
  wr_arena_detach(a);
}

/* Kills at arbitrary instructions, not only at crash points: workers
 * hammer two semaphores and are SIGKILLed at random moments; after every
 * reclaim both semaphores hold their full count again. */
static int worker_hammer(wr_arena *a, void *arg) {
  unsigned seed = (unsigned)getpid();
  (void)arg;
  wr_sem *s, *t;
  if (wr_sem_open(a, "s", &s) || wr_sem_open(a, "t", &t)) return 2;
  for (;;) {
    uint32_t n = 1 + (uint32_t)(rand_r(&seed) % 2);
    if (wr_sem_acquire(s, n, -1)) return 3;
    if (rand_r(&seed) % 2 && wr_sem_acquire(t, 1, 0) == 0) wr_sem_release(t, 1);
    if (wr_sem_release(s, n)) return 4;
  }
}

static void test_random_kills(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "s", 3), 0);
  assert_int_equal(wr_sem_create(a, "t", 1), 0);
  wr_sem *s, *t;
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_open(a, "t", &t), 0);
  unsigned seed = 42;
  for (int round = 0; round < 30; round++) {
    tl_kill_round(a, 3, worker_hammer, NULL, &seed, round);
    if (wr_sem_value(s) != 3 || wr_sem_value(t) != 1)
      fail_msg("round %d: values %d %d", round, wr_sem_value(s), wr_sem_value(t));
  }
  wr_sem_close(s);
  wr_sem_close(t);
  arena_done(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_contended),
      cmocka_unit_test(test_wake),
      cmocka_unit_test(test_crash_matrix),
      cmocka_unit_test(test_gift),
      cmocka_unit_test(test_two_deaths),
      cmocka_unit_test(test_signal_interrupt),
      cmocka_unit_test(test_heartbeat_while_blocked),
      cmocka_unit_test(test_random_kills),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
