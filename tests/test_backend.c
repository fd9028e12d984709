/* test_backend.c: the posix and file arena backends: attach by name, unlink
 * at clean exit, stale segments cleaned, a file-backed map that survives
 * detach and reopen, corrupt files refused with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

#include <fcntl.h>
#include <sys/stat.h>

static int shm_exists(const char *name) {
  char p[300];
  struct stat st;
  snprintf(p, sizeof p, "/dev/shm%s", name);
  return stat(p, &st) == 0;
}

static int skip_without_shm(void) {
  struct stat st;
  return stat("/dev/shm", &st) != 0;
}

static int worker_posix(wr_arena *a, void *arg) {
  (void)a;
  const char *name = arg;
  wr_arena *b;
  if (wr_arena_attach_path(WR_BACKEND_POSIX, name, &b)) return 2;
  uint32_t slot;
  wr_sem *s;
  if (wr_slot_claim(b, &slot) || wr_sem_open(b, "s", &s)) return 3;
  int rc = wr_sem_release(s, 4) ? 4 : 0;
  wr_sem_close(s);
  wr_slot_mark_dead(b, slot, b->incarnation);
  wr_arena_detach(b);
  return rc;
}

static void test_posix(void **state) {
  (void)state;
  if (skip_without_shm()) skip();
  char name[64];
  snprintf(name, sizeof name, "/warren.test.%d", (int)getpid());
  wr_arena_opts o = {.size = 4u << 20, .backend = WR_BACKEND_POSIX, .path = name, .flags = 0};
  wr_arena *a;
  assert_int_equal(wr_arena_create(&o, &a), 0);
  wr_arena *dup;
  assert_int_equal(wr_arena_create(&o, &dup), -WR_EEXIST);
  o.path = "no/slash";
  assert_int_equal(wr_arena_create(&o, &dup), -WR_EINVAL);
  assert_true(shm_exists(name));
  assert_int_equal(wr_sem_create(a, "s", 0), 0);
  /* Another process attaches by name (not by an inherited fd). */
  tl_child c = tl_spawn(a, NULL, worker_posix, name);
  assert_int_equal(waitpid(c.pid, &c.status, 0), c.pid);
  assert_int_equal(tl_exit_code(&c), 0);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_value(s), 4);
  wr_sem_close(s);
  wr_arena_detach(a); /* clean exit: the name is gone */
  assert_false(shm_exists(name));
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_POSIX, name, &a), -ENOENT);
}

/* Create a posix arena under a unique name, report it, die uncleanly. */
static int worker_stale(wr_arena *a, void *arg) {
  (void)a;
  int fd = *(int *)arg;
  wr_arena_opts o = {.size = 2u << 20, .backend = WR_BACKEND_POSIX, .path = NULL, .flags = 0};
  wr_arena *b;
  if (wr_arena_create(&o, &b)) return 2;
  char name[256];
  snprintf(name, sizeof name, "%s", b->path);
  if (write(fd, name, sizeof name) != sizeof name) return 3;
  tl_die();
  return 0;
}

static void test_stale(void **state) {
  (void)state;
  if (skip_without_shm()) skip();
  wr_arena *a = tl_arena();
  wr_arena_opts o = {.size = 2u << 20, .backend = WR_BACKEND_POSIX, .path = NULL, .flags = 0};
  wr_arena *live;
  assert_int_equal(wr_arena_create(&o, &live), 0); /* ours, alive: must stay */
  int p[2];
  assert_int_equal(pipe(p), 0);
  tl_child c = tl_spawn(a, NULL, worker_stale, &p[1]);
  char name[256];
  assert_int_equal(read(p[0], name, sizeof name), (ssize_t)sizeof name);
  close(p[0]);
  close(p[1]);
  tl_reap(a, &c);
  assert_true(tl_killed(&c));
  assert_true(shm_exists(name));
  unsigned removed = 0;
  assert_int_equal(wr_arena_clean_stale(&removed), 0);
  assert_true(removed >= 1);
  assert_false(shm_exists(name));
  assert_true(shm_exists(live->path));
  wr_arena_detach(live);
  wr_arena_detach(a);
}

/* A worker of the first run that dies holding a permit and a lock. */
static int worker_hold(wr_arena *a, void *arg) {
  (void)arg;
  wr_sem *s;
  wr_mutex *m;
  if (wr_sem_open(a, "s", &s) || wr_mutex_open(a, "m", &m)) return 2;
  if (wr_sem_acquire(s, 2, -1) || wr_mutex_lock(m, -1)) return 3;
  tl_die();
  return 0;
}

static void test_file_round_trip(void **state) {
  (void)state;
  char path[] = "/tmp/warren-test-XXXXXX";
  assert_non_null(mkdtemp(path));
  char file[128];
  snprintf(file, sizeof file, "%s/arena", path);
  wr_arena_opts o = {.size = 4u << 20, .backend = WR_BACKEND_FILE, .path = file, .flags = 0};
  wr_arena *a;
  assert_int_equal(wr_arena_create(&o, &a), 0);
  assert_int_equal(wr_arena_create(&o, &a) == -WR_EEXIST, 1);
  /* While this run holds it, another run cannot take it over. */
  wr_arena *b;
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, file, &b), -WR_EAGAIN);
  wr_map_opts mo = {.capacity = 512, .key_max = 16, .value_max = 32, .stripes = 8};
  assert_int_equal(wr_map_create(a, "words", &mo), 0);
  wr_map *m;
  assert_int_equal(wr_map_open(a, "words", &m), 0);
  for (int i = 0; i < 300; i++) {
    char k[16], v[32];
    int kn = snprintf(k, sizeof k, "w%d", i), vn = snprintf(v, sizeof v, "value of %d", i);
    assert_int_equal(wr_map_put(m, k, (size_t)kn, v, (size_t)vn), 0);
  }
  void *blk;
  assert_int_equal(wr_alloc(a, 5000, &blk), 0);
  strcpy(blk, "a block value");
  assert_int_equal(wr_map_put_block(m, "blk", 3, blk), 0);
  wr_map_close(m);
  assert_int_equal(wr_sem_create(a, "s", 3), 0);
  assert_int_equal(wr_mutex_create(a, "m"), 0);
  tl_child c = tl_spawn(a, NULL, worker_hold, NULL);
  assert_int_equal(waitpid(c.pid, &c.status, 0), c.pid); /* dead, never reclaimed */
  assert_int_equal(wr_arena_checkpoint(a), 0);
  wr_arena_detach(a);

  /* The next run. */
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, file, &a), 0);
  assert_int_equal(wr_self_slot(a), 0);
  heap_ok(a, NULL);
  assert_int_equal(wr_map_open(a, "words", &m), 0);
  assert_int_equal(wr_map_count(m), 301);
  for (int i = 0; i < 300; i++) {
    char k[16], v[32], want[32];
    int kn = snprintf(k, sizeof k, "w%d", i), wn = snprintf(want, sizeof want, "value of %d", i);
    assert_int_equal(wr_map_get(m, k, (size_t)kn, v, sizeof v), wn);
    assert_memory_equal(v, want, (size_t)wn);
  }
  assert_int_equal(wr_map_get_block(m, "blk", 3, &blk), 0);
  assert_string_equal(blk, "a block value");
  wr_map_close(m);
  wr_sem *s;
  assert_int_equal(wr_sem_open(a, "s", &s), 0);
  assert_int_equal(wr_sem_value(s), 3); /* the dead worker's permits came back */
  wr_sem_close(s);
  wr_mutex *mx;
  assert_int_equal(wr_mutex_open(a, "m", &mx), 0);
  assert_int_equal(wr_mutex_lock(mx, 0), -WR_EOWNERDEAD);
  assert_int_equal(wr_mutex_consistent(mx), 0);
  assert_int_equal(wr_mutex_unlock(mx), 0);
  wr_mutex_close(mx);
  /* New allocations work in the new run. */
  void *p;
  assert_int_equal(wr_alloc(a, 100, &p), 0);
  assert_int_equal(wr_free(a, p), 0);
  arena_done(a);

  /* Corrupt files are refused with a clear error. */
  int fd = open(file, O_RDWR);
  assert_true(fd >= 0);
  uint32_t v = 99;
  assert_int_equal(pwrite(fd, &v, 4, offsetof(struct wr__header, version)), 4);
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, file, &a), -WR_EVERSION);
  v = WR__LAYOUT_VERSION;
  assert_int_equal(pwrite(fd, &v, 4, offsetof(struct wr__header, version)), 4);
  assert_int_equal(ftruncate(fd, 3u << 20), 0);
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, file, &a), -WR_ESIZE);
  uint64_t bad = 0x1234;
  assert_int_equal(pwrite(fd, &bad, 8, 0), 8);
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, file, &a), -WR_EBADARENA);
  assert_int_equal(ftruncate(fd, 100), 0);
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, file, &a), -WR_EBADARENA);
  close(fd);
  assert_int_equal(wr_arena_attach_path(WR_BACKEND_FILE, "/nonexistent/x", &a), -ENOENT);
  unlink(file);
  rmdir(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_posix),
      cmocka_unit_test(test_stale),
      cmocka_unit_test(test_file_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
