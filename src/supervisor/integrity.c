/*
 * integrity.c: the arena's checkers after every reclaim. A worker may have
 * scribbled over shared memory before it died (DESIGN.md: it may lose its
 * own data, never crash the supervisor); wr_heap_check and wr_chan_check
 * find it, and an arena.corrupt event (error) says what and after whose
 * death. The same finding is logged once, not at every later reclaim. The
 * supervisor carries on: every lib call it makes survives a scribbled
 * arena (tests/test_hostile.c, tests/fuzz/fuzz_arena.c).
 *
 * At the end of a run (every worker gone) integrity_final logs each
 * declared semaphore's value beside its initial one: a permit a dead
 * worker held and reclaim did not return shows as value < initial.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <string.h>

static char last[2][256]; /* the last finding of each checker */

static void report(int k, const char *check, int rc, const char *why, const char *after) {
  if (!rc) {
    last[k][0] = 0;
    return;
  }
  if (strcmp(last[k], why) == 0) return;
  snprintf(last[k], sizeof last[k], "%s", why);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "check", check);
  cJSON_AddStringToObject(o, "why", why);
  cJSON_AddStringToObject(o, "after", after);
  log_event(LOG_ERROR, "arena.corrupt", o);
}

void integrity_check(struct sup *s, const char *after) {
  char why[256] = "";
  int rc = wr_heap_check(s->arena, NULL, why, sizeof why);
  report(0, "heap", rc, why, after);
  why[0] = 0;
  rc = wr_chan_check(s->arena, why, sizeof why);
  report(1, "chan", rc, why, after);
}

void integrity_final(struct sup *s) {
  for (int i = 0; i < s->cfg->nsems; i++) {
    wr_sem *sem;
    int rc = wr_sem_open(s->arena, s->cfg->sems[i].name, &sem);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->cfg->sems[i].name);
    cJSON_AddNumberToObject(o, "initial", s->cfg->sems[i].value);
    if (rc == 0) {
      cJSON_AddNumberToObject(o, "value", wr_sem_value(sem));
      wr_sem_close(sem);
    } else {
      cJSON_AddStringToObject(o, "error", wr_strerror(rc));
    }
    log_event(rc ? LOG_ERROR : LOG_INFO, "semaphore.stats", o);
  }
}
