/*
 * crash.c: fault injection. WARREN_CRASH_AT=name[:n][:exit] arms one named
 * crash point (the list is WR__CRASH_MAP in internal.h); the n-th pass
 * through it SIGKILLs the process (or _exit(86)s it). Read once at load
 * time and again on wr_crash_rearm(). Compiled to an empty list when the
 * library is built without crash points.
 */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const crash_names[] = {
#ifdef WR_CRASH_POINTS
#define WR__CRASH_NAME(id, name) name,
    WR__CRASH_MAP(WR__CRASH_NAME)
#undef WR__CRASH_NAME
#endif
    NULL};

const char *const *wr_crash_points(void) { return crash_names; }

#ifdef WR_CRASH_POINTS
_Atomic int wr__crash_armed;
static _Atomic long crash_countdown;
static int crash_use_exit;

void wr_crash_rearm(void) {
  atomic_store(&wr__crash_armed, 0);
  const char *env = getenv("WARREN_CRASH_AT");
  if (!env || !*env) return;
  char buf[128];
  size_t len = strnlen(env, sizeof buf - 1);
  memcpy(buf, env, len);
  buf[len] = 0;
  long n = 1;
  crash_use_exit = 0;
  char *c = strchr(buf, ':');
  if (c) {
    *c++ = 0;
    char *c2 = strchr(c, ':');
    if (c2) {
      *c2++ = 0;
      crash_use_exit = strcmp(c2, "exit") == 0;
    }
    if (strcmp(c, "exit") == 0)
      crash_use_exit = 1;
    else if (*c)
      n = strtol(c, NULL, 10);
  }
  for (int i = 0; crash_names[i]; i++)
    if (strcmp(crash_names[i], buf) == 0) {
      atomic_store(&crash_countdown, n < 1 ? 1 : n);
      atomic_store(&wr__crash_armed, i + 1);
    }
}

void wr__crash_hit(int id) {
  (void)id;
  if (atomic_fetch_sub(&crash_countdown, 1) != 1) return;
  if (crash_use_exit) _exit(86);
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

__attribute__((constructor)) static void crash_init(void) { wr_crash_rearm(); }
#else
void wr_crash_rearm(void) {}
#endif
