/*
 * futex.c: the wait/wake primitive every blocking object of libwarren uses
 * (semaphores, mutexes, MVars, channel lanes), and wr_interrupt().
 *
 * - Shared futexes only: the words live in the arena, mapped by several
 *   processes, so FUTEX_PRIVATE_FLAG must never be used (DESIGN.md traps).
 * - Deadlines are absolute CLOCK_MONOTONIC times (FUTEX_WAIT_BITSET takes
 *   an absolute time, so a wait that loops never stretches its timeout).
 * - wr_interrupt() (async-signal-safe) sets wr__interrupted; the next wait
 *   that sees it consumes it and returns -WR_EINTR. A signal that lands
 *   between the flag check and the syscall interrupts the syscall itself
 *   (EINTR) unless it was installed with SA_RESTART: handlers that call
 *   wr_interrupt should be installed without SA_RESTART.
 */
#include "sync.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic int wr__interrupted;

void wr_interrupt(void) { atomic_store(&wr__interrupted, 1); }

/* Consume a pending interrupt: 1 if there was one. */
static int interrupted(void) {
  if (!atomic_load_explicit(&wr__interrupted, memory_order_relaxed)) return 0;
  return atomic_exchange(&wr__interrupted, 0);
}

int wr__futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *abs_deadline) {
  if (interrupted()) return -WR_EINTR;
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expect, abs_deadline, NULL,
                    FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return 0;
  switch (errno) {
  case ETIMEDOUT:
    return -WR_ETIMEDOUT;
  case EAGAIN:
    return -WR_EAGAIN;
  case EINTR:
    return interrupted() ? -WR_EINTR : 0; /* any other signal: spurious wake */
  default:
    return -errno;
  }
}

int wr__futex_wake(_Atomic uint32_t *word, int n) {
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
  return rc < 0 ? -errno : (int)rc;
}

const struct timespec *wr__deadline(int64_t timeout_ns, struct timespec *ts) {
  if (timeout_ns < 0) return NULL;
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t ns = ts->tv_nsec + timeout_ns % 1000000000;
  ts->tv_sec += timeout_ns / 1000000000 + ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
  return ts;
}
