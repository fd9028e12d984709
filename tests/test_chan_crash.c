/*
 * test_chan_crash.c: the channel crash matrix. A producer process and a
 * consumer process stream a mix of inline and zero-copy records through a
 * small lane; one of them is SIGKILLed at a named crash point, the parent
 * reclaims it as the supervisor does (wr_chan_reclaim, wr_heap_reclaim) and
 * restarts that side, which continues where the dead one stopped. At the
 * end the consumer's log must hold every record in order, no gap, no
 * corrupt byte, duplicates only right after a consumer crash and no more
 * than the reclaimer counted as redelivered; both checkers green; every
 * byte back after the channel is destroyed. Also: a creator killed between
 * claiming lanes and binding the name, and a reclaimer killed mid-way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "chan_util.h"
#include "crash_row.h"

#define N 3000u
#define LOG_MAX (4 * N)

struct shared {
  _Atomic uint64_t nlog;
  uint64_t log[LOG_MAX];
};
static struct shared *sh;
static wr_arena *arena;

static int setup(void **state) {
  (void)state;
  wr_arena_opts o = {.size = 32ull << 20};
  sh = shared_mem(sizeof *sh);
  return sh && wr_arena_create(&o, &arena) == 0 ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  wr_arena_detach(arena);
  return 0;
}

static size_t block_len(uint64_t i) { return 100 + (i * 13) % 4000; }

/* Sends records tail..N-1 (continuing a dead predecessor), then closes. */
static int producer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *p;
  if (wr_chan_open(a, "crash", WR_PRODUCER, 0, &p)) return 10;
  wr_lane_stats st;
  if (wr_chan_stats(a, "crash", &st, 1) != 1) return 11;
  uint8_t buf[64];
  for (uint64_t i = st.sent; i < N; i++) {
    if (i % 3 == 0) {
      void *b;
      size_t len = block_len(i);
      if (wr_alloc(a, len, &b)) return 12;
      rec_fill(b, len, i);
      if (wr_chan_send_block(p, b, len, -1)) return 13;
    } else if (i % 3 == 2 || i + 1 == N) {
      rec_fill(buf, sizeof buf, i);
      if (wr_chan_send(p, buf, sizeof buf, -1)) return 14;
    } else { /* i and i + 1 in one batch */
      uint8_t two[2][64];
      rec_fill(two[0], 64, i);
      rec_fill(two[1], 64, i + 1);
      wr_msg m[2] = {{.data = two[0], .len = 64}, {.data = two[1], .len = 64}};
      int rc = wr_chan_send_batch(p, m, 2, -1);
      if (rc <= 0) return 15;
      i += (uint64_t)rc - 1;
    }
  }
  wr_chan_close(p);
  wr_chan_detach(p);
  return 0;
}

static int check_and_log(const wr_rec *r) {
  uint64_t want = r->seq;
  size_t len = r->flags & WR_REC_BLOCK ? block_len(want) : 64;
  if (r->len != len || !rec_ok(r->data, r->len, want)) return 0;
  uint64_t k = atomic_fetch_add(&sh->nlog, 1);
  if (k < LOG_MAX) sh->log[k] = want;
  return 1;
}

/* Receives until end of stream, with every way of finishing a record. */
static int consumer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *c;
  if (wr_chan_open(a, "crash", WR_CONSUMER, 0, &c)) return 20;
  for (;;) {
    wr_rec r[2];
    int rc = wr_chan_peek(c, &r[0], -1);
    if (rc == -WR_EOF) break;
    if (rc) return 21;
    if (!check_and_log(&r[0])) return 22;
    const wr_rec *last = &r[0];
    if (r[0].seq % 4 == 1 && wr_chan_peek(c, &r[1], 0) == 0) { /* release two at once */
      if (!check_and_log(&r[1])) return 23;
      last = &r[1];
    }
    if ((last->flags & WR_REC_BLOCK) && last->seq % 2 == 0) {
      void *b;
      if (wr_rec_take(c, last, &b)) return 24;
      if (!rec_ok(b, block_len(last->seq), last->seq)) return 25;
      if (wr_free(a, b)) return 26;
    } else if (wr_chan_release(c, last)) {
      return 27;
    }
  }
  wr_chan_detach(c);
  return 0;
}

/* Fork a reclaimer that dies at chan.reclaim.mid, then reap for real. */
static uint64_t reap_with_crashing_reclaimer(wr_arena *a, uint32_t slot, uint32_t inc) {
  assert_int_equal(wr_slot_mark_dead(a, slot, inc), 0);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("WARREN_CRASH_AT", "chan.reclaim.mid", 1);
    wr_crash_rearm();
    wr_chan_reclaim(a, slot, inc, NULL);
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st)); /* it did die there */
  return reap_slot(a, slot, inc);
}

enum { PROD = 0, CONS = 1 };

/* One cell of the matrix: `point` armed (its n-th pass) in side `victim`. */
static void run_cell(const char *point, int nth, int victim, int crashing_reclaimer) {
  wr_arena *a = arena;
  wr_chan_destroy(a, "crash"); /* left over by a failed cell */
  uint64_t base = heap_bytes(a);
  atomic_store(&sh->nlog, 0);
  wr_chan_opts o = {.capacity = 8, .slot_size = 64};
  assert_int_equal(wr_chan_create(a, "crash", &o), 0);
  char arm[96];
  snprintf(arm, sizeof arm, "%s:%d", point, nth);
  int (*fns[2])(wr_arena *, void *) = {producer, consumer};
  pid_t pid[2];
  pid[CONS] = spawn_worker(a, victim == CONS ? arm : NULL, consumer, NULL);
  pid[PROD] = spawn_worker(a, victim == PROD ? arm : NULL, producer, NULL);
  int alive = 2, crashes = 0;
  uint64_t redelivered = 0;
  while (alive) {
    int st;
    pid_t w = waitpid(-1, &st, 0);
    assert_true(w > 0);
    int side = w == pid[PROD] ? PROD : w == pid[CONS] ? CONS : -1;
    assert_true(side >= 0);
    uint32_t inc = 0, slot = slot_of_pid(a, w, &inc);
    assert_true(slot != 0);
    if (WIFSIGNALED(st)) {
      if (WTERMSIG(st) != SIGKILL) fail_msg("%s: side %d died of signal %d", point, side,
                                            WTERMSIG(st));
      crashes++;
      redelivered += crashing_reclaimer ? reap_with_crashing_reclaimer(a, slot, inc)
                                        : reap_slot(a, slot, inc);
      char why[256]; /* the lane is consistent before the side restarts */
      if (wr_chan_check(a, why, sizeof why)) fail_msg("%s: wr_chan_check: %s", point, why);
      pid[side] = spawn_worker(a, NULL, fns[side], NULL); /* restart, disarmed */
      continue;
    }
    if (WEXITSTATUS(st) != 0) fail_msg("%s: side %d exited %d", point, side, WEXITSTATUS(st));
    redelivered += reap_slot(a, slot, inc);
    alive--;
  }
  if (crashes != 1) fail_msg("%s: crash point hit %d times, want 1", point, crashes);
  assert_checks_green(a);
  wr_lane_stats st;
  assert_int_equal(wr_chan_stats(a, "crash", &st, 1), 1);
  assert_int_equal(st.sent, N);
  assert_int_equal(st.received, N);
  assert_int_equal(st.redelivered, redelivered);

  /* The row: records never logged, bytes not back after destroy. */
  uint64_t n = atomic_load(&sh->nlog), expect = 0, dups = 0, lost = N;
  assert_true(n <= LOG_MAX);
  static uint8_t seen[N];
  memset(seen, 0, sizeof seen);
  for (uint64_t k = 0; k < n; k++)
    if (sh->log[k] < N && !seen[sh->log[k]]++) lost--;
  assert_int_equal(wr_chan_destroy(a, "crash"), 0);
  uint64_t now = heap_bytes(a);
  crash_row(point, 1, now - base, 0, lost);
  if (crashing_reclaimer) crash_row("chan.reclaim.mid", 1, now - base, 0, lost);
  assert_int_equal(lost, 0);
  assert_int_equal(now, base);

  /* The log: every record, in order; a step back only as a redelivery. */
  for (uint64_t k = 0; k < n; k++) {
    uint64_t x = sh->log[k];
    if (x == expect)
      expect++;
    else if (x < expect)
      dups++;
    else
      fail_msg("%s: gap: got record %llu, expected %llu", point, (unsigned long long)x,
               (unsigned long long)expect);
  }
  assert_int_equal(expect, N);
  if (dups > redelivered) fail_msg("%s: %llu duplicates, %llu redelivered", point,
                                   (unsigned long long)dups, (unsigned long long)redelivered);
  if (victim == PROD) assert_int_equal(dups, 0);
  assert_checks_green(a);
}

#define CELL(fn, point, victim, rec, nth)                                                    \
  static void fn(void **state) {                                                           \
    (void)state;                                                                           \
    run_cell(point, nth, victim, rec);                                                          \
  }
CELL(test_prod_send_after_copy, "chan.send.after_copy", PROD, 0, 40)
CELL(test_prod_send_after_transfer, "chan.send.after_transfer", PROD, 0, 40)
CELL(test_prod_send_before_publish, "chan.send.before_publish", PROD, 0, 40)
CELL(test_prod_send_after_publish, "chan.send.after_publish", PROD, 0, 40)
CELL(test_prod_heap_transfer, "heap.transfer.after_shared", PROD, 0, 2)
CELL(test_prod_heap_alloc, "heap.alloc.after_tag", PROD, 0, 40)
CELL(test_cons_peek_after_mark, "chan.peek.after_mark", CONS, 0, 40)
CELL(test_cons_release_after_transfer, "chan.release.after_transfer", CONS, 0, 40)
CELL(test_cons_release_after_head, "chan.release.after_head", CONS, 0, 40)
CELL(test_cons_release_after_free, "chan.release.after_free", CONS, 0, 40)
CELL(test_cons_remote_free, "heap.remote_free.after_tag", CONS, 0, 40)
CELL(test_reclaimer_mid_cons, "chan.release.after_transfer", CONS, 1, 40)
CELL(test_reclaimer_mid_prod, "chan.send.after_transfer", PROD, 1, 40)

/* A creator killed after claiming its lanes, before binding the name. */
static int creator(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan_opts o = {.capacity = 16, .slot_size = 32, .producers = 2, .consumers = 3};
  return wr_chan_create(a, "half", &o) == 0 ? 0 : 30;
}

static int lanes_used(wr_arena *a) {
  int n = 0;
  for (uint32_t j = 0; j < WR__MAX_LANES; j++) n += atomic_load(&a->lanes[j]) != 0;
  return n;
}

static void test_create_after_lanes(void **state) {
  (void)state;
  wr_arena *a = arena;
  uint64_t base = heap_bytes(a);
  int lanes = lanes_used(a);
  pid_t pid = spawn_worker(a, "chan.create.after_lanes", creator, NULL);
  int st;
  uint32_t inc = 0, slot;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st));
  slot = slot_of_pid(a, pid, &inc);
  assert_true(slot != 0);
  assert_int_equal(lanes_used(a), lanes + 6); /* claimed, not bound */
  reap_slot(a, slot, inc);
  crash_row("chan.create.after_lanes", 1, heap_bytes(a) - base, 0, 0);
  assert_int_equal(wr_name_lookup(a, "half", NULL, NULL), -WR_ENOENT);
  assert_int_equal(lanes_used(a), lanes);
  assert_checks_green(a);
  assert_int_equal(heap_bytes(a), base);
  /* and the name is free for a creator that lives */
  pid = spawn_worker(a, NULL, creator, NULL);
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  slot = slot_of_pid(a, pid, &inc);
  reap_slot(a, slot, inc);
  assert_checks_green(a); /* the channel outlives its creator */
  assert_int_equal(wr_chan_destroy(a, "half"), 0);
  assert_int_equal(lanes_used(a), lanes);
  assert_int_equal(heap_bytes(a), base);
}

/* A destroyer killed after freeing the lanes, before unbinding the name:
 * reclaim finishes the job (intent DESTROY is rolled forward). */
static int destroyer(wr_arena *a, void *arg) {
  (void)arg;
  return wr_chan_destroy(a, "doomed") == 0 ? 0 : 31;
}

static void test_destroy_mid(void **state) {
  (void)state;
  wr_arena *a = arena;
  uint64_t base = heap_bytes(a);
  int lanes = lanes_used(a);
  wr_chan_opts o = {.capacity = 8, .slot_size = 16, .consumers = 2};
  assert_int_equal(wr_chan_create(a, "doomed", &o), 0);
  wr_chan *p;
  assert_int_equal(wr_chan_open(a, "doomed", WR_PRODUCER, 0, &p), 0);
  for (int i = 0; i < 6; i++) { /* blocks in flight die with the channel */
    void *b;
    assert_int_equal(wr_alloc(a, 300, &b), 0);
    assert_int_equal(wr_chan_send_block(p, b, 300, 0), 0);
  }
  wr_chan_detach(p);
  pid_t pid = spawn_worker(a, "chan.destroy.mid", destroyer, NULL);
  int st;
  uint32_t inc = 0, slot;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st));
  slot = slot_of_pid(a, pid, &inc);
  assert_true(slot != 0);
  assert_int_equal(wr_name_lookup(a, "doomed", NULL, NULL), 0); /* still bound */
  reap_slot(a, slot, inc);
  crash_row("chan.destroy.mid", 1, heap_bytes(a) - base, 0, 0);
  assert_int_equal(wr_name_lookup(a, "doomed", NULL, NULL), -WR_ENOENT);
  assert_int_equal(lanes_used(a), lanes);
  assert_checks_green(a);
  assert_int_equal(heap_bytes(a), base);
}

int main(void) {
  if (!wr_crash_points()[0]) return 77; /* built without crash points */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prod_send_after_copy),
      cmocka_unit_test(test_prod_send_after_transfer),
      cmocka_unit_test(test_prod_send_before_publish),
      cmocka_unit_test(test_prod_send_after_publish),
      cmocka_unit_test(test_prod_heap_transfer),
      cmocka_unit_test(test_prod_heap_alloc),
      cmocka_unit_test(test_cons_peek_after_mark),
      cmocka_unit_test(test_cons_release_after_transfer),
      cmocka_unit_test(test_cons_release_after_head),
      cmocka_unit_test(test_cons_release_after_free),
      cmocka_unit_test(test_cons_remote_free),
      cmocka_unit_test(test_reclaimer_mid_cons),
      cmocka_unit_test(test_reclaimer_mid_prod),
      cmocka_unit_test(test_create_after_lanes),
      cmocka_unit_test(test_destroy_mid),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
