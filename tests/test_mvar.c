/* test_mvar.c: MVars across processes, and the crash matrix: after a
 * worker dies at any point of take/put and is reclaimed, the MVar holds a
 * whole value (the one before the operation, or the one after a committed
 * put), never a torn one, and is never stuck. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "crash_row.h"
#include "helpers.h"

static void test_basic(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mvar_create(a, "e", 0, NULL, 0), -WR_EINVAL);
  assert_int_equal(wr_mvar_create(a, "e", 4, "toolong", 7), -WR_EINVAL);
  assert_int_equal(wr_mvar_create(a, "e", 16, NULL, 0), 0);
  assert_int_equal(wr_mvar_create(a, "f", 16, "hello", 5), 0);
  wr_mvar *e, *f;
  assert_int_equal(wr_mvar_open(a, "e", &e), 0);
  assert_int_equal(wr_mvar_open(a, "f", &f), 0);
  char buf[32];
  assert_int_equal(wr_mvar_take(e, buf, sizeof buf, 0), -WR_EAGAIN);
  assert_int_equal(wr_mvar_take(e, buf, sizeof buf, 1000000), -WR_ETIMEDOUT);
  assert_int_equal(wr_mvar_put(f, "x", 1, 0), -WR_EAGAIN);
  assert_int_equal(wr_mvar_take(f, buf, 2, 0), -WR_EMSGSIZE);
  assert_int_equal(wr_mvar_take(f, buf, sizeof buf, -1), 5);
  assert_memory_equal(buf, "hello", 5);
  assert_int_equal(wr_mvar_put(f, "0123456789abcdefX", 17, 0), -WR_EMSGSIZE);
  assert_int_equal(wr_mvar_put(f, "world!", 6, -1), 0);
  assert_int_equal(wr_mvar_take(f, buf, sizeof buf, 0), 6);
  assert_memory_equal(buf, "world!", 6);
  assert_int_equal(wr_mvar_put(f, "", 0, 0), 0);
  assert_int_equal(wr_mvar_take(f, buf, sizeof buf, 0), 0);
  wr_interrupt();
  assert_int_equal(wr_mvar_take(f, buf, sizeof buf, -1), -WR_EINTR);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "f", &s), -WR_EKIND);
  wr_mvar_close(e);
  wr_mvar_close(f);
  arena_done(a);
}

/* Ping-pong: the child takes from "ping" and puts n+1 into "pong". */
#define ROUNDS 2000
static int worker_pong(wr_arena *a, void *arg) {
  (void)arg;
  wr_mvar *ping, *pong;
  if (wr_mvar_open(a, "ping", &ping) || wr_mvar_open(a, "pong", &pong)) return 2;
  for (int i = 0; i < ROUNDS; i++) {
    uint64_t v;
    if (wr_mvar_take(ping, &v, sizeof v, -1) != 8) return 3;
    v++;
    if (wr_mvar_put(pong, &v, sizeof v, -1)) return 4;
  }
  return 0;
}

static void test_ping_pong(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  assert_int_equal(wr_mvar_create(a, "ping", 8, NULL, 0), 0);
  assert_int_equal(wr_mvar_create(a, "pong", 8, NULL, 0), 0);
  wr_mvar *ping, *pong;
  assert_int_equal(wr_mvar_open(a, "ping", &ping), 0);
  assert_int_equal(wr_mvar_open(a, "pong", &pong), 0);
  tl_child c = tl_spawn(a, NULL, worker_pong, NULL);
  uint64_t v = 0;
  for (int i = 0; i < ROUNDS; i++) {
    assert_int_equal(wr_mvar_put(ping, &v, sizeof v, -1), 0);
    assert_int_equal(wr_mvar_take(pong, &v, sizeof v, -1), 8);
  }
  assert_int_equal(v, ROUNDS);
  tl_reap(a, &c);
  assert_int_equal(tl_exit_code(&c), 0);
  wr_mvar_close(ping);
  wr_mvar_close(pong);
  wr_arena_detach(a);
}

/* modifyMVar: take, change, put back; then take again and die holding it. */
static int worker_modify(wr_arena *a, void *arg) {
  (void)arg;
  wr_mvar *m;
  if (wr_mvar_open(a, "m", &m)) return 2;
  char v[64];
  int n = wr_mvar_take(m, v, sizeof v, -1);
  if (n != 64) return 3;
  memset(v, 'B', sizeof v);
  if (wr_mvar_put(m, v, sizeof v, -1)) return 4;
  if (wr_mvar_take(m, v, sizeof v, -1) != 64) return 5;
  tl_die(); /* holding the value: the reclaim puts it back */
  return 0;
}

static void test_crash_matrix(void **state) {
  (void)state;
  const char *pts[16];
  int n = tl_points("mvar.", pts, 16);
  assert_int_equal(n, 7);
  for (int i = 0; i <= n; i++) {
    for (int hit = 1; hit <= 2; hit++) {
      wr_arena *a = tl_arena();
      char A[64], B[64], got[64];
      memset(A, 'A', sizeof A);
      memset(B, 'B', sizeof B);
      assert_int_equal(wr_mvar_create(a, "m", 64, A, sizeof A), 0);
      char at[TL_AT_MAX];
      tl_child c = tl_crash_run(a, pts[i], hit, at, worker_modify, NULL, NULL);
      wr_mvar *m;
      assert_int_equal(wr_mvar_open(a, "m", &m), 0);
      /* Full, whole, and the right one: A until the put committed. */
      int took = wr_mvar_take(m, got, sizeof got, 0);
      if (pts[i]) crash_row(pts[i], tl_killed(&c), tl_dead_bytes(a, &c), 0, took != 64);
      if (took != 64) fail_msg("%s: empty after reclaim", at);
      /* Points are passed once (the put) or twice (the takes); the second
       * take's value is B, restored when its taker dies. */
      bool committed = pts[i] == NULL || hit == 2 || strcmp(pts[i], "mvar.put.after_commit") == 0;
      if (memcmp(got, committed ? B : A, 64) != 0)
        fail_msg("%s: value %.4s... (want %c)", at, got, committed ? 'B' : 'A');
      assert_int_equal(wr_mvar_put(m, got, 64, 0), 0);
      wr_mvar_close(m);
      arena_done(a);
    }
  }
}

/* Workers take a 64-byte value of one repeated byte and put it back
 * incremented, and are SIGKILLed at random moments: after the reclaims the
 * MVar is full and its value is whole. */
static int worker_hammer(wr_arena *a, void *arg) {
  (void)arg;
  wr_mvar *m;
  if (wr_mvar_open(a, "m", &m)) return 2;
  for (;;) {
    uint8_t v[64];
    if (wr_mvar_take(m, v, sizeof v, -1) != 64) return 3;
    for (int i = 0; i < 64; i++)
      if (v[i] != v[0]) return 4;
    memset(v, v[0] + 1, sizeof v);
    if (wr_mvar_put(m, v, sizeof v, -1)) return 5;
  }
}

static void test_random_kills(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  uint8_t v[64];
  memset(v, 0, sizeof v);
  assert_int_equal(wr_mvar_create(a, "m", 64, v, sizeof v), 0);
  wr_mvar *m;
  assert_int_equal(wr_mvar_open(a, "m", &m), 0);
  unsigned seed = 7;
  for (int round = 0; round < 30; round++) {
    tl_kill_round(a, 3, worker_hammer, NULL, &seed, round);
    if (wr_mvar_take(m, v, sizeof v, 0) != 64) fail_msg("round %d: empty", round);
    for (int i = 0; i < 64; i++)
      if (v[i] != v[0]) fail_msg("round %d: torn value", round);
    assert_int_equal(wr_mvar_put(m, v, sizeof v, 0), 0);
  }
  wr_mvar_close(m);
  arena_done(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_ping_pong),
      cmocka_unit_test(test_crash_matrix),
      cmocka_unit_test(test_random_kills),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
