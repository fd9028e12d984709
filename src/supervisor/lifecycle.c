/*
 * lifecycle.c: the worker lifecycle, as one table (state x event -> action,
 * next state), in one place (DESIGN.md house style 6).
 *
 * A worker replica ("instance") is STOPPED until it is wanted and every
 * worker it depends on is READY (sup_kick sends START). STARTING becomes
 * READY on wr_worker_ready / exec success / READY=1. Every exit is learned
 * from libuv's exit status; reclaim runs before the table is consulted, so
 * no transition out of a running state can start a replacement before the
 * dead incarnation's state is reclaimed. Two actions pick the next state
 * themselves (next == ST__COUNT): DECIDE (restart policy, backoff,
 * intensity -> STOPPED to restart now, BACKOFF, CRASHLOOP or EXITED) and
 * SETTLE (a stop completed: STOPPED, started again if a restart asked for it).
 * The watchdog (EV_WATCHDOG, watchdog.c) only acts on a READY instance and
 * only kills it: it stays READY until its exit is reported and decided like
 * any other failure, so a stuck worker is never reclaimed while it runs.
 * BACKOFF and CRASHLOOP leave through their timer to STOPPED, from where the
 * kick starts them once their dependencies are ready.
 */
#include "sup.h"

#define D ST__COUNT /* decided by the action */

/* clang-format off */
/* Short names, so that a row of the table fits on a line. */
enum { STP = ST_STOPPED, STA = ST_STARTING, RDY = ST_READY, SNG = ST_STOPPING,
       BOF = ST_BACKOFF, CRL = ST_CRASHLOOP, EXD = ST_EXITED };
#define T(action, next) {A_##action, next}

static const struct lc_step table[ST__COUNT][EV__COUNT] = {
  /* columns: EV_START, EV_READY, EV_EXIT, EV_STOP, EV_RESTART, EV_TIMER, EV_WATCHDOG */
  [STP] = {T(SPAWN, STA), T(NONE, STP), T(NONE, STP), T(NONE, STP), T(NONE, STP), T(NONE, STP),
           T(NONE, STP)},
  [STA] = {T(NONE, STA), T(ARM, RDY), T(DECIDE, D), T(TERM, SNG), T(TERM, SNG), T(TIMEOUT, STA),
           T(NONE, STA)},
  [RDY] = {T(NONE, RDY), T(NONE, RDY), T(DECIDE, D), T(TERM, SNG), T(TERM, SNG), T(NONE, RDY),
           T(STUCK, RDY)},
  [SNG] = {T(NONE, SNG), T(NONE, SNG), T(SETTLE, D), T(NONE, SNG), T(NONE, SNG), T(KILL, SNG),
           T(NONE, SNG)},
  [BOF] = {T(NONE, BOF), T(NONE, BOF), T(NONE, BOF), T(CANCEL, STP), T(CANCEL, STP), T(NONE, STP),
           T(NONE, BOF)},
  [CRL] = {T(NONE, CRL), T(NONE, CRL), T(NONE, CRL), T(CANCEL, STP), T(CANCEL, STP), T(NONE, STP),
           T(NONE, CRL)},
  [EXD] = {T(NONE, EXD), T(NONE, EXD), T(NONE, EXD), T(NONE, EXD), T(NONE, STP), T(NONE, EXD),
           T(NONE, EXD)},
};
#undef T
/* clang-format on */

const struct lc_step *lc_step(int state, int event) {
  if (state < 0 || state >= ST__COUNT || event < 0 || event >= EV__COUNT) return NULL;
  return &table[state][event];
}

const char *lc_state_name(int state) {
  static const char *const n[ST__COUNT] = {"stopped", "starting",  "ready", "stopping",
                                           "backoff", "crashloop", "exited"};
  return state >= 0 && state < ST__COUNT ? n[state] : "?";
}

const char *lc_event_name(int event) {
  static const char *const n[EV__COUNT] = {"start",   "ready", "exit",    "stop",
                                           "restart", "timer", "watchdog"};
  return event >= 0 && event < EV__COUNT ? n[event] : "?";
}
