/*
 * objects.c: the arena and the objects a config declares, and every call
 * the supervisor makes into the channel and synchronisation modules, so
 * that the rest of the supervisor sees them through a few functions.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int objects_build(struct sup *s) {
  struct cfg *c = s->cfg;
  wr_arena_opts o = {.size = c->heap_size, .backend = WR_BACKEND_MEMFD};
  int rc = wr_arena_create(&o, &s->arena);
  if (rc) {
    log_msg(LOG_ERROR, "supervisor.error", "cannot create the arena: %s", wr_strerror(rc));
    return rc;
  }
  for (int i = 0; i < c->nchans; i++) {
    const struct cfg_chan *ch = &c->chans[i];
    wr_chan_opts co = {.capacity = ch->capacity,
                       .slot_size = ch->slot_size,
                       .producers = ch->producers,
                       .consumers = ch->consumers,
                       .flags = ch->keyed ? WR_CHAN_KEYED : 0};
    rc = wr_chan_create(s->arena, ch->name, &co);
    if (rc) {
      log_msg(LOG_ERROR, "supervisor.error", "cannot create channel %s: %s", c->chans[i].name,
              wr_strerror(rc));
      return rc;
    }
  }
  for (int i = 0; i < c->nsems; i++) {
    rc = wr_sem_create(s->arena, c->sems[i].name, c->sems[i].value);
    if (rc) {
      log_msg(LOG_ERROR, "supervisor.error", "cannot create semaphore %s: %s", c->sems[i].name,
              wr_strerror(rc));
      return rc;
    }
  }
  return 0;
}

/* A producer that exits for good: close its lanes so consumers drain them
 * and then see end of stream. */
void objects_close_outputs(struct sup *s, struct inst *in) {
  const struct cfg_worker *w = &s->cfg->workers[in->w];
  for (int k = 0; k < w->nout; k++)
    wr_chan_close_side(s->arena, w->out[k], WR_PRODUCER, (uint32_t)(w->out_base[k] + in->replica));
}

int objects_chan_reclaim(wr_arena *a, uint32_t slot, uint32_t inc, uint64_t *redelivered) {
  *redelivered = 0;
  return wr_chan_reclaim(a, slot, inc, redelivered);
}

int objects_sync_reclaim(wr_arena *a, uint32_t slot, uint32_t inc, uint64_t *permits) {
  *permits = 0;
  return wr_sync_reclaim(a, slot, inc, permits);
}

/* Per-lane statistics of every declared channel, as a JSON array. The rate
 * is records per second since the previous call (0 on the first). */
cJSON *objects_chan_stats(struct sup *s) {
  cJSON *arr = cJSON_CreateArray();
  enum { MAXL = 1024 };
  static uint64_t prev_sent[4096], prev_ms;
  uint64_t now = sup_now_ms(s);
  double dt = prev_ms && now > prev_ms ? (double)(now - prev_ms) / 1000 : 0;
  wr_lane_stats *ls = calloc(MAXL, sizeof *ls);
  int base = 0;
  for (int i = 0; ls && i < s->cfg->nchans; i++) {
    int n = wr_chan_stats(s->arena, s->cfg->chans[i].name, ls, MAXL);
    for (int l = 0; l < n && l < MAXL; l++, base++) {
      const wr_lane_stats *x = &ls[l];
      uint64_t *prev = base < 4096 ? &prev_sent[base] : NULL;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "channel", s->cfg->chans[i].name);
      cJSON_AddNumberToObject(o, "lane", l);
      cJSON_AddNumberToObject(o, "producer", x->producer);
      cJSON_AddNumberToObject(o, "consumer", x->consumer);
      cJSON_AddNumberToObject(o, "sent", (double)x->sent);
      cJSON_AddNumberToObject(o, "received", (double)x->received);
      cJSON_AddNumberToObject(o, "bytes", (double)x->bytes);
      cJSON_AddNumberToObject(o, "rate", dt > 0 && prev ? (double)(x->sent - *prev) / dt : 0);
      cJSON_AddNumberToObject(o, "depth", (double)x->depth);
      cJSON_AddNumberToObject(o, "capacity", x->capacity);
      cJSON_AddNumberToObject(o, "hwm", (double)x->hwm);
      cJSON_AddNumberToObject(o, "full_waits", (double)x->full_waits);
      cJSON_AddNumberToObject(o, "empty_waits", (double)x->empty_waits);
      cJSON_AddNumberToObject(o, "redelivered", (double)x->redelivered);
      cJSON_AddBoolToObject(o, "closed", x->closed != 0);
      cJSON_AddItemToArray(arr, o);
      if (prev) *prev = x->sent;
    }
  }
  free(ls);
  prev_ms = now;
  return arr;
}
