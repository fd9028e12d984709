/*
 * chaos.c: chaos mode, `warren run --chaos SEED[:RATE]` or the config's
 * "chaos": {"seed": N, "rate": R}. SIGKILLs a random running worker about
 * RATE times a second (each gap drawn uniformly from [0.5, 1.5] / RATE s),
 * so that users can test that their own pipeline loses nothing when
 * workers die at any moment. Seeded (xorshift64*) and logged: chaos.start
 * names the seed, each chaos.kill names the worker, its pid and the kill's
 * number. Which worker a draw hits depends on which are running at that
 * moment, so a seed replays the same choices on the same schedule of
 * events. Stops with the run (sup_stop), never during a stop.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static uv_timer_t timer;
static bool armed;
static uint64_t rng, kills;

static uint64_t next_u64(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545F4914F6CDD1Dull;
}

static uint64_t gap_ms(double rate) {
  double u = (double)(next_u64() >> 11) / (double)(1ull << 53);
  double ms = (0.5 + u) * 1000.0 / rate;
  return ms < 1 ? 1 : (uint64_t)ms;
}

static void on_chaos(uv_timer_t *t) {
  struct sup *s = t->data;
  if (s->stopping) return;
  int n = 0;
  for (int i = 0; i < s->ninst; i++)
    n += s->inst[i]->state == ST_READY && s->inst[i]->pid > 1;
  uint64_t pick = next_u64();
  if (n > 0) {
    int k = (int)(pick % (uint64_t)n);
    for (int i = 0; i < s->ninst; i++) {
      struct inst *in = s->inst[i];
      if (in->state != ST_READY || in->pid <= 1 || k-- != 0) continue;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "worker", in->label);
      cJSON_AddNumberToObject(o, "pid", in->pid);
      cJSON_AddNumberToObject(o, "kill", (double)++kills);
      log_event(LOG_WARN, "chaos.kill", o);
      kill(in->pid, SIGKILL); /* the process only: a crash, not a stop of its group */
      break;
    }
  }
  uv_timer_start(&timer, on_chaos, gap_ms(s->cfg->chaos_rate), 0);
}

int chaos_parse(const char *spec, uint64_t *seed, double *rate) {
  char *end;
  *seed = strtoull(spec, &end, 10);
  *rate = 1;
  if (end == spec || (*end && *end != ':')) return -1;
  if (*end == ':') {
    const char *r = end + 1;
    *rate = strtod(r, &end);
    if (end == r || *end || !(*rate > 0 && *rate <= 1000)) return -1;
  }
  return 0;
}

void chaos_start(struct sup *s) {
  if (!(s->cfg->chaos_rate > 0)) return;
  rng = s->cfg->chaos_seed * 0x9E3779B97F4A7C15ull + 1; /* never 0 */
  kills = 0;
  uv_timer_init(s->loop, &timer);
  timer.data = s;
  armed = true;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "seed", (double)s->cfg->chaos_seed);
  cJSON_AddNumberToObject(o, "rate", s->cfg->chaos_rate);
  log_event(LOG_WARN, "chaos.start", o);
  uv_timer_start(&timer, on_chaos, gap_ms(s->cfg->chaos_rate), 0);
}

void chaos_stop(struct sup *s) {
  if (!armed) return;
  armed = false;
  uv_timer_stop(&timer);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "kills", (double)kills);
  log_event(LOG_INFO, "chaos.stop", o);
}
