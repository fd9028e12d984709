/*
 * test_lifecycle.c: properties of the worker lifecycle table
 * (src/supervisor/lifecycle.c) that the supervisor relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sup.h"

static bool running(int s) { return s == ST_STARTING || s == ST_READY || s == ST_STOPPING; }

/* Only a wanted STOPPED instance starts a process, and only on START. */
static void test_only_start_spawns(void **state) {
  for (int s = 0; s < ST__COUNT; s++)
    for (int e = 0; e < EV__COUNT; e++) {
      const struct lc_step *st = lc_step(s, e);
      assert_non_null(st);
      assert_true(st->next <= ST__COUNT);
      if (st->action == A_SPAWN) {
        assert_int_equal(s, ST_STOPPED);
        assert_int_equal(e, EV_START);
        assert_int_equal(st->next, ST_STARTING);
      }
    }
}

/* An exit is only consulted where a process runs, and always decides or
 * settles there (the reclaim that precedes it is in the exit callback). */
static void test_exit(void **state) {
  for (int s = 0; s < ST__COUNT; s++) {
    const struct lc_step *st = lc_step(s, EV_EXIT);
    if (running(s))
      assert_true(st->action == (s == ST_STOPPING ? A_SETTLE : A_DECIDE));
    else
      assert_int_equal(st->action, A_NONE);
    assert_true(st->next == ST__COUNT || st->next == s);
  }
}

/* A stop always ends up stopped or exited (never running again by itself),
 * and signals only what runs. */
static void test_stop(void **state) {
  for (int s = 0; s < ST__COUNT; s++) {
    const struct lc_step *st = lc_step(s, EV_STOP);
    if (running(s))
      assert_int_equal(st->next, ST_STOPPING);
    else
      assert_true(st->next == ST_STOPPED || st->next == ST_EXITED);
    if (st->action == A_TERM) assert_true(running(s));
  }
}

/* Waiting states leave only through their timer (or a stop/restart) to
 * STOPPED, from where the kick restarts them: never stuck for good. */
static void test_waits_end(void **state) {
  int waits[] = {ST_BACKOFF, ST_CRASHLOOP};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(lc_step(waits[i], EV_TIMER)->next, ST_STOPPED);
    assert_int_equal(lc_step(waits[i], EV_RESTART)->next, ST_STOPPED);
  }
  assert_int_equal(lc_step(ST_EXITED, EV_RESTART)->next, ST_STOPPED);
  assert_null(lc_step(ST__COUNT, 0));
  assert_string_equal(lc_state_name(ST_CRASHLOOP), "crashloop");
  assert_string_equal(lc_event_name(EV_TIMER), "timer");
}

/* The watchdog kills only a READY instance and changes no state: the exit
 * that follows is decided like any failure (reclaim first, never while it
 * runs). */
static void test_watchdog(void **state) {
  for (int s = 0; s < ST__COUNT; s++) {
    const struct lc_step *st = lc_step(s, EV_WATCHDOG);
    assert_int_equal(st->action, s == ST_READY ? A_STUCK : A_NONE);
    assert_int_equal(st->next, s);
  }
  assert_string_equal(lc_event_name(EV_WATCHDOG), "watchdog");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_only_start_spawns),
      cmocka_unit_test(test_exit),
      cmocka_unit_test(test_stop),
      cmocka_unit_test(test_waits_end),
      cmocka_unit_test(test_watchdog),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
