/*
 * helpers.h: the harness of the multi-process tests. A "worker" here is a
 * real forked child in a worker slot; the parent plays the supervisor:
 * waits for the exit status, marks the slot dead, reclaims, releases.
 * Include it after <cmocka.h> (failures go through fail_msg).
 *
 * Two ways to start one:
 * - worker_fork: the parent prepares the slot it names and the child enters
 *   it, exactly as a process spawned by the supervisor (heap tests);
 *   worker_wait, worker_reclaim (heap only), worker_join.
 * - tl_spawn: the child claims a free slot and reports it, as a process
 *   warren did not start (synchronisation tests); tl_reap reclaims sync
 *   state and heap. tl_crash_run and tl_kill_round are the two loops every
 *   sync module's tests share: one crash-matrix run, one round of random
 *   kills.
 * Channel tests add their own spawner in chan_util.h (channel reclaim).
 */
#ifndef WARREN_TEST_HELPERS_H
#define WARREN_TEST_HELPERS_H

#include "internal.h"

#include <sched.h>
#include <signal.h>
#include <stdarg.h>
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

/* The heap check passes: the bytes allocated. */
static inline uint64_t heap_bytes(wr_arena *a) {
  wr_heap_usage u;
  heap_ok(a, &u);
  return u.bytes;
}

/* The end of a test: the heap invariant holds; detach. */
static inline void arena_done(wr_arena *a) {
  heap_ok(a, NULL);
  wr_arena_detach(a);
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

/* ---------------------------------------------- tl_spawn: claimed slots */

/* The sync tests' arena: 16 MiB, memfd. */
static inline wr_arena *tl_arena(void) { return make(16u << 20); }

typedef struct tl_child {
  pid_t pid;
  uint32_t slot, inc;
  int status;
} tl_child;

/* Fork a worker: it claims a slot, reports it, runs fn (crash point armed
 * if crash_at) and _exits with fn's return value. */
static inline tl_child tl_spawn(wr_arena *a, const char *crash_at, worker_fn fn, void *arg) {
  int p[2];
  tl_child c = {0, 0, 0, 0};
  if (pipe(p) != 0) abort();
  c.pid = fork();
  if (c.pid < 0) abort();
  if (c.pid == 0) {
    close(p[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failing test leaves no worker behind */
    if (crash_at) setenv("WARREN_CRASH_AT", crash_at, 1);
    wr_crash_rearm();
    uint32_t slot;
    if (wr_slot_claim(a, &slot) != 0) _exit(90);
    uint32_t msg[2] = {slot, a->incarnation};
    if (write(p[1], msg, sizeof msg) != sizeof msg) _exit(91);
    close(p[1]);
    _exit(fn(a, arg));
  }
  close(p[1]);
  uint32_t msg[2];
  if (read(p[0], msg, sizeof msg) != sizeof msg) abort();
  close(p[0]);
  c.slot = msg[0];
  c.inc = msg[1];
  return c;
}

/* What the supervisor does after a worker exited, however it exited.
 * Returns the permits wr_sync_reclaim gave back. */
static inline uint64_t tl_reclaim(wr_arena *a, tl_child *c) {
  uint64_t permits = 0;
  wr_reclaim_report rep;
  if (wr_slot_mark_dead(a, c->slot, c->inc) != 0) abort();
  if (wr_sync_reclaim(a, c->slot, c->inc, &permits) != 0) abort();
  if (wr_heap_reclaim(a, c->slot, c->inc, &rep) != 0) abort();
  if (wr_slot_release(a, c->slot, c->inc) != 0) abort();
  return permits;
}

/* Wait for the worker, then reclaim it. */
static inline uint64_t tl_reap(wr_arena *a, tl_child *c) {
  if (waitpid(c->pid, &c->status, 0) != c->pid) abort();
  return tl_reclaim(a, c);
}

static inline int tl_killed(const tl_child *c) {
  return WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGKILL;
}
static inline int tl_exit_code(const tl_child *c) {
  return WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1;
}

/* The heap invariant holds (prints the reason otherwise): for a caller
 * that fails with its own context; heap_ok fails by itself. */
static inline int tl_heap_ok(wr_arena *a) {
  char why[256];
  int rc = wr_heap_check(a, NULL, why, sizeof why);
  if (rc) fprintf(stderr, "heap check: %s\n", why);
  return rc == 0;
}

/* Crash points whose name starts with prefix, NULL-terminated in out. */
static inline int tl_points(const char *prefix, const char **out, int max) {
  int n = 0;
  for (const char *const *p = wr_crash_points(); *p && n < max - 1; p++)
    if (strncmp(*p, prefix, strlen(prefix)) == 0) out[n++] = *p;
  out[n] = NULL;
  return n;
}

static inline void tl_die(void) {
  kill(getpid(), SIGKILL);
  for (;;)
    pause();
}

/* SIGKILL a worker; never a pid that would mean a group or init. */
static inline void tl_kill(pid_t pid) {
  if (pid > 1) kill(pid, SIGKILL);
}

/* Run n workers (n <= 8) on fn(arg) side by side and reap them all; each
 * must exit 0. Returns the permits their reclaims gave back. */
static inline uint64_t tl_run_all(wr_arena *a, int n, worker_fn fn, void *arg) {
  tl_child c[8];
  uint64_t permits = 0;
  if (n > 8) abort();
  for (int i = 0; i < n; i++)
    c[i] = tl_spawn(a, NULL, fn, arg);
  for (int i = 0; i < n; i++) {
    permits += tl_reap(a, &c[i]);
    if (tl_exit_code(&c[i]) != 0) fail_msg("worker %d: exit %d", i, tl_exit_code(&c[i]));
  }
  return permits;
}

/* One crash-matrix run: a worker armed at the hit-th pass of point (none
 * if point is NULL) runs fn; it is reaped and reclaimed and must have died
 * of SIGKILL (at the point or by its own tl_die). at receives "point:hit"
 * or "none", for messages; *permits (if given) what the reclaim gave back. */
#define TL_AT_MAX 96
static inline tl_child tl_crash_run(wr_arena *a, const char *point, int hit, char at[TL_AT_MAX],
                                    worker_fn fn, void *arg, uint64_t *permits) {
  snprintf(at, TL_AT_MAX, "none");
  if (point) snprintf(at, TL_AT_MAX, "%s:%d", point, hit);
  tl_child c = tl_spawn(a, point ? at : NULL, fn, arg);
  uint64_t back = tl_reap(a, &c);
  if (permits) *permits = back;
  if (!tl_killed(&c)) fail_msg("%s: exit %d", at, tl_exit_code(&c));
  return c;
}

/* One round of random kills: start n workers running fn, SIGKILL them all
 * at a random moment (seeded, not an assertion), reap and reclaim them;
 * each must have died of the kill, not exited. The caller then checks
 * its invariant. */
static inline void tl_kill_round(wr_arena *a, int n, worker_fn fn, void *arg, unsigned *seed,
                                 int round) {
  tl_child c[8];
  if (n > 8) abort();
  for (int i = 0; i < n; i++)
    c[i] = tl_spawn(a, NULL, fn, arg);
  usleep(200 + rand_r(seed) % 2000);
  for (int i = 0; i < n; i++)
    tl_kill(c[i].pid);
  for (int i = 0; i < n; i++) {
    tl_reap(a, &c[i]);
    if (!tl_killed(&c[i])) fail_msg("round %d: worker exit %d", round, tl_exit_code(&c[i]));
  }
}

#endif
