/*
 * run.c: the supervisor's core: `warren run`.
 *
 * Order of a run: become a child subreaper; build the arena and every
 * declared object (objects.c); open the notify and control sockets; then
 * start the workers in dependency order (sup_kick: an instance starts when
 * every worker it depends on is ready). From there everything is a reaction
 * to one libuv event, fed to the lifecycle table (lifecycle.c) through
 * sup_dispatch, followed by sup_kick, which starts what may start, drives a
 * stop forward, and ends the run when nothing is left.
 *
 * Restart decisions (DESIGN.md "Supervisor"): policy; a worker up at least
 * fast_fail_s restarts at once, consecutive fast failures back off
 * (initial, doubling, capped, +-20 % jitter), reset after reset_after_s
 * ready; more than `intensity` restarts within period_s -> CRASHLOOP,
 * retried at the cap (or the run ends, on_give_up "exit"). The strategy
 * decides which other instances restart with a failed one.
 *
 * Stop: sources (workers without inputs) first, then the pipeline drains
 * within drain_timeout_s; then SIGTERM in reverse dependency order (an
 * instance is stopped once nothing that depends on it runs), SIGKILL
 * after its stop_timeout; final stats; exit.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

uint64_t sup_now_ms(struct sup *s) {
  uv_update_time(s->loop);
  return uv_now(s->loop);
}

bool inst_running(const struct inst *in) {
  return in->state == ST_STARTING || in->state == ST_READY || in->state == ST_STOPPING;
}

static void log_state(struct inst *in, int from, int ev) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "worker", in->label);
  cJSON_AddStringToObject(o, "from", lc_state_name(from));
  cJSON_AddStringToObject(o, "to", lc_state_name(in->state));
  cJSON_AddStringToObject(o, "on", lc_event_name(ev));
  log_event(LOG_DEBUG, "worker.state", o);
}

static void on_timer(uv_timer_t *t) {
  struct inst *in = t->data;
  sup_dispatch(in, EV_TIMER);
  sup_kick(in->sup);
}

static void arm(struct inst *in, double ms) {
  uv_timer_start(&in->timer, on_timer, ms < 0 ? 0 : (uint64_t)ms, 0);
}

/* Other instances that restart with `in`, per strategy. */
static void strategy_apply(struct sup *s, struct inst *in) {
  int strat = s->cfg->strategy;
  if (strat == STRAT_ONE_FOR_ONE) return;
  int my_order = s->cfg->workers[in->w].order;
  for (int i = 0; i < s->ninst; i++) {
    struct inst *o = s->inst[i];
    if (o == in || o->retiring || o->state == ST_EXITED || (o->state == ST_STOPPED && !o->want))
      continue;
    if (strat == STRAT_REST_FOR_ONE && s->cfg->workers[o->w].order <= my_order) continue;
    o->restart_req = true;
    o->want = true;
    sup_dispatch(o, EV_RESTART);
  }
}

/* Jitter in [-20 %, +20 %]. */
static double jitter(double ms) { return ms * (0.8 + 0.4 * ((double)rand() / RAND_MAX)); }

/* An instance exited while running: the restart policy picks what next. */
static int decide(struct sup *s, struct inst *in) {
  const struct cfg *c = s->cfg;
  const struct cfg_worker *w = &c->workers[in->w];
  bool failed = in->last_code != 0 || in->last_signal != 0;
  if (s->stopping || w->policy == POLICY_NEVER || (w->policy == POLICY_ON_FAILURE && !failed)) {
    in->want = false;
    if (failed && !s->stopping) {
      s->exit_code = SUP_EXIT_FAIL;
      log_msg(LOG_ERROR, "worker.failed", "%s: failed and its policy is %s", in->label,
              w->policy == POLICY_NEVER ? "never" : "on-failure");
      if (w->on_give_up) hook_run(s, in, "on_give_up", w->on_give_up);
    }
    objects_close_outputs(s, in);
    return ST_EXITED;
  }
  uint64_t now = sup_now_ms(s);
  if (in->ready_ms && now - in->ready_ms >= (uint64_t)(c->reset_after_s * 1000)) {
    in->fails = 0;
    in->nrecent = 0;
    in->gave_up = false;
  }
  /* intensity window: restart times within period_s */
  int keep = 0;
  for (int i = 0; i < in->nrecent; i++)
    if (now - in->recent[i] < (uint64_t)(c->period_s * 1000)) in->recent[keep++] = in->recent[i];
  in->nrecent = keep;
  if (in->nrecent < c->intensity + 1) in->recent[in->nrecent++] = now;
  in->restarts++;
  strategy_apply(s, in);

  bool fast = now - in->started_ms < (uint64_t)(c->fast_fail_s * 1000);
  int next;
  double delay;
  if (in->nrecent > c->intensity) {
    next = ST_CRASHLOOP;
    delay = c->backoff_max_ms;
    in->fails++;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "worker", in->label);
    cJSON_AddNumberToObject(o, "restarts", in->nrecent);
    cJSON_AddNumberToObject(o, "period_s", c->period_s);
    log_event(LOG_ERROR, "worker.crashloop", o);
    if (w->on_give_up && !in->gave_up) hook_run(s, in, "on_give_up", w->on_give_up);
    in->gave_up = true;
    if (c->give_up_exit) {
      in->want = false;
      s->exit_code = SUP_EXIT_FAIL;
      sup_stop(s, "crashloop (on_give_up: exit)");
      return ST_EXITED;
    }
  } else if (!fast) {
    in->fails = 0;
    next = ST_STOPPED;
    delay = 0;
  } else {
    in->fails++;
    delay = c->backoff_initial_ms * pow(2, in->fails - 1);
    if (delay > c->backoff_max_ms) delay = c->backoff_max_ms;
    delay = jitter(delay);
    next = ST_BACKOFF;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "worker", in->label);
  cJSON_AddNumberToObject(o, "attempt", (double)in->restarts);
  cJSON_AddNumberToObject(o, "delay_ms", round(delay));
  cJSON_AddStringToObject(o, "state", lc_state_name(next));
  log_event(LOG_INFO, "worker.restart", o);
  if (next != ST_STOPPED) arm(in, delay);
  return next;
}

/* A stop completed. */
static int settle(struct sup *s, struct inst *in) {
  if (in->retiring) { /* reload.c swaps it out; its lanes stay open for the next one */
    in->want = false;
    in->restart_req = false;
    return ST_STOPPED;
  }
  if (in->restart_req && !s->stopping) {
    in->restart_req = false;
    return ST_STOPPED; /* wanted: the kick starts it again */
  }
  in->restart_req = false;
  in->want = false;
  objects_close_outputs(s, in);
  return ST_STOPPED;
}

void sup_dispatch(struct inst *in, int ev) {
  struct sup *s = in->sup;
  const struct lc_step *st = lc_step(in->state, ev);
  int from = in->state, next = st->next;
  if (ev == EV_EXIT) uv_timer_stop(&in->timer);
  const struct cfg_worker *w = &s->cfg->workers[in->w];
  switch (st->action) {
  case A_NONE:
    break;
  case A_SPAWN: {
    int rc = spawn_inst(s, in);
    if (rc) {
      log_msg(LOG_ERROR, "worker.failed", "%s: cannot start: %s", in->label, wr_strerror(rc));
      in->last_code = 127;
      in->last_signal = 0;
      in->started_ms = sup_now_ms(s);
      in->state = ST_STARTING;
      next = decide(s, in);
      break;
    }
    in->started_ms = sup_now_ms(s);
    in->ready_ms = 0;
    arm(in, w->start_timeout_s * 1000);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "worker", in->label);
    cJSON_AddNumberToObject(o, "pid", in->pid);
    cJSON_AddNumberToObject(o, "slot", in->slot);
    cJSON_AddNumberToObject(o, "incarnation", in->incarnation);
    log_event(LOG_INFO, "worker.start", o);
    break;
  }
  case A_ARM: {
    uv_timer_stop(&in->timer);
    in->ready_ms = sup_now_ms(s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "worker", in->label);
    cJSON_AddNumberToObject(o, "pid", in->pid);
    log_event(LOG_INFO, "worker.ready", o);
    watchdog_ready(in);
    break;
  }
  case A_TERM:
    spawn_signal(in, SIGTERM);
    arm(in, w->stop_timeout_s * 1000);
    break;
  case A_KILL:
    log_msg(LOG_WARN, "worker.kill", "%s: no exit within stop_timeout, SIGKILL", in->label);
    spawn_signal(in, SIGKILL);
    break;
  case A_TIMEOUT:
    log_msg(LOG_ERROR, "worker.timeout", "%s: not ready within start_timeout, SIGKILL", in->label);
    spawn_signal(in, SIGKILL);
    break;
  case A_STUCK:
    watchdog_kill(in);
    break;
  case A_CANCEL:
    uv_timer_stop(&in->timer);
    break;
  case A_DECIDE:
    next = decide(s, in);
    break;
  case A_SETTLE:
    next = settle(s, in);
    break;
  }
  in->state = next;
  if (from != next) log_state(in, from, ev);
  /* "ready": "exec": posix_spawn returns only once the exec succeeded. */
  if (st->action == A_SPAWN && next == ST_STARTING && w->ready == READY_EXEC)
    sup_dispatch(in, EV_READY);
}

static bool deps_ready(struct sup *s, const struct inst *in) {
  const struct cfg_worker *w = &s->cfg->workers[in->w];
  for (int k = 0; k < w->ndeps; k++) {
    int d = w->dep_idx[k];
    for (int r = 0; r < s->cfg->workers[d].replicas; r++) {
      int st = s->inst[s->winst[d] + r]->state;
      if (st != ST_READY && st != ST_EXITED) return false;
    }
  }
  return true;
}

/* Does any running instance depend on worker `w`? */
static bool dependents_running(struct sup *s, int w) {
  for (int i = 0; i < s->ninst; i++) {
    const struct cfg_worker *o = &s->cfg->workers[s->inst[i]->w];
    if (!inst_running(s->inst[i])) continue;
    for (int k = 0; k < o->ndeps; k++)
      if (o->dep_idx[k] == w) return true;
  }
  return false;
}

static void finish(struct sup *s);
static void on_pipes_timeout(uv_timer_t *t) {
  struct sup *s = t->data;
  s->pipes_forced = true;
  finish(s);
}

/* Every process has exited. The last lines a worker wrote may still be in
 * its pipes (libuv can report the exit first): wait for their end of file
 * (on_read calls sup_kick), at most 2 s (a daemonized grandchild may hold
 * one open), so that they are logged before the final stats. */
static void finish(struct sup *s) {
  if (s->finished) return;
  if (!hooks_drain(s)) return; /* the last hook's exit calls sup_kick again */
  if (s->out_pipes > 0 && !s->pipes_forced) {
    uv_timer_start(&s->drain_timer, on_pipes_timeout, 2000, 0);
    return;
  }
  s->finished = true;
  chaos_stop(s);
  stats_log(s);
  integrity_final(s);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "exit_code", s->exit_code);
  log_event(LOG_INFO, "supervisor.stop", o);
  uv_timer_stop(&s->stats_timer);
  uv_timer_stop(&s->drain_timer);
  uv_timer_stop(&s->watchdog_timer);
  uv_timer_stop(&s->sd_watchdog_timer);
  uv_stop(s->loop);
}

static void stop_next_tier(struct sup *s) {
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    if (in->state != ST_STOPPING && inst_running(in) && !dependents_running(s, in->w))
      sup_dispatch(in, EV_STOP);
  }
}

static void sd_ready_check(struct sup *s) {
  for (int i = 0; i < s->ninst; i++)
    if (s->inst[i]->state != ST_READY && s->inst[i]->state != ST_EXITED) return;
  s->sd_ready = true;
  sdnotify("READY=1\nSTATUS=every worker ready");
}

void sup_kick(struct sup *s) {
  if (s->pending && !s->stopping) reload_progress(s);
  if (!s->sd_ready && !s->stopping && !s->pending) sd_ready_check(s);
  if (s->stopping) {
    bool any = false;
    for (int i = 0; i < s->ninst; i++)
      any = any || inst_running(s->inst[i]);
    if (!any) {
      finish(s);
      return;
    }
    if (!s->draining) stop_next_tier(s);
    return;
  }
  for (int k = 0; k < s->cfg->nworkers; k++) {
    int w = s->cfg->start_order[k];
    for (int r = 0; r < s->cfg->workers[w].replicas; r++) {
      struct inst *in = s->inst[s->winst[w] + r];
      if (in->state == ST_STOPPED && in->want && deps_ready(s, in)) sup_dispatch(in, EV_START);
    }
  }
  bool active = false;
  for (int i = 0; i < s->ninst; i++) {
    const struct inst *in = s->inst[i];
    active = active || !(in->state == ST_EXITED || (in->state == ST_STOPPED && !in->want));
  }
  if (!active) {
    log_msg(LOG_INFO, "supervisor.done", "every worker finished");
    s->stopping = true;
    finish(s);
  }
}

static void on_drain_timeout(uv_timer_t *t) {
  struct sup *s = t->data;
  if (!s->draining) return;
  log_msg(LOG_INFO, "supervisor.drain", "drain ended; stopping the rest");
  s->draining = false;
  sup_kick(s);
}

void sup_stop(struct sup *s, const char *why) {
  if (s->stopping) return;
  s->stopping = true;
  chaos_stop(s);
  sdnotify("STOPPING=1");
  log_msg(LOG_INFO, "supervisor.stopping", "%s", why);
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    in->want = false;
    if (!inst_running(in)) sup_dispatch(in, EV_STOP);
  }
  /* Close the sources and let the pipeline drain. */
  bool sources = false;
  for (int i = 0; i < s->ninst; i++) {
    struct inst *in = s->inst[i];
    const struct cfg_worker *w = &s->cfg->workers[in->w];
    if (w->nin == 0 && w->nout > 0 && inst_running(in)) {
      sources = true;
      sup_dispatch(in, EV_STOP);
    }
  }
  if (sources && s->cfg->drain_timeout_s > 0) {
    s->draining = true;
    uv_timer_start(&s->drain_timer, on_drain_timeout, (uint64_t)(s->cfg->drain_timeout_s * 1000),
                   0);
  }
  sup_kick(s);
}

int sup_restart_worker(struct sup *s, const char *name) {
  int w = -1;
  for (int i = 0; i < s->cfg->nworkers; i++)
    if (strcmp(s->cfg->workers[i].name, name) == 0) w = i;
  if (w < 0 || s->stopping) return -WR_ENOENT;
  for (int r = 0; r < s->cfg->workers[w].replicas; r++) {
    struct inst *in = s->inst[s->winst[w] + r];
    if (in->retiring) continue;
    in->fails = 0;
    in->gave_up = false;
    in->nrecent = 0;
    in->want = true;
    in->restart_req = true;
    sup_dispatch(in, EV_RESTART);
  }
  log_msg(LOG_INFO, "worker.restart_requested", "%s", name);
  sup_kick(s);
  return 0;
}

static void on_signal(uv_signal_t *h, int sig) {
  struct sup *s = h->data;
  if (sig == SIGCHLD) {
    spawn_reap();
  } else if (sig == SIGHUP) {
    cJSON_Delete(reload_request(s, "SIGHUP"));
  } else if (sig == SIGUSR2) {
    logfile_reopen();
    log_msg(LOG_INFO, "log.reopen", "SIGUSR2: log files reopened");
  } else {
    sup_stop(s, sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
}

static void on_stats(uv_timer_t *t) { stats_log(t->data); }

struct inst *inst_new(struct sup *s, int w, int r, uint32_t slot) {
  const struct cfg *c = s->cfg;
  struct inst *in = calloc(1, sizeof *in);
  in->sup = s;
  in->w = w;
  in->replica = r;
  in->slot = slot;
  in->want = true;
  in->recent = calloc((size_t)c->intensity + 2, sizeof(uint64_t));
  if (c->workers[w].replicas > 1)
    snprintf(in->label, sizeof in->label, "%s.%d", c->workers[w].name, r);
  else
    snprintf(in->label, sizeof in->label, "%s", c->workers[w].name);
  uv_timer_init(s->loop, &in->timer);
  in->timer.data = in;
  return in;
}

static void inst_closed(uv_handle_t *h) {
  struct inst *in = h->data;
  free(in->recent);
  free(in);
}

void inst_free(struct inst *in) { uv_close((uv_handle_t *)&in->timer, inst_closed); }

static void self_paths(struct sup *s) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(s->self_dir, sizeof s->self_dir, "%s", exe);
  if (snprintf(s->shim, sizeof s->shim, "%s/warren-shim", exe) >= (int)sizeof s->shim)
    s->shim[0] = 0;
}

/* Pipes of exited workers and of control clients carry their owner's close
 * callback first in their data; everything else is the loop's own. */
static void close_walk(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) return;
  if (h->type == UV_NAMED_PIPE && h != arg && h->data)
    uv_close(h, *(uv_close_cb *)h->data);
  else
    uv_close(h, NULL);
}

int sup_run(struct cfg *c, const char *sock_override) {
  struct sup sup_, *s = &sup_;
  memset(s, 0, sizeof *s);
  s->cfg = c;
  s->notify_fd = -1;
  self_paths(s);
  srand((unsigned)getpid());
  if (access(s->shim, X_OK) != 0) {
    log_msg(LOG_ERROR, "supervisor.error", "%s is missing", s->shim);
    return SUP_EXIT_FAIL;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /* 0-2 taken (on /dev/null if we were started without them), so that no
   * pipe or socket of ours lands there: spawn.c dup2s onto them. */
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) return SUP_EXIT_FAIL;
  /* The guard first, so that it holds no mapping of the arena. */
  int grc = guard_start();
  if (grc) {
    log_msg(LOG_ERROR, "supervisor.error", "cannot start the guard: %s", wr_strerror(grc));
    return SUP_EXIT_FAIL;
  }

  for (int i = 0; i < c->nworkers; i++)
    s->ninst += c->workers[i].replicas;
  if (s->ninst >= WR_MAX_SLOTS) {
    log_msg(LOG_ERROR, "supervisor.error", "%d worker replicas: at most %d", s->ninst,
            WR_MAX_SLOTS - 1);
    guard_stop();
    return SUP_EXIT_USAGE;
  }
  if (objects_build(s)) {
    wr_arena_detach(s->arena);
    guard_stop();
    return SUP_EXIT_FAIL;
  }
  wr_heap_usage u;
  wr_heap_check(s->arena, &u, NULL, 0);
  s->heap_baseline = u.bytes;

  s->loop = uv_default_loop();
  s->inst = calloc((size_t)s->ninst, sizeof *s->inst);
  s->winst = calloc((size_t)c->nworkers, sizeof(int));
  int k = 0;
  for (int w = 0; w < c->nworkers; w++) {
    s->winst[w] = k;
    for (int r = 0; r < c->workers[w].replicas; r++, k++)
      s->inst[k] = inst_new(s, w, r, (uint32_t)k + 1);
  }

  uv_signal_t *sigs[] = {&s->sig_int, &s->sig_term, &s->sig_hup, &s->sig_chld, &s->sig_usr2};
  int signums[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR2};
  for (int i = 0; i < 5; i++) {
    uv_signal_init(s->loop, sigs[i]);
    sigs[i]->data = s;
    uv_signal_start(sigs[i], on_signal, signums[i]);
  }
  signal(SIGPIPE, SIG_IGN);
  uv_timer_init(s->loop, &s->stats_timer);
  uv_timer_init(s->loop, &s->drain_timer);
  uv_timer_init(s->loop, &s->watchdog_timer);
  uv_timer_init(s->loop, &s->sd_watchdog_timer);
  s->stats_timer.data = s->drain_timer.data = s->watchdog_timer.data = s;
  s->sd_watchdog_timer.data = s;

  logfile_configure(c->log_dir, c->log_max_bytes, c->log_files);
  int rc = notify_open(s);
  if (!rc) rc = metrics_listen(s);
  char path[256];
  if (!rc) {
    if (sock_override)
      snprintf(path, sizeof path, "%s", sock_override);
    else if (!(rc = ctl_default_path(c->name, path, sizeof path)))
      ctl_default_path(NULL, s->sock_dir, sizeof s->sock_dir);
  }
  if (!rc) rc = ctl_listen(s, path);
  if (rc) {
    log_msg(LOG_ERROR, "supervisor.error", "cannot open %s: %s",
            rc == -EADDRINUSE ? "the control socket (a run of that name is live)" : "sockets",
            wr_strerror(rc));
    s->exit_code = SUP_EXIT_FAIL;
  } else {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddStringToObject(o, "socket", path);
    cJSON_AddNumberToObject(o, "workers", s->ninst);
    cJSON_AddNumberToObject(o, "heap_bytes", (double)c->heap_size);
    if (s->http_on) cJSON_AddStringToObject(o, "metrics", s->http_addr);
    log_event(LOG_INFO, "supervisor.start", o);
    if (c->stats_interval_ms)
      uv_timer_start(&s->stats_timer, on_stats, c->stats_interval_ms, c->stats_interval_ms);
    watchdog_arm(s);
    sdnotify_watchdog_start(s);
    sup_kick(s);
    chaos_start(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
  }

  /* Every process has exited (finish() runs only then); close the rest. */
  ctl_close(s);
  notify_close(s);
  metrics_close(s);
  events_close_all();
  uv_walk(s->loop, close_walk, &s->ctl);
  uv_run(s->loop, UV_RUN_DEFAULT);
  uv_loop_close(s->loop);
  for (int i = 0; i < s->ninst; i++) {
    free(s->inst[i]->recent);
    free(s->inst[i]);
  }
  free(s->inst);
  if (s->pending) {
    cfg_free(s->pending);
    free(s->pending);
    free(s->late);
  }
  logfile_close_all();
  free(s->winst);
  wr_arena_detach(s->arena);
  guard_stop();
  return s->exit_code;
}
