/*
 * watchdog.c: the stuck-worker watchdog (`watchdog_s`, DESIGN.md
 * "Supervisor").
 *
 * Death is learned from the exit status libuv reports, never here: the
 * watchdog only finds a worker that is alive but stuck. A heartbeat is
 * either a move of the worker's arena-slot counter (libwarren bumps it on
 * sends, receives, every slice of a blocking wait and in wr_worker_alive;
 * read here with wr_slot_info_get) or a WATCHDOG=1 datagram on the notify
 * socket (notify.c, the sd_notify protocol: programs written for systemd's
 * WatchdogSec). One repeating timer, started only when some worker has a
 * watchdog_s (a run without one wakes for nothing but its stats timer),
 * samples every READY instance that has one, at a quarter of the shortest
 * watchdog_s (25 ms .. 1 s). An instance whose heartbeat has not moved for
 * watchdog_s since it became ready is stuck: EV_WATCHDOG (lifecycle.c)
 * logs worker.stuck and SIGKILLs its group. Its state is reclaimed by the
 * exit callback as after any death, the restart policy applies, and the
 * exit is logged with by=watchdog.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <signal.h>

static void on_tick(uv_timer_t *t) {
  struct sup *s = t->data;
  /* WATCHDOG=1 datagrams queued while the loop was busy count before the
   * verdict (libuv runs timers before polling). */
  notify_drain(s);
  uint64_t now = sup_now_ms(s);
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    double wd = s->cfg->workers[in->w].watchdog_s;
    if (wd <= 0 || in->state != ST_READY || in->stuck) continue;
    wr_slot_info si;
    if (wr_slot_info_get(s->arena, in->slot, &si) == 0 && si.incarnation == in->incarnation &&
        si.heartbeat != in->hb_seen) {
      in->hb_seen = si.heartbeat;
      in->hb_ms = now;
    }
    if (now - in->hb_ms >= (uint64_t)(wd * 1000)) sup_dispatch(in, EV_WATCHDOG);
  }
}

void watchdog_arm(struct sup *s) {
  double min = 0;
  for (int i = 0; i < s->cfg->nworkers; i++) {
    double wd = s->cfg->workers[i].watchdog_s;
    if (wd > 0 && (min == 0 || wd < min)) min = wd;
  }
  if (min == 0) {
    uv_timer_stop(&s->watchdog_timer);
    return;
  }
  uint64_t tick = (uint64_t)(min * 1000 / 4);
  tick = tick < 25 ? 25 : tick > 1000 ? 1000 : tick;
  uv_timer_start(&s->watchdog_timer, on_tick, tick, tick);
}

void watchdog_ready(struct inst *in) {
  wr_slot_info si;
  in->hb_seen = wr_slot_info_get(in->sup->arena, in->slot, &si) == 0 ? si.heartbeat : 0;
  in->hb_ms = sup_now_ms(in->sup);
}

void watchdog_beat(struct inst *in) { in->hb_ms = sup_now_ms(in->sup); }

double watchdog_age_s(struct inst *in) {
  if (in->sup->cfg->workers[in->w].watchdog_s <= 0 || in->state != ST_READY) return -1;
  return (double)(sup_now_ms(in->sup) - in->hb_ms) / 1000;
}

void watchdog_kill(struct inst *in) {
  in->stuck = true;
  in->watchdog_kills++;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "worker", in->label);
  cJSON_AddNumberToObject(o, "pid", in->pid);
  cJSON_AddNumberToObject(o, "since_s", watchdog_age_s(in));
  cJSON_AddNumberToObject(o, "watchdog_s", in->sup->cfg->workers[in->w].watchdog_s);
  log_event(LOG_ERROR, "worker.stuck", o);
  spawn_signal(in, SIGKILL);
}
