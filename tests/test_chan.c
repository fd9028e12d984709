/*
 * test_chan.c: channels (lib/chan.c) with real processes: bad input,
 * inline and zero-copy records, ordering and content of millions of
 * records through one lane and a 2x2 lane group (checksums on both ends),
 * the lost-wake-up stress, timeouts, interrupts, keyed routing, stats, the
 * watchdog heartbeat.
 * The crash matrix is in test_chan_crash.c.
 *
 * WR_TEST_RECORDS overrides the record count of the streaming tests
 * (default 10 million).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "chan_util.h"

static wr_arena *arena;
static uint64_t nrecords = 10000000;

static int setup(void **state) {
  wr_arena_opts o = {.size = 64ull << 20};
  if (wr_arena_create(&o, &arena) != 0) return -1;
  const char *e = getenv("WR_TEST_RECORDS");
  if (e && *e) nrecords = strtoull(e, NULL, 10);
  (void)state;
  return 0;
}

static int teardown(void **state) {
  wr_arena_detach(arena);
  arena = NULL;
  (void)state;
  return 0;
}

/* Wait for a child and return its exit status (or 128 + signal), then reap
 * its slot as the supervisor would. */
static int join(wr_arena *a, pid_t pid, uint64_t *redelivered) {
  int st;
  uint32_t inc = 0, slot = slot_of_pid(a, pid, &inc);
  if (waitpid(pid, &st, 0) != pid) return -1;
  if (!slot) slot = slot_of_pid(a, pid, &inc);
  if (slot) {
    uint64_t r = reap_slot(a, slot, inc);
    if (redelivered) *redelivered += r;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------ bad input */

static void test_bad_input(void **state) {
  (void)state;
  wr_arena *a = arena;
  uint64_t base = heap_bytes(a);
  wr_chan_opts o = {.capacity = 0, .slot_size = 64};
  assert_int_equal(wr_chan_create(a, "bad", &o), -WR_EINVAL);
  o.capacity = 4;
  o.slot_size = 4;
  assert_int_equal(wr_chan_create(a, "bad", &o), -WR_EINVAL);
  o.slot_size = 64;
  o.producers = 4096;
  o.consumers = 2;
  assert_int_equal(wr_chan_create(a, "bad", &o), -WR_EINVAL);
  o.producers = o.consumers = 1;
  assert_int_equal(wr_chan_create(a, "", &o), -WR_EINVAL);
  char longname[80];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(wr_chan_create(a, longname, &o), -WR_ENAMETOOLONG);

  wr_chan *p, *c, *c2;
  assert_int_equal(wr_chan_open(a, "nope", WR_PRODUCER, 0, &p), -WR_ENOENT);
  void *blk;
  assert_int_equal(wr_alloc(a, 32, &blk), 0);
  assert_int_equal(wr_name_bind(a, "not-a-chan", WR_KIND_BLOCK, wr_off(a, blk)), 0);
  assert_int_equal(wr_chan_open(a, "not-a-chan", WR_CONSUMER, 0, &c), -WR_EKIND);
  assert_int_equal(wr_chan_stats(a, "not-a-chan", NULL, 0), -WR_EKIND);
  assert_int_equal(wr_chan_create(a, "not-a-chan", &o), -WR_EEXIST);
  assert_int_equal(wr_name_unbind(a, "not-a-chan"), 0);

  assert_int_equal(wr_chan_create(a, "small", &o), 0);
  assert_int_equal(wr_chan_create(a, "small", &o), -WR_EEXIST);
  assert_int_equal(wr_chan_open(a, "small", WR_PRODUCER, 1, &p), -WR_EINVAL);
  assert_int_equal(wr_chan_open(a, "small", 7, 0, &p), -WR_EINVAL);
  assert_int_equal(wr_chan_open(a, "small", WR_PRODUCER, 0, &p), 0);
  assert_int_equal(wr_chan_open(a, "small", WR_CONSUMER, 0, &c), 0);
  assert_int_equal(wr_chan_open(a, "small", WR_CONSUMER, 0, &c2), -WR_EAGAIN);

  char big[65] = {0};
  assert_int_equal(wr_chan_send(p, big, sizeof big, 0), -WR_EMSGSIZE);
  assert_int_equal(wr_chan_send(c, big, 8, 0), -WR_EINVAL);
  wr_rec r;
  assert_int_equal(wr_chan_peek(p, &r, 0), -WR_EINVAL);
  assert_int_equal(wr_chan_peek(c, &r, 0), -WR_EAGAIN);
  assert_int_equal(wr_chan_peek(c, &r, 1000000), -WR_ETIMEDOUT);
  for (int i = 0; i < 4; i++) assert_int_equal(wr_chan_send(p, &i, sizeof i, 0), 0);
  assert_int_equal(wr_chan_send(p, big, 8, 0), -WR_EAGAIN);
  assert_int_equal(wr_chan_send(p, big, 8, 1000000), -WR_ETIMEDOUT);
  /* a record does not fit the receiver's buffer: it stays first */
  char small[2];
  assert_int_equal(wr_chan_recv(c, small, sizeof small, 0), -WR_EMSGSIZE);
  int v = -1;
  assert_int_equal(wr_chan_recv(c, &v, sizeof v, 0), (int)sizeof v);
  assert_int_equal(v, 0);
  /* releasing a record twice, or one never peeked */
  assert_int_equal(wr_chan_peek(c, &r, 0), 0);
  assert_int_equal(wr_chan_release(c, &r), 0);
  assert_int_equal(wr_chan_release(c, &r), -WR_EINVAL);
  r.seq += 5;
  assert_int_equal(wr_chan_release(c, &r), -WR_EINVAL);
  void *taken;
  assert_int_equal(wr_chan_peek(c, &r, 0), 0);
  assert_int_equal(wr_rec_take(c, &r, &taken), -WR_EINVAL); /* not a block record */
  assert_int_equal(wr_chan_release(c, &r), 0);
  /* a block this worker does not own */
  assert_int_equal(wr_chan_send_block(p, big, 8, 0), -WR_EINVAL);

  assert_int_equal(wr_chan_close(p), 0);
  assert_int_equal(wr_chan_send(p, big, 8, 0), -WR_ECLOSED);
  assert_int_equal(wr_chan_recv(c, &v, sizeof v, 0), (int)sizeof v); /* drains first */
  assert_int_equal(v, 3);
  assert_int_equal(wr_chan_peek(c, &r, -1), -WR_EOF);
  assert_checks_green(a);
  wr_chan_detach(p);
  wr_chan_detach(c);
  assert_int_equal(wr_chan_destroy(a, "small"), 0);
  assert_int_equal(wr_chan_destroy(a, "small"), -WR_ENOENT);
  assert_checks_green(a);
  assert_int_equal(heap_bytes(a), base);
}

/* ------------------------------------------------------------ basics, stats, foreach */

static int count_chan(const char *name, const wr_chan_opts *o, void *ctx) {
  if (strcmp(name, "basic") == 0 && o->capacity == 8 && o->slot_size == 24 && o->consumers == 2)
    ++*(int *)ctx;
  return 0;
}

static void test_batch_stats_foreach(void **state) {
  (void)state;
  wr_arena *a = arena;
  uint64_t base = heap_bytes(a);
  wr_chan_opts o = {.capacity = 5, .slot_size = 24, .consumers = 2}; /* capacity -> 8 */
  assert_int_equal(wr_chan_create(a, "basic", &o), 0);
  int found = 0;
  assert_int_equal(wr_chan_foreach(a, count_chan, &found), 0);
  assert_int_equal(found, 1);
  wr_chan *p, *c0, *c1;
  assert_int_equal(wr_chan_open(a, "basic", WR_PRODUCER, 0, &p), 0);
  assert_int_equal(wr_chan_open(a, "basic", WR_CONSUMER, 0, &c0), 0);
  assert_int_equal(wr_chan_open(a, "basic", WR_CONSUMER, 1, &c1), 0);
  uint64_t vals[20];
  wr_msg m[20];
  for (int i = 0; i < 20; i++) {
    vals[i] = (uint64_t)i;
    m[i] = (wr_msg){.data = &vals[i], .len = 8};
  }
  /* 2 lanes x 8 slots: a batch of 20 stops at 16 */
  assert_int_equal(wr_chan_send_batch(p, m, 20, 0), 16);
  wr_lane_stats st[4];
  assert_int_equal(wr_chan_stats(a, "basic", st, 4), 2);
  assert_int_equal(st[0].sent + st[1].sent, 16);
  assert_int_equal(st[0].depth, 8);
  assert_int_equal(st[0].capacity, 8);
  assert_int_equal(st[0].hwm, 8);
  assert_int_equal(st[0].bytes, 64);
  assert_int_equal(st[1].consumer, 1);
  assert_int_equal(st[0].producer_tag, wr_self_tag(a));
  wr_rec r[8];
  uint64_t sum = 0;
  for (wr_chan *c = c0; c; c = c == c0 ? c1 : NULL) {
    int n = wr_chan_peek_batch(c, r, 8, 0);
    assert_int_equal(n, 8);
    for (int i = 0; i < n; i++) {
      uint64_t x;
      memcpy(&x, r[i].data, 8);
      sum += x;
      assert_int_equal(r[i].seq, (uint64_t)i);
    }
    assert_int_equal(wr_chan_release(c, &r[n - 1]), 0);
  }
  assert_int_equal(sum, 15 * 16 / 2);
  assert_int_equal(wr_chan_stats(a, "basic", st, 4), 2);
  assert_int_equal(st[0].received, 8);
  assert_int_equal(st[0].depth, 0);
  assert_true(st[0].full_waits >= 1);
  assert_checks_green(a);
  wr_chan_detach(p);
  wr_chan_detach(c0);
  wr_chan_detach(c1);
  assert_int_equal(wr_chan_destroy(a, "basic"), 0);
  assert_int_equal(heap_bytes(a), base);
}

/* ------------------------------------------------------------ keyed routing */

static void test_keyed(void **state) {
  (void)state;
  wr_arena *a = arena;
  wr_chan_opts o = {.capacity = 64, .slot_size = 16, .consumers = 3, .flags = WR_CHAN_KEYED};
  assert_int_equal(wr_chan_create(a, "keyed", &o), 0);
  wr_chan *p, *c[3];
  assert_int_equal(wr_chan_open(a, "keyed", WR_PRODUCER, 0, &p), 0);
  for (uint32_t i = 0; i < 3; i++)
    assert_int_equal(wr_chan_open(a, "keyed", WR_CONSUMER, i, &c[i]), 0);
  for (uint64_t k = 0; k < 30; k++) assert_int_equal(wr_chan_send_key(p, k % 5, &k, 8, 0), 0);
  int owner[5] = {-1, -1, -1, -1, -1};
  int total = 0;
  for (int i = 0; i < 3; i++) {
    wr_rec r;
    while (wr_chan_peek(c[i], &r, 0) == 0) {
      assert_true(r.key < 5);
      if (owner[r.key] < 0) owner[r.key] = i;
      assert_int_equal(owner[r.key], i); /* one key, one consumer */
      assert_int_equal(wr_chan_release(c[i], &r), 0);
      total++;
    }
  }
  assert_int_equal(total, 30);
  wr_chan_detach(p);
  for (int i = 0; i < 3; i++) wr_chan_detach(c[i]);
  assert_int_equal(wr_chan_destroy(a, "keyed"), 0);
}

/* ------------------------------------------------------------ close */

/* The supervisor closes the lanes of a producer that exits for good; a
 * consumer that closes makes its producers' sends fail. */
static void test_close_side(void **state) {
  (void)state;
  wr_arena *a = arena;
  wr_chan_opts o = {.capacity = 4, .slot_size = 8, .producers = 2, .consumers = 2};
  assert_int_equal(wr_chan_create(a, "cl", &o), 0);
  wr_chan *p0, *c0, *c1;
  assert_int_equal(wr_chan_open(a, "cl", WR_PRODUCER, 0, &p0), 0);
  assert_int_equal(wr_chan_open(a, "cl", WR_CONSUMER, 0, &c0), 0);
  assert_int_equal(wr_chan_open(a, "cl", WR_CONSUMER, 1, &c1), 0);
  uint64_t x = 7;
  assert_int_equal(wr_chan_send(p0, &x, 8, 0), 0);
  assert_int_equal(wr_chan_close_side(a, "cl", WR_PRODUCER, 2), -WR_EINVAL);
  assert_int_equal(wr_chan_close_side(a, "nope", WR_PRODUCER, 0), -WR_ENOENT);
  /* producer 1 never came: closing it and producer 0 ends the stream */
  assert_int_equal(wr_chan_close_side(a, "cl", WR_PRODUCER, 1), 0);
  wr_rec r;
  assert_int_equal(wr_chan_peek(c1, &r, 0), -WR_EAGAIN); /* producer 0 still open */
  assert_int_equal(wr_chan_close_side(a, "cl", WR_PRODUCER, 0), 0);
  assert_int_equal(wr_chan_send(p0, &x, 8, 0), -WR_ECLOSED);
  uint64_t y = 0;
  int got = wr_chan_recv(c0, &y, 8, 0);
  if (got < 0) got = wr_chan_recv(c1, &y, 8, 0);
  assert_int_equal(got, 8); /* drained first */
  assert_int_equal(y, 7);
  assert_int_equal(wr_chan_peek(c0, &r, -1), -WR_EOF);
  assert_int_equal(wr_chan_peek(c1, &r, -1), -WR_EOF);
  wr_lane_stats st[4];
  assert_int_equal(wr_chan_stats(a, "cl", st, 4), 4);
  for (int i = 0; i < 4; i++) assert_true(st[i].closed != 0);
  wr_chan_detach(p0);
  wr_chan_detach(c0);
  wr_chan_detach(c1);
  assert_int_equal(wr_chan_destroy(a, "cl"), 0);

  /* a consumer closing: its producer's sends to it fail */
  o.producers = o.consumers = 1;
  assert_int_equal(wr_chan_create(a, "cl", &o), 0);
  assert_int_equal(wr_chan_open(a, "cl", WR_PRODUCER, 0, &p0), 0);
  assert_int_equal(wr_chan_open(a, "cl", WR_CONSUMER, 0, &c0), 0);
  assert_int_equal(wr_chan_close(c0), 0);
  assert_int_equal(wr_chan_send(p0, &x, 8, -1), -WR_ECLOSED);
  wr_chan_detach(p0);
  wr_chan_detach(c0);
  assert_int_equal(wr_chan_destroy(a, "cl"), 0);
  assert_checks_green(a);
}

/* ------------------------------------------------------------ zero-copy */

#define ZC_N 2000

static int zc_producer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *p;
  if (wr_chan_open(a, "zc", WR_PRODUCER, 0, &p)) return 10;
  for (uint64_t i = 0; i < ZC_N; i++) {
    size_t len = i % 7 == 0 ? 70000 : 100 + (i * 37) % 16000; /* large and small blocks */
    void *b;
    if (wr_alloc(a, len, &b)) return 11;
    rec_fill(b, len, i);
    if (wr_chan_send_block(p, b, len, -1)) return 12;
    if (wr__heap_owner(a, wr_off(a, b)) == wr_self_tag(a)) return 13; /* moved */
  }
  wr_chan_close(p);
  wr_chan_detach(p);
  return 0;
}

static int zc_consumer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *c;
  if (wr_chan_open(a, "zc", WR_CONSUMER, 0, &c)) return 20;
  for (uint64_t i = 0;; i++) {
    wr_rec r;
    int rc = wr_chan_peek(c, &r, -1);
    if (rc == -WR_EOF) return i == ZC_N ? 0 : 21;
    if (rc || !(r.flags & WR_REC_BLOCK) || r.seq != i) return 22;
    if (!rec_ok(r.data, r.len, i)) return 23;
    if (i % 2) {
      void *b;
      if (wr_rec_take(c, &r, &b) || b != r.data) return 24;
      if (wr__heap_owner(a, wr_off(a, b)) != wr_self_tag(a)) return 25;
      if (wr_free(a, b)) return 26;
    } else if (wr_chan_release(c, &r)) {
      return 27;
    }
  }
}

static void test_zero_copy(void **state) {
  (void)state;
  wr_arena *a = arena;
  uint64_t base = heap_bytes(a);
  wr_chan_opts o = {.capacity = 16, .slot_size = 8};
  assert_int_equal(wr_chan_create(a, "zc", &o), 0);
  pid_t cp = spawn_worker(a, NULL, zc_consumer, NULL);
  pid_t pp = spawn_worker(a, NULL, zc_producer, NULL);
  assert_int_equal(join(a, pp, NULL), 0);
  assert_int_equal(join(a, cp, NULL), 0);
  assert_checks_green(a);
  wr_lane_stats st;
  assert_int_equal(wr_chan_stats(a, "zc", &st, 1), 1);
  assert_int_equal(st.sent, ZC_N);
  assert_int_equal(st.received, ZC_N);
  assert_int_equal(wr_chan_destroy(a, "zc"), 0);
  assert_checks_green(a);
  assert_int_equal(heap_bytes(a), base);

  /* destroying a channel with blocks in flight frees them */
  assert_int_equal(wr_chan_create(a, "zc", &o), 0);
  wr_chan *p;
  assert_int_equal(wr_chan_open(a, "zc", WR_PRODUCER, 0, &p), 0);
  for (int i = 0; i < 5; i++) {
    void *b;
    assert_int_equal(wr_alloc(a, 1000, &b), 0);
    assert_int_equal(wr_chan_send_block(p, b, 1000, 0), 0);
  }
  wr_heap_usage u;
  assert_int_equal(wr_heap_check(a, &u, NULL, 0), 0);
  assert_true(u.lane_bytes >= 5 * 1000);
  wr_chan_detach(p);
  assert_int_equal(wr_chan_destroy(a, "zc"), 0);
  assert_checks_green(a);
  assert_int_equal(heap_bytes(a), base);
}

/* Zero-copy of small blocks: the consumer frees each block remotely (into
 * the producer's spans). The producer must reuse those blocks, not carve
 * new spans until the arena is full (it did before heap.c's remote_frees
 * sweep: high-water 250 of 250 pages). 20000 x 8 KiB = 160 MiB through a
 * 16 MiB arena, at most 16 records in flight: the heap must stay small. */
#define SMALL_N 20000

static int small_producer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *p;
  if (wr_chan_open(a, "zs", WR_PRODUCER, 0, &p)) return 10;
  for (uint64_t i = 0; i < SMALL_N; i++) {
    void *b;
    if (wr_alloc(a, 8192, &b)) return 11;
    memcpy(b, &i, sizeof i);
    if (wr_chan_send_block(p, b, 8192, -1)) return 12;
  }
  wr_chan_close(p);
  wr_chan_detach(p);
  return 0;
}

static int small_consumer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *c;
  if (wr_chan_open(a, "zs", WR_CONSUMER, 0, &c)) return 20;
  for (uint64_t i = 0;; i++) {
    wr_rec r;
    int rc = wr_chan_peek(c, &r, -1);
    if (rc == -WR_EOF) return i == SMALL_N ? 0 : 21;
    if (rc || *(const uint64_t *)r.data != i || wr_chan_release(c, &r)) return 22;
  }
}

static void test_zero_copy_reuses_remote_frees(void **state) {
  (void)state;
  wr_arena *a;
  wr_arena_opts ao = {.size = 16ull << 20};
  assert_int_equal(wr_arena_create(&ao, &a), 0);
  wr_chan_opts o = {.capacity = 16, .slot_size = 8};
  assert_int_equal(wr_chan_create(a, "zs", &o), 0);
  pid_t cp = spawn_worker(a, NULL, small_consumer, NULL);
  pid_t pp = spawn_worker(a, NULL, small_producer, NULL);
  assert_int_equal(join(a, pp, NULL), 0);
  assert_int_equal(join(a, cp, NULL), 0);
  wr_heap_stats hs;
  assert_int_equal(wr_heap_stats_get(a, &hs), 0);
  print_message("8 KiB zero-copy: page high-water %llu of %llu\n",
                (unsigned long long)hs.pages_hwm, (unsigned long long)hs.pages_total);
  assert_true(hs.pages_hwm < hs.pages_total / 4);
  assert_checks_green(a);
  assert_int_equal(wr_chan_destroy(a, "zs"), 0);
  wr_arena_detach(a);
}

/* ------------------------------------------------------------ streaming order */

struct stream_res {
  uint64_t sent[4], sent_sum[4]; /* per producer */
  uint64_t recv[4], recv_sum[4]; /* per consumer */
  _Atomic uint64_t late_wakeups; /* summed over every process */
  _Atomic uint64_t waits;        /* full + empty waits, from the lane stats */
};
static struct stream_res *res;

struct stream_arg {
  const char *name;
  uint32_t index, nprod, ncons;
  uint64_t n; /* records per producer */
  int batch;  /* 1: send_batch / peek_batch; 0: single records; -1: single, never spin */
};

/* 64-byte record: producer id, its sequence number, a pattern. */
struct rec64 {
  uint64_t producer, seq;
  uint64_t pat[6];
};

static void rec64_make(struct rec64 *r, uint64_t p, uint64_t i) {
  r->producer = p;
  r->seq = i;
  for (int k = 0; k < 6; k++) r->pat[k] = mix64(i * 8 + (uint64_t)k + (p << 56));
}
static uint64_t rec64_sum(const struct rec64 *r) {
  uint64_t h = mix64(r->producer ^ (r->seq << 3));
  for (int k = 0; k < 6; k++) h += mix64(r->pat[k] + (uint64_t)k);
  return h;
}

static int stream_producer(wr_arena *a, void *argp) {
  struct stream_arg *g = argp;
  wr_chan *p;
  if (wr_chan_open(a, g->name, WR_PRODUCER, g->index, &p)) return 30;
  if (g->batch < 0) wr__chan_spin_ns = 0; /* every wait takes the futex path */
  uint64_t sum = 0;
  struct rec64 recs[32];
  wr_msg m[32];
  for (uint64_t i = 0; i < g->n;) {
    if (g->batch > 0) {
      uint64_t k = g->n - i < 32 ? g->n - i : 32;
      for (uint64_t j = 0; j < k; j++) {
        rec64_make(&recs[j], g->index, i + j);
        m[j] = (wr_msg){.data = &recs[j], .len = sizeof recs[j]};
      }
      int rc = wr_chan_send_batch(p, m, k, -1);
      if (rc <= 0) return 31;
      for (int j = 0; j < rc; j++) sum += rec64_sum(&recs[j]);
      i += (uint64_t)rc;
    } else {
      rec64_make(&recs[0], g->index, i);
      if (wr_chan_send(p, &recs[0], sizeof recs[0], -1)) return 32;
      sum += rec64_sum(&recs[0]);
      i++;
    }
  }
  res->sent[g->index] = g->n;
  res->sent_sum[g->index] = sum;
  atomic_fetch_add(&res->late_wakeups, atomic_load(&wr__chan_late_wakeups));
  wr_chan_close(p);
  wr_chan_detach(p);
  return 0;
}

static int stream_consumer(wr_arena *a, void *argp) {
  struct stream_arg *g = argp;
  wr_chan *c;
  if (wr_chan_open(a, g->name, WR_CONSUMER, g->index, &c)) return 40;
  if (g->batch < 0) wr__chan_spin_ns = 0;
  uint64_t next[4] = {0, 0, 0, 0}, first[4] = {1, 1, 1, 1}, sum = 0, n = 0;
  wr_rec r[64];
  for (;;) {
    int k;
    if (g->batch > 0) {
      k = wr_chan_peek_batch(c, r, 64, -1);
    } else {
      k = wr_chan_peek(c, r, -1);
      if (k == 0) k = 1;
    }
    if (k == -WR_EOF) break;
    if (k <= 0) return 41;
    for (int j = 0; j < k; j++) {
      struct rec64 x;
      if (r[j].len != sizeof x) return 42;
      memcpy(&x, r[j].data, sizeof x);
      if (x.producer >= g->nprod) return 43;
      /* per producer, records reach one consumer in order (round-robin
       * spreads them, so only increasing, not consecutive, unless 1x1) */
      if (!first[x.producer] && x.seq < next[x.producer]) return 44;
      if (g->nprod == 1 && g->ncons == 1 && x.seq != next[0]) return 45;
      struct rec64 want;
      rec64_make(&want, x.producer, x.seq);
      if (memcmp(&want, &x, sizeof x) != 0) return 46;
      first[x.producer] = 0;
      next[x.producer] = x.seq + 1;
      sum += rec64_sum(&x);
      n++;
    }
    if (wr_chan_release(c, &r[k - 1])) return 47;
  }
  res->recv[g->index] = n;
  res->recv_sum[g->index] = sum;
  atomic_fetch_add(&res->late_wakeups, atomic_load(&wr__chan_late_wakeups));
  wr_chan_detach(c);
  return 0;
}

static void run_stream(uint32_t np, uint32_t nc, uint32_t cap, int batch, uint64_t total) {
  wr_arena *a = arena;
  uint64_t base = heap_bytes(a);
  memset(res, 0, sizeof *res);
  wr_chan_opts o = {.capacity = cap, .slot_size = 64, .producers = np, .consumers = nc};
  assert_int_equal(wr_chan_create(a, "stream", &o), 0);
  struct stream_arg pa[4], ca[4];
  pid_t pids[8];
  int k = 0;
  /* Sleep in 60 s slices: a wake-up that arrives by a slice ending is then a
   * lost one, not a waker that the loaded machine descheduled for 20 ms. */
  int64_t slice = wr__wait_slice_ns;
  wr__wait_slice_ns = 60000000000ll;
  for (uint32_t i = 0; i < nc; i++) {
    ca[i] = (struct stream_arg){"stream", i, np, nc, 0, batch};
    pids[k++] = spawn_worker(a, NULL, stream_consumer, &ca[i]);
  }
  for (uint32_t i = 0; i < np; i++) {
    pa[i] = (struct stream_arg){"stream", i, np, nc, total / np, batch};
    pids[k++] = spawn_worker(a, NULL, stream_producer, &pa[i]);
  }
  for (int i = 0; i < k; i++) assert_int_equal(join(a, pids[i], NULL), 0);
  wr__wait_slice_ns = slice;
  uint64_t s = 0, ss = 0, r = 0, rs = 0;
  for (uint32_t i = 0; i < np; i++) s += res->sent[i], ss += res->sent_sum[i];
  for (uint32_t i = 0; i < nc; i++) r += res->recv[i], rs += res->recv_sum[i];
  assert_int_equal(s, total / np * np);
  assert_int_equal(r, s);
  assert_int_equal(rs, ss);
  wr_lane_stats st[16];
  int nl = wr_chan_stats(a, "stream", st, 16);
  assert_int_equal(nl, (int)(np * nc));
  for (int i = 0; i < nl; i++) {
    assert_int_equal(st[i].depth, 0);
    assert_true(st[i].hwm <= st[i].capacity);
    assert_int_equal(st[i].redelivered, 0);
    assert_int_equal(st[i].bytes, st[i].sent * 64);
    res->waits += st[i].full_waits + st[i].empty_waits;
  }
  /* every wake-up arrived by futex_wake, none by a wait slice running out */
  assert_int_equal(atomic_load(&res->late_wakeups), 0);
  assert_checks_green(a);
  assert_int_equal(wr_chan_destroy(a, "stream"), 0);
  assert_int_equal(heap_bytes(a), base);
}

static void test_order_one_lane(void **state) {
  (void)state;
  run_stream(1, 1, 1024, 1, nrecords);
}

static void test_order_2x2(void **state) {
  (void)state;
  run_stream(2, 2, 256, 0, nrecords);
}

/* Tiny capacity, blocking on both sides, a record at a time: every record
 * crosses the wait/wake path; a lost wake-up hangs and the alarm fails it. */
static void test_lost_wakeup(void **state) {
  (void)state;
  uint64_t n = nrecords / 20;
  run_stream(1, 1, 1, 0, 2 * n); /* spin, then sleep */
  uint64_t waits = res->waits;
  run_stream(1, 1, 1, -1, n); /* sleep at once: the race window every time */
  waits += res->waits;
  run_stream(2, 2, 1, -1, n);
  waits += res->waits;
  print_message("lost-wakeup stress: %llu records, %llu waits, 0 late wake-ups\n",
                (unsigned long long)(4 * n), (unsigned long long)waits);
  assert_true(waits > 0); /* the wait path was exercised */
}

/* ------------------------------------------------------------ timeouts, interrupts */

static void on_usr1(int sig) {
  (void)sig;
  wr_interrupt();
}

static int intr_consumer(wr_arena *a, void *arg) {
  (void)arg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  wr_chan *c;
  if (wr_chan_open(a, "intr", WR_CONSUMER, 0, &c)) return 50;
  res->recv[0] = 1; /* ready */
  wr_rec r;
  int rc = wr_chan_peek(c, &r, -1);
  wr_chan_detach(c);
  return rc == -WR_EINTR ? 0 : 51;
}

static void test_interrupt(void **state) {
  (void)state;
  wr_arena *a = arena;
  memset(res, 0, sizeof *res);
  wr_chan_opts o = {.capacity = 2, .slot_size = 8};
  assert_int_equal(wr_chan_create(a, "intr", &o), 0);
  pid_t pid = spawn_worker(a, NULL, intr_consumer, NULL);
  assert_true(pid > 1);
  while (!__atomic_load_n(&res->recv[0], __ATOMIC_ACQUIRE)) usleep(1000);
  int st;
  /* keep signalling until it returns: the first may land before the wait */
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (pid > 1) kill(pid, SIGUSR1);
    usleep(2000);
  }
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  uint32_t inc = 0, slot = slot_of_pid(a, pid, &inc);
  assert_true(slot != 0);
  reap_slot(a, slot, inc);
  /* an interrupt before a wait is delivered to that wait */
  wr_chan *c;
  assert_int_equal(wr_chan_open(a, "intr", WR_CONSUMER, 0, &c), 0);
  wr_interrupt();
  wr_rec r;
  assert_int_equal(wr_chan_peek(c, &r, -1), -WR_EINTR);
  assert_int_equal(wr_chan_peek(c, &r, 1000), -WR_ETIMEDOUT);
  wr_chan_detach(c);
  assert_int_equal(wr_chan_destroy(a, "intr"), 0);
}

/* ------------------------------------------------------------ heartbeat */

static uint64_t heartbeat(wr_arena *a, uint32_t slot) {
  wr_slot_info in;
  if (wr_slot_info_get(a, slot, &in)) fail_msg("wr_slot_info_get(%u)", slot);
  return in.heartbeat;
}

static int hb_blocked_consumer(wr_arena *a, void *arg) {
  (void)arg;
  wr_chan *c;
  if (wr_chan_open(a, "hb", WR_CONSUMER, 0, &c)) return 50;
  __atomic_store_n(&res->recv[0], 1, __ATOMIC_RELEASE); /* about to block */
  wr_rec r;
  int rc = wr_chan_peek(c, &r, -1);
  __atomic_store_n(&res->recv[1], 1, __ATOMIC_RELEASE); /* unblocked */
  wr_chan_detach(c);
  return rc == 0 ? 0 : 51;
}

/* The watchdog's heartbeat (the slot's counter) moves on each send and
 * each peek, and keeps moving while a consumer is blocked on an empty
 * channel (every wait slice): a blocked worker is idle, not stuck. */
static void test_heartbeat(void **state) {
  (void)state;
  wr_arena *a = arena;
  memset(res, 0, sizeof *res);
  wr_chan_opts o = {.capacity = 4, .slot_size = 8};
  assert_int_equal(wr_chan_create(a, "hb", &o), 0);
  wr_chan *p, *c;
  assert_int_equal(wr_chan_open(a, "hb", WR_PRODUCER, 0, &p), 0);
  assert_int_equal(wr_chan_open(a, "hb", WR_CONSUMER, 0, &c), 0);
  uint32_t me = wr_self_slot(a);
  uint64_t h0 = heartbeat(a, me);
  assert_int_equal(wr_chan_send(p, "x", 1, 0), 0);
  uint64_t h1 = heartbeat(a, me);
  assert_true(h1 != h0);
  wr_rec r;
  assert_int_equal(wr_chan_peek(c, &r, 0), 0);
  assert_true(heartbeat(a, me) != h1);
  assert_int_equal(wr_chan_release(c, &r), 0);
  wr_chan_detach(c);

  pid_t pid = spawn_worker(a, NULL, hb_blocked_consumer, NULL);
  while (!__atomic_load_n(&res->recv[0], __ATOMIC_ACQUIRE))
    usleep(1000);
  uint32_t inc = 0, slot = slot_of_pid(a, pid, &inc);
  assert_true(slot != 0);
  uint64_t last = heartbeat(a, slot);
  int moves = 0;
  for (int i = 0; i < 30000 && moves < 5; i++) { /* bounded at 30 s, never timed */
    usleep(1000);
    uint64_t h = heartbeat(a, slot);
    if (h != last) moves++, last = h;
  }
  assert_int_equal(moves, 5);
  assert_int_equal(__atomic_load_n(&res->recv[1], __ATOMIC_ACQUIRE), 0); /* still blocked */
  assert_int_equal(wr_chan_send(p, "y", 1, 0), 0);
  assert_int_equal(join(a, pid, NULL), 0);
  wr_chan_detach(p);
  assert_int_equal(wr_chan_destroy(a, "hb"), 0);
}

int main(void) {
  res = shared_mem(sizeof *res);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_batch_stats_foreach),
      cmocka_unit_test(test_keyed),
      cmocka_unit_test(test_close_side),
      cmocka_unit_test(test_zero_copy),
      cmocka_unit_test(test_zero_copy_reuses_remote_frees),
      cmocka_unit_test(test_interrupt),
      cmocka_unit_test(test_heartbeat),
      cmocka_unit_test(test_order_one_lane),
      cmocka_unit_test(test_order_2x2),
      cmocka_unit_test(test_lost_wakeup),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
