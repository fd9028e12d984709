/*
 * test_arena.c: creating and attaching arenas, header validation, the slot
 * state machine, error names. Real memfds, real forks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* A memfd holding a copy of arena a's first `len` bytes, `size` long. */
static int copy_fd(wr_arena *a, uint64_t size, size_t len) {
  int fd = memfd_create("copy", MFD_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)size), 0);
  assert_int_equal(pwrite(fd, a->base, len, 0), (ssize_t)len);
  return fd;
}

static void test_create_attach(void **state) {
  wr_arena *a = make(8 << 20);
  assert_int_equal(wr_self_slot(a), 0);
  assert_true(wr_self_tag(a) != 0);
  assert_int_equal(wr_arena_size(a), 8 << 20);
  /* Offsets, not pointers: a second mapping sees the same bytes elsewhere. */
  wr_arena *b = NULL;
  assert_int_equal(wr_arena_attach_fd(wr_arena_fd(a), &b), 0);
  assert_ptr_not_equal(wr_ptr(a, 4096), wr_ptr(b, 4096));
  strcpy(wr_ptr(a, 8192), "hello");
  assert_string_equal(wr_ptr(b, 8192), "hello");
  assert_int_equal(wr_off(b, wr_ptr(b, 777)), 777);
  assert_null(wr_ptr(a, 0));
  assert_null(wr_ptr(a, 8 << 20));
  assert_int_equal(wr_off(a, NULL), 0);
  assert_int_equal(wr_self_tag(b), 0); /* no slot until claimed */
  void *p;
  assert_int_equal(wr_alloc(b, 16, &p), -WR_EINVAL);
  wr_arena_detach(b);
  wr_arena_detach(a);
}

static void test_bad_sizes(void **state) {
  wr_arena *a = NULL;
  wr_arena_opts o = {.size = 1000};
  assert_int_equal(wr_arena_create(&o, &a), -WR_EINVAL);
  o.size = 1ull << 50;
  assert_int_equal(wr_arena_create(&o, &a), -WR_EINVAL);
  o.size = 8 << 20;
  o.backend = 99;
  assert_int_equal(wr_arena_create(&o, &a), -WR_EINVAL);
}

static void test_bad_headers(void **state) {
  wr_arena *a = make(4 << 20), *b = NULL;
  /* Not an arena at all. */
  int fd = memfd_create("zeros", MFD_CLOEXEC);
  assert_int_equal(ftruncate(fd, 4 << 20), 0);
  assert_int_equal(wr_arena_attach_fd(fd, &b), -WR_EBADARENA);
  close(fd);
  /* Too small to hold a header. */
  fd = memfd_create("tiny", MFD_CLOEXEC);
  assert_int_equal(ftruncate(fd, 100), 0);
  assert_int_equal(wr_arena_attach_fd(fd, &b), -WR_EBADARENA);
  close(fd);
  /* Right magic, wrong size (truncated or grown file). */
  fd = copy_fd(a, 8 << 20, 4096);
  assert_int_equal(wr_arena_attach_fd(fd, &b), -WR_ESIZE);
  close(fd);
  /* Right magic, other layout version. */
  fd = copy_fd(a, 4 << 20, 4096);
  uint32_t v = 999;
  assert_int_equal(pwrite(fd, &v, 4, offsetof(struct wr__header, version)), 4);
  assert_int_equal(wr_arena_attach_fd(fd, &b), -WR_EVERSION);
  close(fd);
  /* Scribbled region offsets are caught before use. */
  fd = copy_fd(a, 4 << 20, 4096);
  uint64_t bogus = 1ull << 40;
  assert_int_equal(pwrite(fd, &bogus, 8, offsetof(struct wr__header, spans_off)), 8);
  assert_int_equal(wr_arena_attach_fd(fd, &b), -WR_ECORRUPT);
  close(fd);
  assert_int_equal(wr_arena_attach_fd(-1, &b), -EBADF);
  wr_arena_detach(a);
}

static void test_sealed(void **state) {
  wr_arena *a = make(4 << 20);
  assert_int_equal(ftruncate(wr_arena_fd(a), 1 << 20), -1);
  assert_int_equal(errno, EPERM);
  assert_true(fcntl(wr_arena_fd(a), F_GETFD) & FD_CLOEXEC);
  wr_arena_detach(a);
}

static void test_slots(void **state) {
  wr_arena *a = make(4 << 20);
  uint32_t inc, inc2;
  wr_slot_info si;
  assert_int_equal(wr_slot_prepare(a, 0, &inc), -WR_EINVAL);
  assert_int_equal(wr_slot_prepare(a, WR_MAX_SLOTS, &inc), -WR_EINVAL);
  assert_int_equal(wr_slot_prepare(a, 5, &inc), 0);
  assert_int_equal(wr_slot_prepare(a, 5, &inc2), -WR_EAGAIN);
  wr_slot_info_get(a, 5, &si);
  assert_int_equal(si.state, WR_SLOT_RESERVED);
  /* A worker enters the prepared incarnation, in a real child. */
  pid_t pid = fork();
  if (pid == 0) {
    wr_arena *c = NULL;
    int rc = wr_arena_attach_fd(wr_arena_fd(a), &c);
    if (!rc) rc = wr_slot_enter(c, 5, inc + 1) == -WR_EINVAL ? 0 : 1;
    if (!rc) rc = wr_slot_enter(c, 5, inc);
    _exit(rc == 0 && wr_self_slot(c) == 5 ? 0 : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  wr_slot_info_get(a, 5, &si);
  assert_int_equal(si.state, WR_SLOT_LIVE);
  assert_int_equal(si.pid, pid);
  assert_int_equal(wr_slot_release(a, 5, inc), -WR_EINVAL); /* not dead yet */
  assert_int_equal(wr_slot_mark_dead(a, 5, inc + 7), -WR_EINVAL);
  assert_int_equal(wr_slot_mark_dead(a, 5, inc), 0);
  assert_int_equal(wr_slot_mark_dead(a, 5, inc), 0); /* idempotent */
  assert_int_equal(wr_slot_release(a, 5, inc), 0);
  assert_int_equal(wr_slot_release(a, 5, inc), 0);
  assert_int_equal(wr_slot_prepare(a, 5, &inc2), 0);
  assert_true(inc2 > inc);
  assert_int_not_equal(wr__tag_worker(5, inc), wr__tag_worker(5, inc2));
  /* Claim: any free slot, fresh incarnation. */
  uint32_t slot;
  assert_int_equal(wr_slot_claim(a, &slot), 0);
  assert_int_equal(slot, 1);
  assert_int_equal(wr_self_slot(a), 1);
  wr_arena_detach(a);
}

static void test_env_attach(void **state) {
  wr_arena *a = make(4 << 20), *b = NULL;
  unsetenv("WARREN_ARENA_FD");
  assert_int_equal(wr_arena_attach_env(&b), -WR_ENOENV);
  uint32_t inc;
  assert_int_equal(wr_slot_prepare(a, 3, &inc), 0);
  pid_t pid = fork();
  if (pid == 0) {
    /* As uv_spawn would leave it: an inheritable fd at a fixed number. */
    int fd = dup2(wr_arena_fd(a), 7);
    char buf[32];
    snprintf(buf, sizeof buf, "%d", fd);
    setenv("WARREN_ARENA_FD", buf, 1);
    setenv("WARREN_SLOT", "3", 1);
    snprintf(buf, sizeof buf, "%u", inc);
    setenv("WARREN_INCARNATION", buf, 1);
    wr_arena *c = NULL;
    int rc = wr_arena_attach_env(&c);
    void *p = NULL;
    if (!rc) rc = wr_alloc(c, 100, &p);
    _exit(rc == 0 && wr_self_slot(c) == 3 && fcntl(7, F_GETFD) < 0 ? 0 : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  wr_arena_detach(a);
}

static void test_errors(void **state) {
  assert_string_equal(wr_err_name(-WR_ENOMEM), "WR_ENOMEM");
  assert_string_equal(wr_err_name(-WR_ECORRUPT), "WR_ECORRUPT");
  assert_string_equal(wr_err_name(-ECONNRESET), "ECONNRESET");
  assert_non_null(strstr(wr_strerror(-WR_EVERSION), "version"));
  assert_non_null(wr_strerror(-123456));
  assert_string_equal(wr_version(), "0.1.0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_attach), cmocka_unit_test(test_bad_sizes),
      cmocka_unit_test(test_bad_headers),   cmocka_unit_test(test_sealed),
      cmocka_unit_test(test_slots),         cmocka_unit_test(test_env_attach),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
