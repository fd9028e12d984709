/*
 * sync_testlib.h: helpers shared by the synchronisation tests: a fresh
 * arena, worker processes made by fork + wr_slot_claim (optionally armed
 * with a crash point), and the supervisor's side of a death: mark dead,
 * reclaim sync state and heap, release the slot; the two loops every sync
 * module's tests share (a crash-matrix run, a round of random kills).
 * Header-only (static); include it after <cmocka.h> (fail_msg).
 */
#ifndef SYNC_TESTLIB_H
#define SYNC_TESTLIB_H

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

static inline wr_arena *tl_arena(void) {
  wr_arena_opts o = {.size = 16u << 20, .backend = WR_BACKEND_MEMFD, .path = NULL, .flags = 0};
  wr_arena *a = NULL;
  if (wr_arena_create(&o, &a) != 0) abort();
  return a;
}

typedef struct tl_child {
  pid_t pid;
  uint32_t slot, inc;
  int status;
} tl_child;

/* Fork a worker: it claims a slot, reports it, runs fn (crash point armed
 * if crash_at) and _exits with fn's return value. */
static inline tl_child tl_spawn(wr_arena *a, const char *crash_at, int (*fn)(wr_arena *, void *),
                                void *arg) {
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

/* The heap invariant holds (prints the reason otherwise). */
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

/* One crash-matrix run: a worker armed at the hit-th pass of point (none
 * if point is NULL) runs fn; it is reaped and reclaimed and must have died
 * of SIGKILL (at the point or by its own tl_die). at receives "point:hit"
 * or "none", for messages; *permits (if given) what the reclaim gave back. */
#define TL_AT_MAX 96
static inline tl_child tl_crash_run(wr_arena *a, const char *point, int hit, char at[TL_AT_MAX],
                                    int (*fn)(wr_arena *, void *), void *arg, uint64_t *permits) {
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
static inline void tl_kill_round(wr_arena *a, int n, int (*fn)(wr_arena *, void *), void *arg,
                                 unsigned *seed, int round) {
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
