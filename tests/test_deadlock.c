/* test_deadlock.c: two processes each holding one mutex and waiting for the
 * other's: wr_deadlock_check returns the cycle (slots and objects). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

struct plan {
  int kind; /* WR_KIND_MUTEX, WR_KIND_SEM or WR_KIND_MVAR */
  const char *first, *second;
};

/* Hold the object of that kind named name: lock the mutex, acquire one
 * permit of the semaphore, take the MVar's value. 0 once held; blocks. */
static int hold(wr_arena *a, int kind, const char *name) {
  if (kind == WR_KIND_MUTEX) {
    wr_mutex *m;
    return wr_mutex_open(a, name, &m) || wr_mutex_lock(m, -1);
  }
  if (kind == WR_KIND_SEM) {
    wr_sem *s;
    return wr_sem_open(a, name, &s) || wr_sem_acquire(s, 1, -1);
  }
  wr_mvar *m;
  char v[8];
  return wr_mvar_open(a, name, &m) || wr_mvar_take(m, v, sizeof v, -1) < 0;
}

/* Hold first, tell the barrier, wait until both hold theirs, hold second:
 * with the other worker's plan reversed, that never returns (deadlock)
 * until the other is killed and reclaimed. */
static int worker(wr_arena *a, void *arg) {
  const struct plan *p = arg;
  wr_sem *ready, *go;
  if (wr_sem_open(a, "ready", &ready) || wr_sem_open(a, "go", &go)) return 2;
  if (hold(a, p->kind, p->first)) return 3;
  if (wr_sem_release(ready, 1) || wr_sem_acquire(go, 1, -1)) return 4;
  hold(a, p->kind, p->second);
  return 6;
}

/* Create the barrier's semaphores, start workers A and B on their plans,
 * wait until both hold their first object ("ready"), send them on to the
 * second ("go"), and poll until the checker reports their two-worker cycle
 * (bounded tries, not a time). */
static void start_cycle(wr_arena *a, struct plan *pa, struct plan *pb, tl_child *A, tl_child *B,
                        wr_deadlock *cyc) {
  assert_int_equal(wr_sem_create(a, "ready", 0), 0);
  assert_int_equal(wr_sem_create(a, "go", 0), 0);
  *A = tl_spawn(a, NULL, worker, pa);
  *B = tl_spawn(a, NULL, worker, pb);
  wr_sem *ready, *go;
  assert_int_equal(wr_sem_open(a, "ready", &ready), 0);
  assert_int_equal(wr_sem_open(a, "go", &go), 0);
  assert_int_equal(wr_sem_acquire(ready, 2, -1), 0); /* both hold their first */
  assert_int_equal(wr_sem_release(go, 2), 0);
  int found = 0;
  for (int i = 0; i < 20000 && !found; i++) {
    found = wr_deadlock_check(a, cyc);
    if (!found) usleep(500);
  }
  assert_int_equal(found, 1);
  assert_int_equal(cyc->n, 2);
  wr_sem_close(ready);
  wr_sem_close(go);
}

/* The supervisor breaks the cycle by killing A: B then proceeds and exits
 * 6. Returns the permits A's reclaim gave back. */
static uint64_t break_cycle(wr_arena *a, tl_child *A, tl_child *B) {
  tl_kill(A->pid);
  uint64_t back = tl_reap(a, A);
  tl_reap(a, B);
  assert_int_equal(tl_exit_code(B), 6);
  return back;
}

static void test_two_process_cycle(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mutex_create(a, "m1"), 0);
  assert_int_equal(wr_mutex_create(a, "m2"), 0);
  wr_deadlock cyc;
  assert_int_equal(wr_deadlock_check(a, &cyc), 0);
  struct plan pa = {WR_KIND_MUTEX, "m1", "m2"}, pb = {WR_KIND_MUTEX, "m2", "m1"};
  tl_child A, B;
  start_cycle(a, &pa, &pb, &A, &B, &cyc);
  wr_off_t m1, m2;
  assert_int_equal(wr_name_lookup(a, "m1", NULL, &m1), 0);
  assert_int_equal(wr_name_lookup(a, "m2", NULL, &m2), 0);
  for (uint32_t i = 0; i < 2; i++) {
    uint32_t s = cyc.slots[i], next = cyc.slots[(i + 1) % 2];
    assert_true(s == A.slot || s == B.slot);
    assert_int_equal(cyc.kinds[i], WR_KIND_MUTEX);
    /* slot s waits for the mutex it did not lock first, held by the other */
    assert_int_equal(cyc.objs[i], s == A.slot ? m2 : m1);
    assert_int_not_equal(s, next);
  }
  break_cycle(a, &A, &B); /* B gets EOWNERDEAD and proceeds; nothing is left */
  assert_int_equal(wr_deadlock_check(a, &cyc), 0);
  arena_done(a);
}

/* A semaphore cycle: each holds the only permit of one and waits on the
 * other's. */
static void test_sem_cycle(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_sem_create(a, "s1", 1), 0);
  assert_int_equal(wr_sem_create(a, "s2", 1), 0);
  struct plan pa = {WR_KIND_SEM, "s1", "s2"}, pb = {WR_KIND_SEM, "s2", "s1"};
  wr_deadlock cyc;
  tl_child A, B;
  start_cycle(a, &pa, &pb, &A, &B, &cyc);
  assert_int_equal(cyc.kinds[0], WR_KIND_SEM);
  assert_int_equal(break_cycle(a, &A, &B), 2); /* its permit of s1, and the one of go */
  wr_arena_detach(a);
}

/* An MVar cycle: each took one box (so it holds it) and waits to take the
 * other's. */
static void test_mvar_cycle(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mvar_create(a, "v1", 8, "one", 3), 0);
  assert_int_equal(wr_mvar_create(a, "v2", 8, "two", 3), 0);
  struct plan pa = {WR_KIND_MVAR, "v1", "v2"}, pb = {WR_KIND_MVAR, "v2", "v1"};
  wr_deadlock cyc;
  tl_child A, B;
  start_cycle(a, &pa, &pb, &A, &B, &cyc);
  assert_int_equal(cyc.kinds[0], WR_KIND_MVAR);
  assert_int_equal(cyc.kinds[1], WR_KIND_MVAR);
  break_cycle(a, &A, &B); /* A's box goes back (its take is undone): B proceeds */
  wr_arena_detach(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_process_cycle),
      cmocka_unit_test(test_sem_cycle),
      cmocka_unit_test(test_mvar_cycle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
