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
 * BACKOFF and CRASHLOOP leave through their timer to STOPPED, from where the
 * kick starts them once their dependencies are ready.
 */
#include "sup.h"

#define D ST__COUNT /* decided by the action */

static const struct lc_step table[ST__COUNT][EV__COUNT] = {
    [ST_STOPPED] =
        {
            [EV_START] = {A_SPAWN, ST_STARTING},
            [EV_READY] = {A_NONE, ST_STOPPED},
            [EV_EXIT] = {A_NONE, ST_STOPPED},
            [EV_STOP] = {A_NONE, ST_STOPPED},
            [EV_RESTART] = {A_NONE, ST_STOPPED},
            [EV_TIMER] = {A_NONE, ST_STOPPED},
        },
    [ST_STARTING] =
        {
            [EV_START] = {A_NONE, ST_STARTING},
            [EV_READY] = {A_ARM, ST_READY},
            [EV_EXIT] = {A_DECIDE, D},
            [EV_STOP] = {A_TERM, ST_STOPPING},
            [EV_RESTART] = {A_TERM, ST_STOPPING},
            [EV_TIMER] = {A_TIMEOUT, ST_STARTING},
        },
    [ST_READY] =
        {
            [EV_START] = {A_NONE, ST_READY},
            [EV_READY] = {A_NONE, ST_READY},
            [EV_EXIT] = {A_DECIDE, D},
            [EV_STOP] = {A_TERM, ST_STOPPING},
            [EV_RESTART] = {A_TERM, ST_STOPPING},
            [EV_TIMER] = {A_NONE, ST_READY},
        },
    [ST_STOPPING] =
        {
            [EV_START] = {A_NONE, ST_STOPPING},
            [EV_READY] = {A_NONE, ST_STOPPING},
            [EV_EXIT] = {A_SETTLE, D},
            [EV_STOP] = {A_NONE, ST_STOPPING},
            [EV_RESTART] = {A_NONE, ST_STOPPING},
            [EV_TIMER] = {A_KILL, ST_STOPPING},
        },
    [ST_BACKOFF] =
        {
            [EV_START] = {A_NONE, ST_BACKOFF},
            [EV_READY] = {A_NONE, ST_BACKOFF},
            [EV_EXIT] = {A_NONE, ST_BACKOFF},
            [EV_STOP] = {A_CANCEL, ST_STOPPED},
            [EV_RESTART] = {A_CANCEL, ST_STOPPED},
            [EV_TIMER] = {A_NONE, ST_STOPPED},
        },
    [ST_CRASHLOOP] =
        {
            [EV_START] = {A_NONE, ST_CRASHLOOP},
            [EV_READY] = {A_NONE, ST_CRASHLOOP},
            [EV_EXIT] = {A_NONE, ST_CRASHLOOP},
            [EV_STOP] = {A_CANCEL, ST_STOPPED},
            [EV_RESTART] = {A_CANCEL, ST_STOPPED},
            [EV_TIMER] = {A_NONE, ST_STOPPED},
        },
    [ST_EXITED] =
        {
            [EV_START] = {A_NONE, ST_EXITED},
            [EV_READY] = {A_NONE, ST_EXITED},
            [EV_EXIT] = {A_NONE, ST_EXITED},
            [EV_STOP] = {A_NONE, ST_EXITED},
            [EV_RESTART] = {A_NONE, ST_STOPPED},
            [EV_TIMER] = {A_NONE, ST_EXITED},
        },
};

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
  static const char *const n[EV__COUNT] = {"start", "ready", "exit", "stop", "restart", "timer"};
  return event >= 0 && event < EV__COUNT ? n[event] : "?";
}
