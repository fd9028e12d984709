/*
 * hooks.c: per-worker hook commands, `on_exit` (after every exit of an
 * instance, once its state is reclaimed) and `on_give_up` (when it enters
 * CRASHLOOP, once per loop, or fails for good).
 *
 * A hook is started with uv_spawn, in its own process group (registered
 * with the guard like a worker), stdin on /dev/null, stdout and stderr on
 * the supervisor's stderr, in the worker's cwd, with the worker's
 * environment plus WARREN_HOOK (on_exit / on_give_up), WARREN_WORKER (the
 * instance's label), WARREN_EXIT_CODE, WARREN_EXIT_SIGNAL (0 when none),
 * WARREN_RESTARTS and WARREN_SUPERVISOR. The supervisor does not wait for
 * it, except at the end of a run, which waits for the hooks still running
 * (the on_exit hooks of the last exits, say) at most stop_timeout_s before
 * it SIGKILLs them (hooks_drain). Hook pids are known here so that
 * spawn_reap leaves them to libuv.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define MAX_HOOKS 64

struct hook {
  uv_process_t p;
  struct sup *sup;
  char label[64];
  char which[16];
};

static struct hook *g_hooks[MAX_HOOKS];

static void hook_closed(uv_handle_t *h) { free(h->data); }

static void hook_exit(uv_process_t *p, int64_t status, int sig) {
  struct hook *h = p->data;
  struct sup *s = h->sup;
  for (int i = 0; i < MAX_HOOKS; i++)
    if (g_hooks[i] == h) g_hooks[i] = NULL;
  guard_note(p->pid, false);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "worker", h->label);
  cJSON_AddStringToObject(o, "hook", h->which);
  cJSON_AddNumberToObject(o, "pid", p->pid);
  cJSON_AddNumberToObject(o, "code", (double)status);
  if (sig) cJSON_AddStringToObject(o, "signal", strsignal(sig));
  log_event(status || sig ? LOG_WARN : LOG_INFO, "hook.exit", o);
  uv_close((uv_handle_t *)p, hook_closed);
  s->hooks--;
  sup_kick(s);
}

bool hook_pid(int pid) {
  for (int i = 0; i < MAX_HOOKS; i++)
    if (g_hooks[i] && g_hooks[i]->p.pid == pid) return true;
  return false;
}

static uv_timer_t g_timer;
static bool g_timer_on;

static void hooks_timeout(uv_timer_t *t) {
  for (int i = 0; i < MAX_HOOKS; i++)
    if (g_hooks[i] && g_hooks[i]->p.pid > 1) {
      log_msg(LOG_WARN, "hook.kill", "%s %s: still running at the end, SIGKILL",
              g_hooks[i]->label, g_hooks[i]->which);
      kill(-g_hooks[i]->p.pid, SIGKILL);
    }
}

bool hooks_drain(struct sup *s) {
  if (s->hooks == 0) return true;
  if (!g_timer_on) { /* closed with the loop's other handles */
    g_timer_on = true;
    uv_timer_init(s->loop, &g_timer);
    uv_timer_start(&g_timer, hooks_timeout, (uint64_t)(s->cfg->stop_timeout_s * 1000), 0);
  }
  return false;
}

void hook_run(struct sup *s, struct inst *in, const char *which, char *const *argv) {
  const struct cfg_worker *w = &s->cfg->workers[in->w];
  int slot = -1;
  for (int i = 0; i < MAX_HOOKS && slot < 0; i++)
    if (!g_hooks[i]) slot = i;
  if (slot < 0) {
    log_msg(LOG_ERROR, "hook.error", "%s %s: too many hooks running", in->label, which);
    return;
  }
  size_t k;
  char **env = env_for_worker(w, 8, &k);
  if (!env) return;
  char *v;
#define ADD(...)                                                                                   \
  if (asprintf(&v, __VA_ARGS__) >= 0) env[k++] = v
  ADD("WARREN_HOOK=%s", which);
  ADD("WARREN_WORKER=%s", in->label);
  ADD("WARREN_EXIT_CODE=%d", in->last_code);
  ADD("WARREN_EXIT_SIGNAL=%d", in->last_signal);
  ADD("WARREN_RESTARTS=%llu", (unsigned long long)in->restarts);
  ADD("WARREN_SUPERVISOR=%d", (int)getpid());
#undef ADD
  struct hook *h = calloc(1, sizeof *h);
  h->sup = s;
  snprintf(h->label, sizeof h->label, "%s", in->label);
  snprintf(h->which, sizeof h->which, "%s", which);
  uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
                                {.flags = UV_INHERIT_FD, .data.fd = 2},
                                {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t o = {0};
  o.exit_cb = hook_exit;
  o.file = argv[0];
  o.args = (char **)argv;
  o.env = env;
  o.cwd = w->cwd;
  o.flags = UV_PROCESS_DETACHED;
  o.stdio_count = 3;
  o.stdio = io;
  h->p.data = h;
  int rc = uv_spawn(s->loop, &h->p, &o);
  for (size_t i = 0; i < k; i++)
    free(env[i]);
  free(env);
  if (rc) {
    log_msg(LOG_ERROR, "hook.error", "%s %s: cannot start %s: %s", in->label, which, argv[0],
            uv_strerror(rc));
    uv_close((uv_handle_t *)&h->p, hook_closed);
    return;
  }
  g_hooks[slot] = h;
  s->hooks++;
  guard_note(h->p.pid, true);
  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "worker", in->label);
  cJSON_AddStringToObject(ev, "hook", which);
  cJSON_AddNumberToObject(ev, "pid", h->p.pid);
  log_event(LOG_INFO, "hook.start", ev);
}
