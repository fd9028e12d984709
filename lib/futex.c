/*
 * futex.c: the futex wait/wake helpers every blocking module shares
 * (channels, semaphores, mutexes), and the process-wide interrupt flag.
 *
 * Futexes here are always shared (never FUTEX_PRIVATE_FLAG: the words live in
 * a mapping other processes see at other addresses). Waits use
 * FUTEX_WAIT_BITSET, whose timeout is an absolute CLOCK_MONOTONIC time, so a
 * loop that re-waits after a spurious wake-up never stretches its deadline.
 * Waits sleep at most wr__wait_slice_ns at a time and re-check the interrupt
 * flag in between: a signal handler only sets the flag (wr_interrupt), and a
 * handler installed with SA_RESTART would not break the futex call itself.
 *
 * Asymmetric fence (wr__fence_light / wr__fence_heavy): the lost-wake-up
 * pattern needs a StoreLoad fence on both sides, but the waker runs on the
 * hot path (every publish) and the waiter only before it sleeps. A process
 * that registered for membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) may make
 * its light fence a compiler barrier: the waiter's heavy fence (that
 * membarrier) interrupts every CPU running a registered process, which
 * drains its store buffer, so either the waker's store is visible to the
 * waiter's re-check or the waker's later load sees the waiter. Without
 * membarrier both sides use a seq_cst fence. A forked child starts
 * unregistered (fences) until wr__fence_register runs in it. Assumption:
 * every process of an arena can call membarrier, or none can (same kernel,
 * same seccomp policy); a waiter that cannot would miss a light waker.
 */
#include "internal.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The longest single sleep; tests lengthen it so that a lost wake-up shows
 * as a stall instead of hiding behind the slice. */
int64_t wr__wait_slice_ns = 20000000ll; /* 20 ms */

static _Atomic uint32_t intr_gen;     /* bumped by each wr_interrupt */
static _Atomic uint32_t intr_pending; /* set by wr_interrupt, taken by one wait */

void wr_interrupt(void) {
  /* Lock-free atomics only: async-signal-safe. */
  atomic_fetch_add(&intr_gen, 1);
  atomic_store(&intr_pending, 1);
}

uint32_t wr__intr_begin(void) {
  if (atomic_load_explicit(&intr_pending, memory_order_relaxed) &&
      atomic_exchange(&intr_pending, 0))
    return UINT32_MAX; /* an interrupt came before this wait: deliver it now */
  return atomic_load(&intr_gen) & 0x7fffffffu;
}

bool wr__intr_since(uint32_t gen) {
  if (gen == UINT32_MAX) return true;
  if ((atomic_load(&intr_gen) & 0x7fffffffu) == gen) return false;
  atomic_store(&intr_pending, 0);
  return true;
}

int64_t wr__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int wr__futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *abs_deadline) {
  struct timespec slice;
  int64_t now = wr__now_ns(), end = now + wr__wait_slice_ns;
  bool final = false;
  if (abs_deadline) {
    int64_t d = (int64_t)abs_deadline->tv_sec * 1000000000ll + abs_deadline->tv_nsec;
    if (d <= now) return -ETIMEDOUT;
    if (d <= end) {
      end = d;
      final = true;
    }
  }
  slice.tv_sec = end / 1000000000ll;
  slice.tv_nsec = end % 1000000000ll;
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expect, &slice, NULL,
                    FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return 0;
  int e = errno;
  if (e == ETIMEDOUT) return final ? -ETIMEDOUT : 1; /* a slice ended: caller re-checks */
  if (e == EAGAIN || e == EINTR) return e == EINTR ? -EINTR : 0;
  return -e;
}

int wr__futex_wake(_Atomic uint32_t *word, int n) {
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
  return rc < 0 ? -errno : (int)rc;
}

/* ------------------------------------------------------------ asymmetric fence */

int wr__fence_registered;          /* this process may use the light fence */
static _Atomic int membarrier_ok = -1; /* -1 unknown, 0 no, 1 GLOBAL_EXPEDITED works */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fence_atfork_child(void) { wr__fence_registered = 0; }
static void fence_atfork_setup(void) { pthread_atfork(NULL, NULL, fence_atfork_child); }

static int membarrier_usable(void) {
  int ok = atomic_load_explicit(&membarrier_ok, memory_order_relaxed);
  if (ok < 0) {
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    ok = q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
         (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
    atomic_store_explicit(&membarrier_ok, ok, memory_order_relaxed);
  }
  return ok;
}

void wr__fence_register(void) {
  if (wr__fence_registered) return;
  pthread_once(&atfork_once, fence_atfork_setup);
  if (membarrier_usable() &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0)
    wr__fence_registered = 1;
}

void wr__fence_heavy(void) {
  atomic_thread_fence(memory_order_seq_cst);
  if (membarrier_usable()) syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}
