/*
 * chan_util.h: helpers shared by the channel tests (test_chan.c,
 * test_chan_crash.c), on top of helpers.h: fork a worker process that
 * claims a slot, reap it the way the supervisor does (mark dead, reclaim
 * channel state and heap, release), and the record pattern both ends check.
 */
#ifndef WR_TEST_CHAN_UTIL_H
#define WR_TEST_CHAN_UTIL_H

#include "helpers.h"
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Memory every process of a test sees (results, logs): MAP_SHARED anon. */
static inline void *shared_mem(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* Fork a worker: the child claims a slot, arms the crash point `crash`
 * (NULL = none), and exits with fn's return value. The watchdog turns a
 * hang into a failure. */
static inline pid_t spawn_worker(wr_arena *a, const char *crash, int (*fn)(wr_arena *, void *),
                                 void *arg) {
  pid_t pid = fork();
  if (pid < 0) abort(); /* never hand -1 to waitpid or kill */
  if (pid != 0) return pid;
  alarm(120);
  if (crash)
    setenv("WARREN_CRASH_AT", crash, 1);
  else
    unsetenv("WARREN_CRASH_AT");
  wr_crash_rearm();
  uint32_t slot;
  if (wr_slot_claim(a, &slot) != 0) _exit(90);
  _exit(fn(a, arg));
}

/* The slot a child process runs in (0 if none). */
static inline uint32_t slot_of_pid(wr_arena *a, pid_t pid, uint32_t *inc) {
  for (uint32_t s = 1; s < WR_MAX_SLOTS; s++) {
    wr_slot_info in;
    wr_slot_info_get(a, s, &in);
    if (in.pid == pid && (in.state == WR_SLOT_LIVE || in.state == WR_SLOT_DEAD)) {
      *inc = in.incarnation;
      return s;
    }
  }
  return 0;
}

/* What the supervisor does when a worker exits: mark it dead, reclaim its
 * channel state, then its heap, then free the slot. Returns redeliveries. */
static inline uint64_t reap_slot(wr_arena *a, uint32_t slot, uint32_t inc) {
  uint64_t red = 0;
  wr_reclaim_report rep;
  if (wr_slot_mark_dead(a, slot, inc) != 0) abort();
  if (wr_chan_reclaim(a, slot, inc, &red) != 0) abort();
  if (wr_heap_reclaim(a, slot, inc, &rep) != 0) abort();
  if (wr_slot_release(a, slot, inc) != 0) abort();
  return red;
}

/* Record i's bytes: its sequence number first, then a pattern from i. */
static inline void rec_fill(uint8_t *p, size_t len, uint64_t i) {
  size_t n = len < 8 ? len : 8;
  memcpy(p, &i, n);
  for (size_t j = 8; j < len; j++) p[j] = (uint8_t)(i * 7 + j);
}
static inline int rec_ok(const uint8_t *p, size_t len, uint64_t i) {
  uint64_t got = 0;
  if (len < 8) return 0;
  memcpy(&got, p, 8);
  if (got != i) return 0;
  for (size_t j = 8; j < len; j++)
    if (p[j] != (uint8_t)(i * 7 + j)) return 0;
  return 1;
}

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  return x ^ (x >> 33);
}

/* Heap and channel checkers both green, or fail the test with the reason. */
#define assert_checks_green(a)                                       \
  do {                                                               \
    char why_[256];                                                  \
    int rc_ = wr_chan_check((a), why_, sizeof why_);                 \
    if (rc_) fail_msg("wr_chan_check: %s", why_);                    \
    rc_ = wr_heap_check((a), NULL, why_, sizeof why_);               \
    if (rc_) fail_msg("wr_heap_check: %s", why_);                    \
  } while (0)

#endif
