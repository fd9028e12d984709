/*
 * helpers.h: shared by the multi-process tests. A "worker" here is a real
 * forked child that enters a slot the parent prepared, exactly as a process
 * spawned by the supervisor would; the parent plays the supervisor: waits
 * for the exit status, marks the slot dead, reclaims, releases.
 */
#ifndef WARREN_TEST_HELPERS_H
#define WARREN_TEST_HELPERS_H

#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fresh memfd arena of `size` bytes; this process is its creator. */
static inline wr_arena *make(uint64_t size) {
  wr_arena_opts o = {.size = size};
  wr_arena *a = NULL;
  int rc = wr_arena_create(&o, &a);
  if (rc != 0) fail_msg("wr_arena_create: %s", wr_strerror(rc));
  return a;
}

typedef int (*worker_fn)(wr_arena *a, void *arg);

/* Fork a worker in `slot`; it runs fn and _exits with its result. If
 * crash_at is non-NULL the child arms that crash point first. */
static inline pid_t worker_fork(wr_arena *a, uint32_t slot, uint32_t *inc, const char *crash_at,
                                worker_fn fn, void *arg) {
  if (wr_slot_prepare(a, slot, inc) != 0) fail_msg("slot %u is not free", slot);
  pid_t pid = fork();
  if (pid < 0) fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test must not leave workers behind */
    if (crash_at) {
      setenv("WARREN_CRASH_AT", crash_at, 1);
      wr_crash_rearm();
    }
    if (wr_slot_enter(a, slot, *inc) != 0) _exit(100);
    _exit(fn(a, arg));
  }
  return pid;
}

static inline int worker_wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/* What the supervisor does after a worker's exit. */
static inline void worker_reclaim(wr_arena *a, uint32_t slot, uint32_t inc, wr_reclaim_report *r) {
  wr_reclaim_report tmp;
  if (wr_slot_mark_dead(a, slot, inc) != 0) {
    wr_slot_info si;
    wr_slot_info_get(a, slot, &si);
    fail_msg("mark_dead slot %u inc %u: state %u incarnation %u", slot, inc, si.state,
             si.incarnation);
  }
  int rc = wr_heap_reclaim(a, slot, inc, r ? r : &tmp);
  if (rc != 0) fail_msg("reclaim slot %u: %s", slot, wr_strerror(rc));
  if (wr_slot_release(a, slot, inc) != 0) fail_msg("release slot %u", slot);
}

static inline void heap_ok(wr_arena *a, wr_heap_usage *u) {
  char why[256];
  int rc = wr_heap_check(a, u, why, sizeof why);
  if (rc != 0) fail_msg("wr_heap_check: %s", why);
}

/* The heap check passes and no block is left. */
static inline void heap_empty(wr_arena *a) {
  wr_heap_usage u;
  heap_ok(a, &u);
  if (u.bytes != 0) fail_msg("heap holds %llu bytes, want 0", (unsigned long long)u.bytes);
}

/* A background worker's end: it must exit 0; then its slot is reclaimed. */
static inline void worker_join(wr_arena *a, pid_t pid, uint32_t slot, uint32_t inc) {
  int st = worker_wait(pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("worker in slot %u: status 0x%x", slot, st);
  worker_reclaim(a, slot, inc, NULL);
}

static inline uint64_t rng_next(uint64_t *s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Random block size: mostly small, sometimes medium, rarely large. */
static inline size_t rng_size(uint64_t *s) {
  uint64_t r = rng_next(s);
  switch (r % 16) {
  case 0: return 16384 + (r >> 8) % 200000;
  case 1: case 2: return 1024 + (r >> 8) % 15000;
  default: return 1 + (r >> 8) % 512;
  }
}

#endif
