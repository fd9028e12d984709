/* test_map.c: the shared hash map and array: put/get/del, group
 * (read-modify-write) from several processes, block values and their
 * ownership, and the crash matrix (a writer killed mid-write leaves the
 * stripe as before or after the whole operation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "crash_row.h"
#include "helpers.h"

static wr_map *mk_map(wr_arena *a, const char *name, uint32_t cap, uint32_t stripes) {
  wr_map_opts o = {.capacity = cap, .key_max = 16, .value_max = 64, .stripes = stripes};
  assert_int_equal(wr_map_create(a, name, &o), 0);
  wr_map *m;
  assert_int_equal(wr_map_open(a, name, &m), 0);
  return m;
}

static void test_basic(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  wr_map_opts bad = {0, 16, 64, 0};
  assert_int_equal(wr_map_create(a, "bad", &bad), -WR_EINVAL);
  wr_map *m = mk_map(a, "m", 1024, 0);
  char buf[64];
  assert_int_equal(wr_map_get(m, "k", 1, buf, sizeof buf), -WR_ENOENT);
  assert_int_equal(wr_map_put(m, "k", 1, "v1", 2), 0);
  assert_int_equal(wr_map_get(m, "k", 1, buf, sizeof buf), 2);
  assert_memory_equal(buf, "v1", 2);
  assert_int_equal(wr_map_put(m, "k", 1, "value2", 6), 0);
  assert_int_equal(wr_map_get(m, "k", 1, buf, sizeof buf), 6);
  assert_int_equal(wr_map_count(m), 1);
  assert_int_equal(wr_map_put(m, "0123456789abcdefX", 17, "v", 1), -WR_EMSGSIZE);
  char big[65] = {0};
  assert_int_equal(wr_map_put(m, "k", 1, big, 65), -WR_EMSGSIZE);
  for (int i = 0; i < 500; i++) {
    char k[16];
    int n = snprintf(k, sizeof k, "key%d", i);
    assert_int_equal(wr_map_put(m, k, (size_t)n, &i, sizeof i), 0);
  }
  assert_int_equal(wr_map_count(m), 501);
  for (int i = 0; i < 500; i += 2) {
    char k[16];
    int n = snprintf(k, sizeof k, "key%d", i);
    assert_int_equal(wr_map_del(m, k, (size_t)n), 0);
    assert_int_equal(wr_map_del(m, k, (size_t)n), -WR_ENOENT);
  }
  assert_int_equal(wr_map_count(m), 251);
  for (int i = 1; i < 500; i += 2) {
    char k[16];
    int n = snprintf(k, sizeof k, "key%d", i), v = -1;
    assert_int_equal(wr_map_get(m, k, (size_t)n, &v, sizeof v), 4);
    assert_int_equal(v, i);
  }
  /* A stripe fills up: -WR_ENOMEM, not a corrupt table. */
  wr_map *small = mk_map(a, "small", 4, 1);
  for (int i = 0; i < 4; i++)
    assert_int_equal(wr_map_put(small, &i, sizeof i, "x", 1), 0);
  int five = 5;
  assert_int_equal(wr_map_put(small, &five, sizeof five, "x", 1), -WR_ENOMEM);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "m", &s), -WR_EKIND);
  wr_map_close(small);
  wr_map_close(m);
  arena_done(a);
}

static int add_one(void *val, uint32_t *len, uint32_t cap, int exists, void *ctx) {
  (void)cap;
  (void)ctx;
  uint64_t v = 0;
  if (exists) memcpy(&v, val, 8);
  v++;
  memcpy(val, &v, 8);
  *len = 8;
  return WR_MAP_KEEP;
}

static int refuse(void *val, uint32_t *len, uint32_t cap, int exists, void *ctx) {
  (void)cap;
  (void)ctx;
  (void)exists;
  memset(val, 0xff, 8); /* scribble, then refuse: the value is restored */
  *len = 8;
  return -WR_EINVAL;
}

#define ROUNDS 1000

static int arr_add(void *elem, void *ctx) {
  (void)ctx;
  uint64_t v;
  memcpy(&v, elem, 8);
  v++;
  memcpy(elem, &v, 8);
  return 0;
}

static int worker_group2(wr_arena *a, void *arg) {
  (void)arg;
  wr_map *m;
  wr_array *ar;
  if (wr_map_open(a, "m", &m) || wr_array_open(a, "ar", &ar)) return 2;
  for (int i = 0; i < ROUNDS; i++) {
    if (wr_map_group(m, "ctr", 3, add_one, NULL)) return 3;
    if (wr_array_group(ar, (uint32_t)(i % 100), arr_add, NULL)) return 4;
  }
  wr_map_close(m);
  wr_array_close(ar);
  return 0;
}

static void test_group(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  wr_map *m = mk_map(a, "m", 64, 4);
  assert_int_equal(wr_array_create(a, "ar", 100, 8), 0);
  wr_array *ar;
  assert_int_equal(wr_array_open(a, "ar", &ar), 0);
  assert_int_equal(wr_array_len(ar), 100);
  tl_run_all(a, 3, worker_group2, NULL);
  uint64_t v = 0;
  assert_int_equal(wr_map_get(m, "ctr", 3, &v, sizeof v), 8);
  assert_int_equal(v, 3 * ROUNDS);
  for (uint32_t i = 0; i < 100; i++) {
    assert_int_equal(wr_array_get(ar, i, &v), 0);
    assert_int_equal(v, 3 * ROUNDS / 100);
  }
  assert_int_equal(wr_map_group(m, "ctr", 3, refuse, NULL), -WR_EINVAL);
  assert_int_equal(wr_map_get(m, "ctr", 3, &v, sizeof v), 8);
  assert_int_equal(v, 3 * ROUNDS);
  assert_int_equal(wr_array_get(ar, 100, &v), -WR_EINVAL);
  wr_array_close(ar);
  wr_map_close(m);
  wr_arena_detach(a);
}

static void test_blocks(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  wr_map *m = mk_map(a, "m", 64, 4);
  void *b1, *b2;
  assert_int_equal(wr_alloc(a, 1000, &b1), 0);
  assert_int_equal(wr_alloc(a, 40000, &b2), 0);
  strcpy(b1, "first");
  assert_int_equal(wr_map_put_block(m, "b", 1, b1), 0);
  assert_int_equal(wr_free(a, b1), -WR_ENOTOWNER); /* the map's now */
  void *got;
  assert_int_equal(wr_map_get_block(m, "b", 1, &got), 0);
  assert_ptr_equal(got, b1);
  heap_ok(a, NULL);
  assert_int_equal(wr_map_put_block(m, "b", 1, b2), 0); /* b1 freed */
  assert_int_equal(wr_heap_bytes_owned(a, wr_self_tag(a)), 0);
  heap_ok(a, NULL);
  assert_int_equal(wr_map_put(m, "b", 1, "plain", 5), 0); /* b2 freed */
  wr_heap_usage u;
  assert_int_equal(wr_heap_check(a, &u, NULL, 0), 0);
  uint64_t map_only = u.name_bytes;
  assert_int_equal(wr_alloc(a, 100, &b1), 0);
  assert_int_equal(wr_map_put_block(m, "c", 1, b1), 0);
  assert_int_equal(wr_map_get_block(m, "b", 1, &got), -WR_EINVAL); /* not a block value */
  assert_int_equal(wr_map_del(m, "c", 1), 0);
  assert_int_equal(wr_heap_check(a, &u, NULL, 0), 0);
  assert_int_equal(u.name_bytes, map_only);
  /* Unbinding the map frees its blocks. */
  assert_int_equal(wr_alloc(a, 100, &b1), 0);
  assert_int_equal(wr_map_put_block(m, "d", 1, b1), 0);
  wr_map_close(m);
  assert_int_equal(wr_name_unbind(a, "m"), 0);
  assert_int_equal(wr_heap_check(a, &u, NULL, 0), 0);
  assert_int_equal(u.name_bytes, 0);
  wr_arena_detach(a);
}

/* --- crash matrix ---------------------------------------------------------- */

static int worker_write(wr_arena *a, void *arg) {
  (void)arg;
  wr_map *m;
  wr_array *ar;
  if (wr_map_open(a, "m", &m) || wr_array_open(a, "ar", &ar)) return 2;
  char B[64];
  memset(B, 'B', sizeof B);
  if (wr_map_put(m, "k", 1, B, sizeof B)) return 3;
  if (wr_array_set(ar, 3, B)) return 4;
  void *blk;
  if (wr_alloc(a, 256, &blk)) return 5;
  if (wr_map_put_block(m, "blk", 3, blk)) return 6;
  if (wr_map_del(m, "blk", 3)) return 7;
  tl_die();
  return 0;
}

static void test_crash_matrix(void **state) {
  (void)state;
  const char *pts[16];
  int n = tl_points("map.", pts, 16);
  assert_int_equal(n, 4);
  for (int i = 0; i <= n; i++) {
    for (int hit = 1; hit <= 4; hit++) {
      if (!pts[i] && hit > 1) break;
      wr_arena *a = tl_arena();
      wr_map *m = mk_map(a, "m", 64, 4);
      assert_int_equal(wr_array_create(a, "ar", 8, 64), 0);
      wr_array *ar;
      assert_int_equal(wr_array_open(a, "ar", &ar), 0);
      char A[64], B[64], got[64];
      memset(A, 'A', sizeof A);
      memset(B, 'B', sizeof B);
      assert_int_equal(wr_map_put(m, "k", 1, A, sizeof A), 0);
      assert_int_equal(wr_array_set(ar, 3, A), 0);
      char at[TL_AT_MAX];
      tl_child c = tl_crash_run(a, pts[i], hit, at, worker_write, NULL, NULL);
      /* Whole values only, and the stripes are usable. */
      int torn = wr_map_get(m, "k", 1, got, sizeof got) != 64 ||
                 (memcmp(got, A, 64) && memcmp(got, B, 64));
      torn += wr_array_get(ar, 3, got) != 0 || (memcmp(got, A, 64) && memcmp(got, B, 64));
      if (pts[i]) crash_row(pts[i], tl_killed(&c), tl_dead_bytes(a, &c), 0, (uint64_t)torn);
      assert_int_equal(wr_map_get(m, "k", 1, got, sizeof got), 64);
      if (memcmp(got, A, 64) && memcmp(got, B, 64)) fail_msg("%s: torn map value", at);
      assert_int_equal(wr_array_get(ar, 3, got), 0);
      if (memcmp(got, A, 64) && memcmp(got, B, 64)) fail_msg("%s: torn array element", at);
      assert_int_equal(wr_map_count(m), 1 + (wr_map_get_block(m, "blk", 3, (void **)&got) == 0));
      if (!tl_heap_ok(a)) fail_msg("%s: heap check", at);
      assert_int_equal(wr_map_put(m, "k", 1, "z", 1), 0);
      assert_int_equal(wr_map_del(m, "blk", 3) == 0 || 1, 1);
      heap_ok(a, NULL);
      wr_array_close(ar);
      wr_map_close(m);
      wr_arena_detach(a);
    }
  }
}

/* Workers overwrite 32 keys with uniform 64-byte values, delete some, and
 * are SIGKILLed at random moments: afterwards every value is whole, the
 * count agrees with the keys found, and the heap check passes. */
static int worker_hammer(wr_arena *a, void *arg) {
  (void)arg;
  unsigned seed = (unsigned)getpid();
  wr_map *m;
  if (wr_map_open(a, "m", &m)) return 2;
  for (;;) {
    uint32_t k = (uint32_t)rand_r(&seed) % 32;
    uint8_t v[64];
    memset(v, (int)(rand_r(&seed) & 0xff), sizeof v);
    int rc =
        rand_r(&seed) % 4 ? wr_map_put(m, &k, sizeof k, v, sizeof v) : wr_map_del(m, &k, sizeof k);
    if (rc && rc != -WR_ENOENT) return 3;
  }
}

static void test_random_kills(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  wr_map *m = mk_map(a, "m", 64, 4);
  unsigned seed = 11;
  for (int round = 0; round < 30; round++) {
    tl_kill_round(a, 3, worker_hammer, NULL, &seed, round);
    int64_t found = 0;
    for (uint32_t k = 0; k < 32; k++) {
      uint8_t v[64];
      int rc = wr_map_get(m, &k, sizeof k, v, sizeof v);
      if (rc == -WR_ENOENT) continue;
      if (rc != 64) fail_msg("round %d: key %u: %d", round, k, rc);
      for (int i = 0; i < 64; i++)
        if (v[i] != v[0]) fail_msg("round %d: key %u torn", round, k);
      found++;
    }
    if (wr_map_count(m) != found)
      fail_msg("round %d: count %lld, found %lld", round, (long long)wr_map_count(m),
               (long long)found);
    if (!tl_heap_ok(a)) fail_msg("round %d: heap check", round);
  }
  wr_map_close(m);
  wr_arena_detach(a);
}

/* wr_map_foreach: each entry once with its key and value; block values left
 * out; a nonzero return stops the walk and is returned. */
struct each {
  int seen, sum, stop_at;
};
static int each_fn(const void *key, uint32_t klen, const void *val, uint32_t vlen, void *ctx) {
  struct each *e = ctx;
  int k = -1, v = -1;
  assert_int_equal(klen, sizeof k);
  assert_int_equal(vlen, sizeof v);
  memcpy(&k, key, sizeof k);
  memcpy(&v, val, sizeof v);
  assert_int_equal(v, k * 3);
  e->seen++;
  e->sum += k;
  return e->seen == e->stop_at ? 7 : 0;
}

static void test_foreach(void **state) {
  (void)state;
  wr_arena *a = tl_arena();
  wr_map *m = mk_map(a, "m", 256, 8);
  assert_int_equal(wr_map_capacity(m), 256);
  struct each e = {0};
  assert_int_equal(wr_map_foreach(m, each_fn, &e), 0);
  assert_int_equal(e.seen, 0);
  for (int i = 0; i < 100; i++) {
    int v = i * 3;
    assert_int_equal(wr_map_put(m, &i, sizeof i, &v, sizeof v), 0);
  }
  for (int i = 0; i < 100; i += 10)
    assert_int_equal(wr_map_del(m, &i, sizeof i), 0);
  void *b;
  assert_int_equal(wr_alloc(a, 32, &b), 0);
  assert_int_equal(wr_map_put_block(m, "blk", 3, b), 0);
  e = (struct each){0};
  assert_int_equal(wr_map_foreach(m, each_fn, &e), 0);
  assert_int_equal(e.seen, 90);
  assert_int_equal(e.sum, 99 * 100 / 2 - (0 + 90) * 10 / 2);
  e = (struct each){.stop_at = 5};
  assert_int_equal(wr_map_foreach(m, each_fn, &e), 7);
  assert_int_equal(e.seen, 5);
  wr_map_close(m);
  assert_true(tl_heap_ok(a));
  wr_arena_detach(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),        cmocka_unit_test(test_group),
      cmocka_unit_test(test_blocks),       cmocka_unit_test(test_crash_matrix),
      cmocka_unit_test(test_random_kills), cmocka_unit_test(test_foreach),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
