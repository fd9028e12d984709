/*
 * stats.c: what `warren status` and `warren stats` report, and the periodic
 * heap.stats / channel.stats events (every stats_interval_ms and at stop).
 * Heap usage comes from wr_heap_check (an exact scan of every block tag,
 * which also validates the heap invariant) plus the arena's counters.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <unistd.h>

cJSON *stats_heap(struct sup *s) {
  cJSON *o = cJSON_CreateObject();
  wr_heap_usage u = {0};
  wr_heap_stats st = {0};
  char why[256] = "";
  int rc = wr_heap_check(s->arena, &u, why, sizeof why);
  wr_heap_stats_get(s->arena, &st);
#define N(k, v) cJSON_AddNumberToObject(o, k, (double)(v))
  N("bytes", u.bytes);
  N("blocks", u.blocks);
  N("baseline_bytes", s->heap_baseline);
  N("worker_bytes", u.worker_bytes);
  N("lane_bytes", u.lane_bytes);
  N("name_bytes", u.name_bytes);
  N("pending_bytes", u.pending_bytes);
  N("free_page_bytes", u.free_page_bytes);
  N("heap_bytes", st.heap_bytes);
  N("pages_in_use", st.pages_in_use);
  N("pages_hwm", st.pages_hwm);
  N("allocs", st.allocs);
  N("frees", st.frees);
  N("reclaims", st.reclaims);
  N("reclaimed_blocks", st.reclaimed_blocks);
  N("reclaimed_bytes", st.reclaimed_bytes);
#undef N
  cJSON_AddStringToObject(o, "check", rc ? why : "ok");
  return o;
}

cJSON *stats_status(struct sup *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", s->cfg->name);
  cJSON_AddNumberToObject(o, "pid", getpid());
  cJSON_AddStringToObject(o, "state", s->stopping ? "stopping" : "running");
  cJSON *arr = cJSON_AddArrayToObject(o, "workers");
  bool all_ready = true;
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "name", in->label);
    cJSON_AddStringToObject(w, "worker", s->cfg->workers[in->w].name);
    cJSON_AddNumberToObject(w, "replica", in->replica);
    cJSON_AddStringToObject(w, "state", lc_state_name(in->state));
    cJSON_AddNumberToObject(w, "pid", in->pid);
    cJSON_AddNumberToObject(w, "slot", in->slot);
    cJSON_AddNumberToObject(w, "incarnation", in->incarnation);
    cJSON_AddNumberToObject(w, "restarts", (double)in->restarts);
    cJSON_AddNumberToObject(w, "last_code", in->last_code);
    cJSON_AddNumberToObject(w, "last_signal", in->last_signal);
    double wd = s->cfg->workers[in->w].watchdog_s, age = watchdog_age_s(in);
    if (wd > 0) {
      cJSON_AddNumberToObject(w, "watchdog_s", wd);
      if (age >= 0)
        cJSON_AddNumberToObject(w, "heartbeat_age_s", age);
      else
        cJSON_AddNullToObject(w, "heartbeat_age_s");
      cJSON_AddNumberToObject(w, "watchdog_kills", (double)in->watchdog_kills);
    }
    double cpu;
    uint64_t rss;
    proc_usage(in->pid, &cpu, &rss);
    cJSON_AddNumberToObject(w, "cpu_s", cpu);
    cJSON_AddNumberToObject(w, "rss_bytes", (double)rss);
    cJSON_AddItemToArray(arr, w);
    /* A worker that finished as its policy says is not "not ready". */
    if (in->state != ST_READY && in->state != ST_EXITED) all_ready = false;
  }
  cJSON_AddBoolToObject(o, "all_ready", all_ready);
  return o;
}

void stats_log(struct sup *s) {
  log_event(LOG_INFO, "heap.stats", stats_heap(s));
  cJSON *lanes = objects_chan_stats(s);
  for (cJSON *l = lanes->child; l; l = l->next)
    log_event(LOG_INFO, "channel.stats", cJSON_Duplicate(l, 1));
  cJSON_Delete(lanes);
}
