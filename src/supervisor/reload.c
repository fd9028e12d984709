/*
 * reload.c: `warren reload` and SIGHUP: a new config without stopping what
 * did not change.
 *
 * 1. Validate: the config file is read and checked again, as `warren check`
 *    does (env_file contents included). Any error, or a change that needs a
 *    new arena or socket (name, heap.size, metrics_listen), keeps the old
 *    config running untouched; the reply and the supervisor.reload event
 *    list the reasons.
 * 2. Plan: a channel whose shape changed (capacity, slot_size, keyed,
 *    producer or consumer counts) or that is gone must be rebuilt with
 *    every producer and consumer stopped. An instance retires when its
 *    worker is gone, its definition differs in anything it was started with
 *    (cfg_worker_same: command, env and env_file, limits, hooks, channel
 *    indices...), or it uses a channel being rebuilt. Retiring instances
 *    are stopped (SIGTERM, stop_timeout) without their outputs being closed
 *    and without restart; the others keep running and are not touched.
 *    A producer that closes its output when stopped (the stock stages do)
 *    ends the stream for its consumers; so once the retiring instances have
 *    stopped, a channel they closed is rebuilt too, and its consumers retire
 *    with it (event reload.cascade; repeated until nothing more closes).
 * 3. Swap (reload_progress, from sup_kick, once no retiring instance runs):
 *    each rebuilt channel is emptied into the supervisor's memory (it is
 *    slot 0 and may open any side nobody holds), destroyed, created in its
 *    new shape (capacity raised if the records would not fit: no record is
 *    lost) and refilled in order through producer 0 (by key when keyed);
 *    removed channels are destroyed; new ones created. The config is
 *    swapped; kept instances are re-indexed, retiring ones freed, new ones
 *    created in free slots; sup_kick then starts them in dependency order.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int worker_idx(const struct cfg *c, const char *name) {
  for (int i = 0; i < c->nworkers; i++)
    if (strcmp(c->workers[i].name, name) == 0) return i;
  return -1;
}

static int chan_idx(const struct cfg *c, const char *name) {
  for (int i = 0; i < c->nchans; i++)
    if (strcmp(c->chans[i].name, name) == 0) return i;
  return -1;
}

static bool *g_late; /* the reload in progress: s->late */

/* Old channel i: 0 kept, 1 rebuilt (shape changed, or closed by a retiring
 * producer), 2 removed. */
static int chan_fate(const struct cfg *oc, const struct cfg *nc, int i) {
  int j = chan_idx(nc, oc->chans[i].name);
  return j < 0 ? 2 : cfg_chan_same(&oc->chans[i], &nc->chans[j]) && !(g_late && g_late[i]) ? 0 : 1;
}

static bool retires(const struct cfg *oc, const struct cfg *nc, const struct inst *in) {
  const struct cfg_worker *w = &oc->workers[in->w];
  int j = worker_idx(nc, w->name);
  if (j < 0 || !cfg_worker_same(w, &nc->workers[j])) return true;
  for (int k = 0; k < w->nin + w->nout; k++) {
    int ch = k < w->nin ? w->in_chan[k] : w->out_chan[k - w->nin];
    if (chan_fate(oc, nc, ch)) return true;
  }
  return false;
}

static void add_str(cJSON *arr, const char *s) {
  for (const cJSON *x = arr->child; x; x = x->next)
    if (strcmp(x->valuestring, s) == 0) return;
  cJSON_AddItemToArray(arr, cJSON_CreateString(s));
}

static cJSON *refuse(const char *why, cJSON *errors) {
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "ok", 0);
  cJSON_AddStringToObject(r, "error", why);
  if (errors) cJSON_AddItemToObject(r, "errors", errors);
  cJSON *ev = cJSON_Duplicate(r, 1);
  log_event(LOG_ERROR, "supervisor.reload", ev);
  return r;
}

cJSON *reload_request(struct sup *s, const char *why) {
  if (s->stopping) return refuse("the run is stopping", NULL);
  if (s->pending) return refuse("a reload is in progress", NULL);
  struct cfg *oc = s->cfg, *nc = calloc(1, sizeof *nc);
  struct cfg_errors e;
  cJSON *errs = cJSON_CreateArray();
  if (cfg_load(oc->file, s->self_dir, nc, &e)) {
    for (int i = 0; i < e.n; i++)
      cJSON_AddItemToArray(errs, cJSON_CreateString(e.msg[i]));
    cfg_errors_free(&e);
  } else {
    if (strcmp(nc->name, oc->name))
      cJSON_AddItemToArray(errs, cJSON_CreateString("name: cannot change on reload"));
    if (nc->heap_size != oc->heap_size)
      cJSON_AddItemToArray(errs, cJSON_CreateString("heap.size: cannot change on reload"));
    if (!!nc->metrics_listen != !!oc->metrics_listen ||
        (nc->metrics_listen && strcmp(nc->metrics_listen, oc->metrics_listen)))
      cJSON_AddItemToArray(errs, cJSON_CreateString("metrics_listen: cannot change on reload"));
    int n = 0;
    for (int i = 0; i < nc->nworkers; i++)
      n += nc->workers[i].replicas;
    if (n >= WR_MAX_SLOTS)
      cJSON_AddItemToArray(errs, cJSON_CreateString("workers: too many replicas"));
  }
  if (cJSON_GetArraySize(errs)) {
    cfg_free(nc);
    free(nc);
    return refuse("invalid config; the old one keeps running", errs);
  }
  cJSON_Delete(errs);

  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "ok", 1);
  cJSON_AddStringToObject(r, "by", why);
  cJSON *restart = cJSON_AddArrayToObject(r, "restart");
  cJSON *add = cJSON_AddArrayToObject(r, "add");
  cJSON *remove = cJSON_AddArrayToObject(r, "remove");
  cJSON *rebuild = cJSON_AddArrayToObject(r, "rebuild");
  for (int i = 0; i < oc->nchans; i++)
    if (chan_fate(oc, nc, i) == 1) add_str(rebuild, oc->chans[i].name);
  for (int i = 0; i < nc->nworkers; i++)
    if (worker_idx(oc, nc->workers[i].name) < 0) add_str(add, nc->workers[i].name);
  int kept = 0;
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    const char *name = oc->workers[in->w].name;
    if (!retires(oc, nc, in)) {
      kept++;
      continue;
    }
    add_str(worker_idx(nc, name) < 0 ? remove : restart, name);
    in->retiring = true;
    in->want = false;
    sup_dispatch(in, EV_STOP);
  }
  cJSON_AddNumberToObject(r, "unchanged", kept);
  s->pending = nc;
  s->late = g_late = calloc((size_t)oc->nchans + 1, sizeof(bool));
  sdnotify("RELOADING=1");
  log_event(LOG_INFO, "supervisor.reload", cJSON_Duplicate(r, 1));
  sup_kick(s);
  return r;
}

/* ------------------------------------------------------------ the swap */

struct saved {
  uint64_t key;
  uint32_t len;
  char data[];
};

/* Everything still in channel `name`, in lane order; *n records. */
static struct saved **drain(struct sup *s, const struct cfg_chan *ch, size_t *n) {
  struct saved **v = NULL;
  size_t cap = 0;
  *n = 0;
  for (uint32_t c = 0; c < ch->consumers; c++) {
    wr_chan *h;
    int rc = wr_chan_open(s->arena, ch->name, WR_CONSUMER, c, &h);
    if (rc) {
      log_msg(LOG_ERROR, "reload.error", "%s: cannot open consumer %u: %s", ch->name, c,
              wr_strerror(rc));
      continue;
    }
    wr_rec rec;
    while (wr_chan_peek(h, &rec, 0) == 0) {
      if (*n == cap) v = realloc(v, sizeof *v * (cap = cap ? 2 * cap : 64));
      struct saved *x = malloc(sizeof *x + rec.len);
      x->key = rec.key;
      x->len = rec.len;
      memcpy(x->data, rec.data, rec.len);
      v[(*n)++] = x;
      wr_chan_release(h, &rec);
    }
    wr_chan_detach(h);
  }
  return v;
}

static void refill(struct sup *s, const struct cfg_chan *ch, struct saved **v, size_t n) {
  wr_chan *h = NULL;
  int rc = n ? wr_chan_open(s->arena, ch->name, WR_PRODUCER, 0, &h) : 0;
  size_t sent = 0;
  for (size_t i = 0; !rc && i < n; i++, sent++) {
    if (v[i]->len <= ch->slot_size) {
      rc = wr_chan_send_key(h, v[i]->key, v[i]->data, v[i]->len, 0);
    } else {
      void *b;
      rc = wr_alloc(s->arena, v[i]->len, &b);
      if (!rc) {
        memcpy(b, v[i]->data, v[i]->len);
        rc = wr_chan_send_block_key(h, v[i]->key, b, v[i]->len, 0);
        if (rc) wr_free(s->arena, b);
      }
    }
  }
  wr_chan_detach(h);
  if (rc)
    log_msg(LOG_ERROR, "reload.error", "%s: %zu of %zu records carried over: %s", ch->name, sent, n,
            wr_strerror(rc));
}

static void rebuild(struct sup *s, const struct cfg_chan *old, const struct cfg_chan *neu) {
  size_t n = 0;
  struct saved **v = old ? drain(s, old, &n) : NULL;
  int rc = old ? wr_chan_destroy(s->arena, old->name) : 0;
  if (rc) log_msg(LOG_ERROR, "reload.error", "%s: destroy: %s", old->name, wr_strerror(rc));
  if (neu) {
    wr_chan_opts o = {.capacity = neu->capacity,
                      .slot_size = neu->slot_size,
                      .producers = neu->producers,
                      .consumers = neu->consumers,
                      .flags = neu->keyed ? WR_CHAN_KEYED : 0};
    if (n > o.capacity) {
      o.capacity = (uint32_t)n;
      log_msg(LOG_WARN, "reload.capacity", "%s: capacity raised to %zu to hold its records",
              neu->name, n);
    }
    rc = wr_chan_create(s->arena, neu->name, &o);
    if (rc) log_msg(LOG_ERROR, "reload.error", "%s: create: %s", neu->name, wr_strerror(rc));
    if (!rc) refill(s, neu, v, n);
  } else if (n) {
    log_msg(LOG_WARN, "reload.dropped", "%s: removed with %zu records", old->name, n);
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "channel", old ? old->name : neu->name);
  cJSON_AddStringToObject(o, "action", !old ? "create" : neu ? "rebuild" : "destroy");
  cJSON_AddNumberToObject(o, "records", (double)n);
  log_event(LOG_INFO, "channel.rebuild", o);
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void swap_channels(struct sup *s, const struct cfg *oc, const struct cfg *nc) {
  for (int i = 0; i < oc->nchans; i++) {
    int f = chan_fate(oc, nc, i);
    if (f) rebuild(s, &oc->chans[i], f == 1 ? &nc->chans[chan_idx(nc, oc->chans[i].name)] : NULL);
  }
  for (int j = 0; j < nc->nchans; j++)
    if (chan_idx(oc, nc->chans[j].name) < 0) rebuild(s, NULL, &nc->chans[j]);
}

static void stats_timer_cb(uv_timer_t *t) { stats_log(t->data); }

static bool uses(const struct cfg_worker *w, int ch, bool out) {
  for (int k = 0; k < (out ? w->nout : w->nin); k++)
    if ((out ? w->out_chan : w->in_chan)[k] == ch) return true;
  return false;
}

/* A kept channel that a retiring producer closed: rebuild it and retire its
 * consumers (they saw, or will see, the end of the stream). True if any. */
static bool cascade(struct sup *s) {
  const struct cfg *oc = s->cfg;
  bool more = false;
  for (int i = 0; i < oc->nchans; i++) {
    if (chan_fate(oc, s->pending, i)) continue;
    bool retiring_producer = false;
    for (int k = 0; k < s->ninst; k++)
      retiring_producer |= s->inst[k]->retiring && uses(&oc->workers[s->inst[k]->w], i, true);
    if (!retiring_producer) continue;
    wr_lane_stats few[64], *ls = few;
    int n = wr_chan_stats(s->arena, oc->chans[i].name, few, 64);
    wr_lane_stats *big = n > 64 ? calloc((size_t)n, sizeof *big) : NULL;
    if (big) {
      ls = big;
      n = wr_chan_stats(s->arena, oc->chans[i].name, ls, (size_t)n);
    }
    bool closed = false;
    for (int l = 0; l < n && (big || l < 64); l++)
      closed |= ls[l].closed != 0;
    free(big);
    if (!closed) continue;
    s->late[i] = more = true;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "channel", oc->chans[i].name);
    cJSON *who = cJSON_AddArrayToObject(o, "restart");
    for (int k = 0; k < s->ninst; k++) {
      struct inst *in = s->inst[k];
      if (in->retiring || !uses(&oc->workers[in->w], i, false)) continue;
      cJSON_AddItemToArray(who, cJSON_CreateString(in->label));
      in->retiring = true;
      in->want = false;
      sup_dispatch(in, EV_STOP);
    }
    log_event(LOG_INFO, "reload.cascade", o);
  }
  return more;
}

void reload_progress(struct sup *s) {
  do {
    for (int i = 0; i < s->ninst; i++)
      if (s->inst[i]->retiring && inst_running(s->inst[i])) return;
  } while (cascade(s));
  struct cfg *nc = s->pending, old = *s->cfg;
  s->pending = NULL;
  swap_channels(s, &old, nc);
  int ninst = 0;
  for (int i = 0; i < nc->nworkers; i++)
    ninst += nc->workers[i].replicas;
  struct inst **v = calloc((size_t)ninst + 1, sizeof *v);
  int *winst = calloc((size_t)nc->nworkers + 1, sizeof(int));
  bool used[WR_MAX_SLOTS] = {true}; /* slot 0 is the supervisor's */
  /* kept instances first (their slots stay theirs) */
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    if (in->retiring) continue;
    int w = worker_idx(nc, old.workers[in->w].name);
    in->w = w;
    used[in->slot] = true;
    if (nc->intensity != old.intensity) {
      free(in->recent);
      in->recent = calloc((size_t)nc->intensity + 2, sizeof(uint64_t));
      in->nrecent = 0;
    }
  }
  *s->cfg = *nc; /* inst_new reads the new config */
  free(nc);
  int k = 0, fresh = 0;
  uint32_t next = 1;
  for (int w = 0; w < s->cfg->nworkers; w++) {
    winst[w] = k;
    for (int r = 0; r < s->cfg->workers[w].replicas; r++, k++) {
      for (int i = 0; i < s->ninst && !v[k]; i++)
        if (!s->inst[i]->retiring && s->inst[i]->w == w && s->inst[i]->replica == r)
          v[k] = s->inst[i];
      if (v[k]) continue;
      while (used[next])
        next++;
      used[next] = true;
      v[k] = inst_new(s, w, r, next);
      fresh++;
    }
  }
  for (int i = 0; i < s->ninst; i++)
    if (s->inst[i]->retiring) inst_free(s->inst[i]);
  free(s->inst);
  free(s->winst);
  s->inst = v;
  s->winst = winst;
  s->ninst = ninst;
  cfg_free(&old);
  free(s->late);
  s->late = g_late = NULL;
  wr_heap_usage u;
  wr_heap_check(s->arena, &u, NULL, 0);
  s->heap_baseline = u.bytes;
  logfile_configure(s->cfg->log_dir, s->cfg->log_max_bytes, s->cfg->log_files);
  uv_timer_stop(&s->stats_timer);
  if (s->cfg->stats_interval_ms)
    uv_timer_start(&s->stats_timer, stats_timer_cb, s->cfg->stats_interval_ms,
                   s->cfg->stats_interval_ms);
  watchdog_arm(s);
  s->sd_ready = false; /* READY=1 again once every worker is ready */
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "workers", ninst);
  cJSON_AddNumberToObject(o, "started", fresh);
  log_event(LOG_INFO, "supervisor.reloaded", o);
}
