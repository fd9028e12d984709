/*
 * config.c: the JSON config, parsed with cJSON and validated completely
 * before anything starts (DESIGN.md "Config").
 *
 * Design: one pass per section walks the JSON with a path string
 * ("workers[1].in[0]") and records every problem as "path: reason" instead
 * of stopping at the first; a second pass checks what spans sections
 * (channels against the workers' in/out, depends_on names and cycles) and
 * resolves executables and directories. Every key of every object is
 * checked against the list of keys that object may have, so a typo is an
 * error, never a silently ignored setting. Only when the list is empty is
 * the config handed to the supervisor.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct pctx {
  struct cfg *c;
  struct cfg_errors *e;
  const char *self_dir;
};

static void err(struct pctx *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(struct pctx *p, const char *path, const char *fmt, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  size_t n = strlen(path) + strlen(reason) + 3;
  char *m = malloc(n);
  if (!m) return;
  snprintf(m, n, "%s: %s", path[0] ? path : "(top)", reason);
  char **v = realloc(p->e->msg, sizeof(char *) * (size_t)(p->e->n + 1));
  if (!v) {
    free(m);
    return;
  }
  p->e->msg = v;
  v[p->e->n++] = m;
}

/* path.key and path[i]; a path too long for its buffer is cut. */
static void sub(char *buf, size_t len, const char *path, const char *key) {
  if (snprintf(buf, len, "%s%s%s", path, path[0] ? "." : "", key) >= (int)len) buf[len - 1] = 0;
}
static void idx(char *buf, size_t len, const char *path, int i) {
  if (snprintf(buf, len, "%s[%d]", path, i) >= (int)len) buf[len - 1] = 0;
}

/* Reject keys of object `o` not in the NULL-terminated `allowed`. */
static void keys_check(struct pctx *p, const cJSON *o, const char *path,
                       const char *const *allowed) {
  for (const cJSON *k = o->child; k; k = k->next) {
    bool ok = false;
    for (const char *const *a = allowed; *a; a++)
      ok = ok || strcmp(*a, k->string) == 0;
    char q[512];
    sub(q, sizeof q, path, k->string);
    if (!ok) err(p, q, "unknown key");
  }
}

static const cJSON *get(const cJSON *o, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* Typed getters: absent -> default, wrong type -> error + default. */
static char *get_str(struct pctx *p, const cJSON *o, const char *path, const char *key,
                     const char *def) {
  const cJSON *v = get(o, key);
  char q[512];
  sub(q, sizeof q, path, key);
  if (!v) return def ? strdup(def) : NULL;
  if (!cJSON_IsString(v)) {
    err(p, q, "must be a string");
    return def ? strdup(def) : NULL;
  }
  return strdup(v->valuestring);
}

static double get_num(struct pctx *p, const cJSON *o, const char *path, const char *key, double def,
                      double min, double max) {
  const cJSON *v = get(o, key);
  char q[512];
  sub(q, sizeof q, path, key);
  if (!v) return def;
  if (!cJSON_IsNumber(v)) {
    err(p, q, "must be a number");
    return def;
  }
  if (!(v->valuedouble >= min && v->valuedouble <= max)) {
    err(p, q, "must be between %g and %g", min, max);
    return def;
  }
  return v->valuedouble;
}

static long get_int(struct pctx *p, const cJSON *o, const char *path, const char *key, long def,
                    long min, long max) {
  const cJSON *v = get(o, key);
  char q[512];
  sub(q, sizeof q, path, key);
  if (v && cJSON_IsNumber(v) && v->valuedouble != floor(v->valuedouble)) {
    err(p, q, "must be an integer");
    return def;
  }
  return (long)get_num(p, o, path, key, (double)def, (double)min, (double)max);
}

static bool get_bool(struct pctx *p, const cJSON *o, const char *path, const char *key, bool def) {
  const cJSON *v = get(o, key);
  char q[512];
  sub(q, sizeof q, path, key);
  if (!v) return def;
  if (!cJSON_IsBool(v)) {
    err(p, q, "must be true or false");
    return def;
  }
  return cJSON_IsTrue(v);
}

/* One of `names` (index), or error + def. */
static int get_enum(struct pctx *p, const cJSON *o, const char *path, const char *key, int def,
                    const char *const *names) {
  char *s = get_str(p, o, path, key, NULL);
  if (!s) return def;
  for (int i = 0; names[i]; i++)
    if (strcmp(names[i], s) == 0) {
      free(s);
      return i;
    }
  char q[512], list[256] = "";
  sub(q, sizeof q, path, key);
  for (int i = 0; names[i]; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "", names[i]);
  err(p, q, "\"%s\" is not one of %s", s, list);
  free(s);
  return def;
}

int cfg_parse_size(const char *s, uint64_t *out) {
  static const struct {
    const char *u;
    uint64_t mul;
  } units[] = {{"", 1},
               {"B", 1},
               {"KiB", 1ull << 10},
               {"MiB", 1ull << 20},
               {"GiB", 1ull << 30},
               {"TiB", 1ull << 40},
               {"kB", 1000},
               {"KB", 1000},
               {"MB", 1000000},
               {"GB", 1000000000},
               {"TB", 1000000000000ull}};
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (end == s || errno || !(v >= 0)) return -1;
  while (*end == ' ')
    end++;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp(end, units[i].u) == 0) {
      double b = v * (double)units[i].mul;
      if (b > 9.0e18 || b != floor(b)) return -1;
      *out = (uint64_t)b;
      return 0;
    }
  return -1;
}

static uint64_t get_size(struct pctx *p, const cJSON *o, const char *path, const char *key,
                         uint64_t def, uint64_t min, uint64_t max) {
  const cJSON *v = get(o, key);
  char q[512];
  sub(q, sizeof q, path, key);
  if (!v) return def;
  uint64_t n;
  if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == floor(v->valuedouble) &&
      v->valuedouble < 9.0e18) {
    n = (uint64_t)v->valuedouble;
  } else if (cJSON_IsString(v)) {
    if (cfg_parse_size(v->valuestring, &n)) {
      err(p, q, "\"%s\" is not a size (a number with B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)",
          v->valuestring);
      return def;
    }
  } else {
    err(p, q, "must be a size: a number of bytes or a string like \"256MiB\"");
    return def;
  }
  if (n < min || n > max) {
    err(p, q, "%llu bytes is out of range [%llu, %llu]", (unsigned long long)n,
        (unsigned long long)min, (unsigned long long)max);
    return def;
  }
  return n;
}

/* Names of objects and workers: letters, digits, '_', '-', '.'; short
 * enough for the arena directory (WR_NAME_MAX) and a log prefix. */
static bool name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= WR_NAME_MAX - 8) return false;
  for (const char *c = s; *c; c++)
    if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
        *c != '_' && *c != '-' && *c != '.')
      return false;
  return true;
}

static char *get_name(struct pctx *p, const cJSON *o, const char *path) {
  char q[512];
  sub(q, sizeof q, path, "name");
  char *s = get_str(p, o, path, "name", NULL);
  if (!s) {
    if (!get(o, "name")) err(p, q, "missing (every object needs a name)");
    return NULL;
  }
  if (!name_ok(s))
    err(p, q, "\"%s\" is not a valid name (1-%d of A-Z a-z 0-9 _ - .)", s, WR_NAME_MAX - 9);
  return s;
}

/* A list of strings; *n gets its length. */
static char **get_strv(struct pctx *p, const cJSON *o, const char *path, const char *key, int *n) {
  const cJSON *v = get(o, key);
  char q[512];
  sub(q, sizeof q, path, key);
  *n = 0;
  if (!v) return calloc(1, sizeof(char *));
  if (!cJSON_IsArray(v)) {
    err(p, q, "must be a list of strings");
    return calloc(1, sizeof(char *));
  }
  int len = cJSON_GetArraySize(v);
  char **out = calloc((size_t)len + 1, sizeof(char *));
  int i = 0;
  for (const cJSON *x = v->child; x; x = x->next, i++) {
    char qi[520];
    idx(qi, sizeof qi, q, i);
    if (!cJSON_IsString(x)) {
      err(p, qi, "must be a string");
      continue;
    }
    out[(*n)++] = strdup(x->valuestring);
  }
  return out;
}

static const cJSON *get_array(struct pctx *p, const cJSON *o, const char *key) {
  const cJSON *v = get(o, key);
  if (v && !cJSON_IsArray(v)) {
    err(p, key, "must be a list");
    return NULL;
  }
  return v;
}

static void parse_ops(struct pctx *p, const cJSON *x, const char *path, struct cfg_worker *w);
static void read_env_file(struct pctx *p, int i, struct cfg_worker *w);

/* ------------------------------------------------------------ sections */

static const char *const top_keys[] = {"name",
                                       "heap",
                                       "channels",
                                       "semaphores",
                                       "workers",
                                       "restart",
                                       "stats_interval_ms",
                                       "drain_timeout_s",
                                       "stop_timeout_s",
                                       "start_timeout_s",
                                       "log_dir",
                                       "log_max_bytes",
                                       "log_files",
                                       "metrics_listen",
                                       "chaos",
                                       NULL};
static const char *const heap_keys[] = {"size", "backend", NULL};
static const char *const chaos_keys[] = {"seed", "rate", NULL};
static const char *const chan_keys[] = {"name", "capacity", "slot_size", "keyed", NULL};
static const char *const sem_keys[] = {"name", "value", NULL};
static const char *const worker_keys[] = {
    "name",       "exec",       "in",         "out",   "replicas",        "restart",
    "depends_on", "env",        "cwd",        "ready", "start_timeout_s", "stop_timeout_s",
    "env_file",   "user",       "group",      "umask", "rlimits",         "nice",
    "on_exit",    "on_give_up", "watchdog_s", NULL};
static const char *const restart_keys[] = {"strategy",      "intensity",          "period_s",
                                           "on_give_up",    "backoff_initial_ms", "backoff_max_ms",
                                           "reset_after_s", "fast_fail_s",        NULL};

static const char *const policy_names[] = {"on-failure", "always", "never", NULL};
static const char *const strategy_names[] = {"one_for_one", "rest_for_one", "one_for_all", NULL};
static const char *const ready_names[] = {"exec", "notify", NULL};
static const char *const give_up_names[] = {"retry", "exit", NULL};
static const char *const backend_names[] = {"memfd", NULL};

static bool is_object(struct pctx *p, const cJSON *v, const char *path) {
  if (cJSON_IsObject(v)) return true;
  err(p, path, "must be an object");
  return false;
}

static void parse_heap(struct pctx *p, const cJSON *root) {
  const cJSON *h = get(root, "heap");
  p->c->heap_size = 64ull << 20;
  if (!h || !is_object(p, h, "heap")) return;
  keys_check(p, h, "heap", heap_keys);
  p->c->heap_size = get_size(p, h, "heap", "size", 64ull << 20, 2ull << 20, 1ull << 40);
  get_enum(p, h, "heap", "backend", 0, backend_names);
}

/* "chaos": {"seed": N, "rate": kills a second} (chaos.c). */
static void parse_chaos(struct pctx *p, const cJSON *root) {
  const cJSON *x = get(root, "chaos");
  if (!x || !is_object(p, x, "chaos")) return;
  keys_check(p, x, "chaos", chaos_keys);
  p->c->chaos_seed = (uint64_t)get_num(p, x, "chaos", "seed", 0, 0, 9007199254740991.0);
  p->c->chaos_rate = get_num(p, x, "chaos", "rate", 1, 0.001, 1000);
}

static void parse_chans(struct pctx *p, const cJSON *root) {
  const cJSON *a = get_array(p, root, "channels");
  int n = a ? cJSON_GetArraySize(a) : 0;
  p->c->chans = calloc((size_t)n + 1, sizeof(struct cfg_chan));
  int i = 0;
  for (const cJSON *x = a ? a->child : NULL; x; x = x->next, i++) {
    char q[64];
    idx(q, sizeof q, "channels", i);
    struct cfg_chan *ch = &p->c->chans[p->c->nchans++];
    if (!is_object(p, x, q)) continue;
    keys_check(p, x, q, chan_keys);
    ch->name = get_name(p, x, q);
    ch->capacity = (uint32_t)get_int(p, x, q, "capacity", 1024, 1, 1 << 24);
    ch->slot_size = (uint32_t)get_size(p, x, q, "slot_size", 256, 8, 1 << 20);
    ch->keyed = get_bool(p, x, q, "keyed", false);
  }
}

static void parse_sems(struct pctx *p, const cJSON *root) {
  const cJSON *a = get_array(p, root, "semaphores");
  int n = a ? cJSON_GetArraySize(a) : 0;
  p->c->sems = calloc((size_t)n + 1, sizeof(struct cfg_sem));
  int i = 0;
  for (const cJSON *x = a ? a->child : NULL; x; x = x->next, i++) {
    char q[64];
    idx(q, sizeof q, "semaphores", i);
    struct cfg_sem *s = &p->c->sems[p->c->nsems++];
    if (!is_object(p, x, q)) continue;
    keys_check(p, x, q, sem_keys);
    s->name = get_name(p, x, q);
    s->value = (uint32_t)get_int(p, x, q, "value", 1, 0, INT32_MAX);
  }
}

static void parse_env(struct pctx *p, const cJSON *x, const char *path, struct cfg_worker *w) {
  const cJSON *e = get(x, "env");
  char q[512];
  sub(q, sizeof q, path, "env");
  w->env = calloc(1, sizeof(char *));
  if (!e) return;
  if (!cJSON_IsObject(e)) {
    err(p, q, "must be an object of strings");
    return;
  }
  w->env = realloc(w->env, sizeof(char *) * ((size_t)cJSON_GetArraySize(e) + 1));
  for (const cJSON *k = e->child; k; k = k->next) {
    char qk[600];
    sub(qk, sizeof qk, q, k->string);
    if (!cJSON_IsString(k)) {
      err(p, qk, "must be a string");
      continue;
    }
    if (!k->string[0] || strchr(k->string, '=')) {
      err(p, qk, "is not a valid variable name");
      continue;
    }
    if (strncmp(k->string, "WARREN_", 7) == 0) {
      err(p, qk, "WARREN_* variables are set by the supervisor");
      continue;
    }
    size_t n = strlen(k->string) + strlen(k->valuestring) + 2;
    char *kv = malloc(n);
    snprintf(kv, n, "%s=%s", k->string, k->valuestring);
    w->env[w->nenv++] = kv;
  }
  w->env[w->nenv] = NULL;
}

static void parse_workers(struct pctx *p, const cJSON *root) {
  const cJSON *a = get_array(p, root, "workers");
  int n = a ? cJSON_GetArraySize(a) : 0;
  if (n == 0 && (a || !get(root, "workers"))) err(p, "workers", "at least one worker is needed");
  p->c->workers = calloc((size_t)n + 1, sizeof(struct cfg_worker));
  int i = 0;
  for (const cJSON *x = a ? a->child : NULL; x; x = x->next, i++) {
    char q[64];
    idx(q, sizeof q, "workers", i);
    struct cfg_worker *w = &p->c->workers[p->c->nworkers++];
    w->argv = calloc(1, sizeof(char *));
    w->in = calloc(1, sizeof(char *));
    w->out = calloc(1, sizeof(char *));
    w->deps = calloc(1, sizeof(char *));
    w->env = calloc(1, sizeof(char *));
    w->replicas = 1;
    if (!is_object(p, x, q)) continue;
    keys_check(p, x, q, worker_keys);
    w->name = get_name(p, x, q);
    int argc;
    free(w->argv);
    w->argv = get_strv(p, x, q, "exec", &argc);
    char qe[80];
    sub(qe, sizeof qe, q, "exec");
    if (!get(x, "exec"))
      err(p, qe, "missing (the command to run, as a list)");
    else if (argc == 0 && cJSON_IsArray(get(x, "exec")))
      err(p, qe, "must not be empty");
    free(w->in);
    free(w->out);
    free(w->deps);
    free(w->env);
    w->in = get_strv(p, x, q, "in", &w->nin);
    w->out = get_strv(p, x, q, "out", &w->nout);
    w->deps = get_strv(p, x, q, "depends_on", &w->ndeps);
    w->replicas = (int)get_int(p, x, q, "replicas", 1, 1, 256);
    w->policy = get_enum(p, x, q, "restart", POLICY_ON_FAILURE, policy_names);
    w->ready =
        get_enum(p, x, q, "ready", (w->nin || w->nout) ? READY_NOTIFY : READY_EXEC, ready_names);
    w->start_timeout_s = get_num(p, x, q, "start_timeout_s", -1, 0.001, 86400);
    w->stop_timeout_s = get_num(p, x, q, "stop_timeout_s", -1, 0.001, 86400);
    /* 0 = off; below 0.1 s a worker blocked in a wait (which beats every
     * 20 ms slice) could be taken for a stuck one on a busy machine */
    w->watchdog_s = get_num(p, x, q, "watchdog_s", 0, 0, 86400);
    if (w->watchdog_s > 0 && w->watchdog_s < 0.1) {
      char qw[80];
      sub(qw, sizeof qw, q, "watchdog_s");
      err(p, qw, "must be 0 (off) or at least 0.1 (seconds)");
      w->watchdog_s = 0;
    }
    parse_env(p, x, q, w);
    w->cwd = get_str(p, x, q, "cwd", NULL);
    parse_ops(p, x, q, w);
  }
}

static void parse_restart(struct pctx *p, const cJSON *root) {
  struct cfg *c = p->c;
  const cJSON *r = get(root, "restart");
  static const cJSON empty;
  if (r && !is_object(p, r, "restart")) r = NULL;
  if (!r) r = &empty;
  keys_check(p, r, "restart", restart_keys);
  c->strategy = get_enum(p, r, "restart", "strategy", STRAT_ONE_FOR_ONE, strategy_names);
  c->intensity = (int)get_int(p, r, "restart", "intensity", 5, 0, 100000);
  c->period_s = get_num(p, r, "restart", "period_s", 10, 0.001, 86400);
  c->give_up_exit = get_enum(p, r, "restart", "on_give_up", 0, give_up_names) == 1;
  c->backoff_initial_ms = (uint32_t)get_int(p, r, "restart", "backoff_initial_ms", 100, 1, 3600000);
  c->backoff_max_ms = (uint32_t)get_int(p, r, "restart", "backoff_max_ms", 30000, 1, 3600000);
  c->reset_after_s = get_num(p, r, "restart", "reset_after_s", 30, 0, 86400);
  c->fast_fail_s = get_num(p, r, "restart", "fast_fail_s", 1, 0, 86400);
  if (c->backoff_max_ms < c->backoff_initial_ms)
    err(p, "restart.backoff_max_ms", "must be >= backoff_initial_ms");
}

/* ------------------------------------------------------------ cross-checks */

static int find_worker(const struct cfg *c, const char *name) {
  for (int i = 0; i < c->nworkers; i++)
    if (c->workers[i].name && strcmp(c->workers[i].name, name) == 0) return i;
  return -1;
}
static int find_chan(const struct cfg *c, const char *name) {
  for (int i = 0; i < c->nchans; i++)
    if (c->chans[i].name && strcmp(c->chans[i].name, name) == 0) return i;
  return -1;
}

static void check_unique(struct pctx *p) {
  struct cfg *c = p->c;
  /* Objects share the arena's directory: one namespace for channels and
   * semaphores. Workers have their own. */
  for (int i = 0; i < c->nchans + c->nsems; i++) {
    const char *ni = i < c->nchans ? c->chans[i].name : c->sems[i - c->nchans].name;
    for (int j = 0; ni && j < i; j++) {
      const char *nj = j < c->nchans ? c->chans[j].name : c->sems[j - c->nchans].name;
      if (nj && strcmp(ni, nj) == 0) {
        char q[64];
        if (i < c->nchans)
          snprintf(q, sizeof q, "channels[%d].name", i);
        else
          snprintf(q, sizeof q, "semaphores[%d].name", i - c->nchans);
        err(p, q, "\"%s\" is already the name of %s", ni,
            j < c->nchans ? "a channel" : "a semaphore");
        break;
      }
    }
  }
  for (int i = 0; i < c->nworkers; i++)
    for (int j = 0; c->workers[i].name && j < i; j++)
      if (c->workers[j].name && strcmp(c->workers[i].name, c->workers[j].name) == 0) {
        char q[64];
        snprintf(q, sizeof q, "workers[%d].name", i);
        err(p, q, "\"%s\" is already the name of workers[%d]", c->workers[i].name, j);
        break;
      }
}

/* Each worker's in/out must name a declared channel (once), and each channel
 * needs at least one producer and one consumer worker. Replica indices:
 * the producers (consumers) of a channel are the replicas of its producing
 * (consuming) workers in config order. */
static void check_channels(struct pctx *p) {
  struct cfg *c = p->c;
  for (int i = 0; i < c->nworkers; i++) {
    struct cfg_worker *w = &c->workers[i];
    w->in_chan = calloc((size_t)w->nin + 1, sizeof(int));
    w->out_chan = calloc((size_t)w->nout + 1, sizeof(int));
    w->in_idx = calloc((size_t)w->nin + 1, sizeof(int));
    w->out_base = calloc((size_t)w->nout + 1, sizeof(int));
    for (int dir = 0; dir < 2; dir++) {
      char **v = dir ? w->out : w->in;
      int n = dir ? w->nout : w->nin;
      for (int k = 0; k < n; k++) {
        char q[96];
        snprintf(q, sizeof q, "workers[%d].%s[%d]", i, dir ? "out" : "in", k);
        int ch = find_chan(c, v[k]);
        (dir ? w->out_chan : w->in_chan)[k] = ch;
        if (ch < 0) {
          err(p, q, "no channel named \"%s\" is declared in channels", v[k]);
          continue;
        }
        for (int j = 0; j < k; j++)
          if (strcmp(v[j], v[k]) == 0) err(p, q, "\"%s\" is listed twice", v[k]);
        for (int j = 0; dir && j < w->nin; j++)
          if (strcmp(w->in[j], v[k]) == 0)
            err(p, q, "\"%s\" is also an input of this worker", v[k]);
        struct cfg_chan *cc = &c->chans[ch];
        uint32_t *count = dir ? &cc->producers : &cc->consumers;
        (dir ? w->out_base : w->in_idx)[k] = (int)*count;
        *count += (uint32_t)w->replicas;
      }
    }
  }
  for (int i = 0; i < c->nchans; i++) {
    struct cfg_chan *cc = &c->chans[i];
    char q[64];
    snprintf(q, sizeof q, "channels[%d]", i);
    if (!cc->name) continue;
    if (cc->producers == 0)
      err(p, q, "channel \"%s\" has no producer (no worker lists it in out)", cc->name);
    if (cc->consumers == 0)
      err(p, q, "channel \"%s\" has no consumer (no worker lists it in in)", cc->name);
    if ((uint64_t)cc->producers * cc->consumers > 1024)
      err(p, q, "%u producers x %u consumers is more than 1024 lanes", cc->producers,
          cc->consumers);
  }
}

/* depends_on: known names, no self, no cycle; then the start order
 * (dependencies first, config order otherwise: Kahn's algorithm). */
static void check_deps(struct pctx *p) {
  struct cfg *c = p->c;
  int n = c->nworkers;
  c->start_order = calloc((size_t)n + 1, sizeof(int));
  int *indeg = calloc((size_t)n + 1, sizeof(int));
  bool bad = false;
  for (int i = 0; i < n; i++) {
    struct cfg_worker *w = &c->workers[i];
    w->dep_idx = calloc((size_t)w->ndeps + 1, sizeof(int));
    for (int k = 0; k < w->ndeps; k++) {
      char q[96];
      snprintf(q, sizeof q, "workers[%d].depends_on[%d]", i, k);
      int d = find_worker(c, w->deps[k]);
      w->dep_idx[k] = d;
      if (d < 0) {
        err(p, q, "no worker named \"%s\"", w->deps[k]);
        bad = true;
      } else if (d == i) {
        err(p, q, "a worker cannot depend on itself");
        bad = true;
      } else {
        indeg[i]++;
      }
    }
  }
  int done = 0;
  bool *placed = calloc((size_t)n + 1, sizeof(bool));
  while (done < n) {
    int pick = -1;
    for (int i = 0; i < n && pick < 0; i++)
      if (!placed[i] && indeg[i] == 0) pick = i;
    if (pick < 0) break;
    placed[pick] = true;
    c->workers[pick].order = done;
    c->start_order[done++] = pick;
    for (int i = 0; i < n; i++)
      for (int k = 0; k < c->workers[i].ndeps; k++)
        if (c->workers[i].dep_idx[k] == pick) indeg[i]--;
  }
  if (done < n && !bad) {
    char cyc[512] = "";
    for (int i = 0; i < n; i++)
      if (!placed[i] && c->workers[i].name)
        snprintf(cyc + strlen(cyc), sizeof cyc - strlen(cyc), "%s%s", cyc[0] ? ", " : "",
                 c->workers[i].name);
    for (int i = 0; i < n; i++)
      if (!placed[i]) {
        char q[64];
        snprintf(q, sizeof q, "workers[%d].depends_on", i);
        err(p, q, "dependency cycle among: %s", cyc);
        break;
      }
  }
  free(indeg);
  free(placed);
}

static char *path_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *s = malloc(n);
  snprintf(s, n, "%s/%s", dir, name);
  return s;
}

static bool executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* argv[0]: a path (relative to the config's directory), or a bare name
 * looked up in the supervisor's own directory and the build tree's sibling
 * directories first (so `warren-worker` is found beside `warren`), then PATH. */
static char *resolve_exec(const char *self_dir, const char *cfg_dir, const char *arg0) {
  if (strchr(arg0, '/')) {
    char *p = arg0[0] == '/' ? strdup(arg0) : path_join(cfg_dir, arg0);
    if (executable(p)) return p;
    free(p);
    return NULL;
  }
  if (self_dir && strncmp(arg0, "warren", 6) == 0) {
    static const char *const rel[] = {"", "/../worker", "/../../tests/workers",
                                      "/../../examples", "/../../bindings/python", NULL};
    for (int i = 0; rel[i]; i++) {
      char d[4096];
      snprintf(d, sizeof d, "%s%s", self_dir, rel[i]);
      char *p = path_join(d, arg0);
      if (executable(p)) return p;
      free(p);
    }
  }
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    char d[4096];
    snprintf(d, sizeof d, "%.*s", (int)(n ? n : 1), n ? path : ".");
    char *p = path_join(d, arg0);
    if (executable(p)) return p;
    free(p);
    path += n + (path[n] == ':');
  }
  return NULL;
}

static void check_files(struct pctx *p) {
  struct cfg *c = p->c;
  for (int i = 0; i < c->nworkers; i++) {
    struct cfg_worker *w = &c->workers[i];
    char q[96];
    if (w->cwd) {
      snprintf(q, sizeof q, "workers[%d].cwd", i);
      char *d = w->cwd[0] == '/' ? strdup(w->cwd) : path_join(c->dir, w->cwd);
      struct stat st;
      if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) err(p, q, "\"%s\" is not a directory", d);
      free(w->cwd);
      w->cwd = d;
    }
    if (w->env_file) read_env_file(p, i, w);
    if (!w->argv[0]) continue;
    snprintf(q, sizeof q, "workers[%d].exec[0]", i);
    w->path = resolve_exec(p->self_dir, c->dir, w->argv[0]);
    if (!w->path) err(p, q, "\"%s\" is not an executable file (nor found on PATH)", w->argv[0]);
  }
}

/* ------------------------------------------------------------ operations (issue 10) */

const char *const cfg_rlimit_names[RL__COUNT + 1] = {"nofile", "as", "cpu", "core", NULL};
const int cfg_rlimit_resources[RL__COUNT] = {RLIMIT_NOFILE, RLIMIT_AS, RLIMIT_CPU, RLIMIT_CORE};

/* One rlimit value: a number (or size with units), or "unlimited". */
static bool rlimit_value(const cJSON *v, uint64_t *out) {
  if (cJSON_IsString(v) && strcmp(v->valuestring, "unlimited") == 0) {
    *out = CFG_UNLIMITED;
    return true;
  }
  if (cJSON_IsString(v)) return cfg_parse_size(v->valuestring, out) == 0;
  if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == floor(v->valuedouble) &&
      v->valuedouble < 9.0e18) {
    *out = (uint64_t)v->valuedouble;
    return true;
  }
  return false;
}

/* "rlimits": {"nofile": 1024, "as": "1GiB", "cpu": [10, 20], "core": "unlimited"}:
 * one value sets soft and hard, a pair [soft, hard] sets each. */
static void parse_rlimits(struct pctx *p, const cJSON *x, const char *path, struct cfg_worker *w) {
  const cJSON *r = get(x, "rlimits");
  char q[512];
  sub(q, sizeof q, path, "rlimits");
  if (!r) return;
  if (!cJSON_IsObject(r)) {
    err(p, q, "must be an object (nofile, as, cpu, core)");
    return;
  }
  keys_check(p, r, q, cfg_rlimit_names);
  for (int i = 0; i < RL__COUNT; i++) {
    const cJSON *v = get(r, cfg_rlimit_names[i]);
    if (!v) continue;
    char qk[600];
    sub(qk, sizeof qk, q, cfg_rlimit_names[i]);
    struct cfg_rlimit *l = &w->rl[i];
    bool ok;
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2)
      ok = rlimit_value(cJSON_GetArrayItem(v, 0), &l->soft) &&
           rlimit_value(cJSON_GetArrayItem(v, 1), &l->hard) && l->soft <= l->hard;
    else
      ok = rlimit_value(v, &l->soft) && ((l->hard = l->soft), true);
    if (!ok) err(p, qk, "must be a number, \"unlimited\" or [soft, hard] with soft <= hard");
    l->set = ok;
  }
}

static char **get_hook(struct pctx *p, const cJSON *x, const char *path, const char *key) {
  if (!get(x, key)) return NULL;
  int n;
  char **v = get_strv(p, x, path, key, &n);
  if (n == 0) {
    char q[512];
    sub(q, sizeof q, path, key);
    err(p, q, "must be a non-empty list (the command to run)");
  }
  return v;
}

/* user, group: names or numbers; changing them needs root. */
static void parse_ids(struct pctx *p, const cJSON *x, const char *path, struct cfg_worker *w) {
  char q[512];
  w->uid = w->gid = -1;
  w->user = get_str(p, x, path, "user", NULL);
  w->group = get_str(p, x, path, "group", NULL);
  if (w->user) {
    sub(q, sizeof q, path, "user");
    struct passwd *pw = getpwnam(w->user);
    char *end;
    long n = strtol(w->user, &end, 10);
    if (!pw && *end == 0 && end != w->user) pw = getpwuid((uid_t)n);
    if (!pw) {
      err(p, q, "no user \"%s\"", w->user);
    } else {
      w->uid = (int)pw->pw_uid;
      if (!w->group) w->gid = (int)pw->pw_gid;
    }
  }
  if (w->group) {
    sub(q, sizeof q, path, "group");
    struct group *gr = getgrnam(w->group);
    char *end;
    long n = strtol(w->group, &end, 10);
    if (!gr && *end == 0 && end != w->group) gr = getgrgid((gid_t)n);
    if (!gr)
      err(p, q, "no group \"%s\"", w->group);
    else
      w->gid = (int)gr->gr_gid;
  }
  if ((w->uid >= 0 && (uid_t)w->uid != geteuid()) || (w->gid >= 0 && (gid_t)w->gid != getegid()))
    if (geteuid() != 0) {
      sub(q, sizeof q, path, w->user ? "user" : "group");
      err(p, q, "changing user or group needs warren to run as root");
    }
}

static void parse_ops(struct pctx *p, const cJSON *x, const char *path, struct cfg_worker *w) {
  char q[512];
  w->env_file = get_str(p, x, path, "env_file", NULL);
  parse_ids(p, x, path, w);
  w->umask = -1;
  char *um = get_str(p, x, path, "umask", NULL);
  if (um) {
    char *end;
    long v = strtol(um, &end, 8);
    sub(q, sizeof q, path, "umask");
    if (!um[0] || *end || v < 0 || v > 0777)
      err(p, q, "\"%s\" is not an octal umask like \"022\"", um);
    else
      w->umask = (int)v;
    free(um);
  }
  w->has_nice = get(x, "nice") != NULL;
  w->nice = (int)get_int(p, x, path, "nice", 0, -20, 19);
  parse_rlimits(p, x, path, w);
  w->on_exit = get_hook(p, x, path, "on_exit");
  w->on_give_up = get_hook(p, x, path, "on_give_up");
}

/* env_file: KEY=VALUE lines; blank lines, "# comments" and a leading
 * "export " are skipped; one pair of surrounding quotes is removed. */
static void read_env_file(struct pctx *p, int i, struct cfg_worker *w) {
  char q[96];
  snprintf(q, sizeof q, "workers[%d].env_file", i);
  char *path = w->env_file[0] == '/' ? strdup(w->env_file) : path_join(p->c->dir, w->env_file);
  free(w->env_file);
  w->env_file = path;
  w->file_env = calloc(1, sizeof(char *));
  FILE *f = fopen(path, "re");
  if (!f) {
    err(p, q, "cannot open %s: %s", path, strerror(errno));
    return;
  }
  char line[8192];
  int ln = 0;
  while (fgets(line, sizeof line, f)) {
    ln++;
    char *s = line, *e = line + strlen(line);
    while (e > s && isspace((unsigned char)e[-1]))
      *--e = 0;
    while (isspace((unsigned char)*s))
      s++;
    if (!*s || *s == '#') continue;
    if (strncmp(s, "export ", 7) == 0) s += 7;
    char *eq = strchr(s, '=');
    size_t kl = eq ? (size_t)(eq - s) : 0;
    bool ok = kl > 0 && strncmp(s, "WARREN_", 7) != 0;
    for (size_t k = 0; ok && k < kl; k++)
      ok = isalnum((unsigned char)s[k]) || s[k] == '_';
    if (!ok) {
      err(p, q, "%s line %d: not KEY=VALUE (or a WARREN_* variable)", path, ln);
      continue;
    }
    char *v = eq + 1;
    size_t vl = strlen(v);
    if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
      v[vl - 1] = 0;
      v++;
    }
    char *kv;
    if (asprintf(&kv, "%.*s=%s", (int)kl, s, v) < 0) continue;
    w->file_env = realloc(w->file_env, sizeof(char *) * ((size_t)w->nfile_env + 2));
    w->file_env[w->nfile_env++] = kv;
    w->file_env[w->nfile_env] = NULL;
  }
  fclose(f);
}

/* metrics_listen: loopback only ("127.0.0.1:9464", "[::1]:9464", "localhost:9464"). */
static void check_listen(struct pctx *p) {
  const char *l = p->c->metrics_listen;
  if (!l) return;
  const char *colon = strrchr(l, ':');
  char host[64] = "";
  long port = -1;
  if (colon && (size_t)(colon - l) < sizeof host) {
    snprintf(host, sizeof host, "%.*s", (int)(colon - l), l);
    char *end;
    port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end) port = -1;
  }
  struct in_addr a4;
  bool loop = strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
              (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127);
  if (!loop || port < 0 || port > 65535)
    err(p, "metrics_listen", "\"%s\" is not a loopback HOST:PORT (127.0.0.1:9464, [::1]:9464)", l);
}

static bool strv_same(char *const *a, char *const *b) {
  if (!a || !b) return a == b;
  for (; *a && *b; a++, b++)
    if (strcmp(*a, *b)) return false;
  return !*a && !*b;
}

static bool str_same(const char *a, const char *b) {
  return (!a || !b) ? a == b : strcmp(a, b) == 0;
}

static bool ints_same(const int *a, const int *b, int n) {
  return n == 0 || memcmp(a, b, sizeof(int) * (size_t)n) == 0;
}

bool cfg_worker_same(const struct cfg_worker *a, const struct cfg_worker *b) {
  return str_same(a->name, b->name) && strv_same(a->argv, b->argv) && str_same(a->path, b->path) &&
         strv_same(a->in, b->in) && strv_same(a->out, b->out) && a->nin == b->nin &&
         a->nout == b->nout && ints_same(a->in_idx, b->in_idx, a->nin) &&
         ints_same(a->out_base, b->out_base, a->nout) && a->replicas == b->replicas &&
         a->policy == b->policy && a->ready == b->ready && strv_same(a->deps, b->deps) &&
         strv_same(a->env, b->env) && strv_same(a->file_env, b->file_env) &&
         str_same(a->cwd, b->cwd) && a->start_timeout_s == b->start_timeout_s &&
         a->stop_timeout_s == b->stop_timeout_s && a->watchdog_s == b->watchdog_s &&
         a->uid == b->uid && a->gid == b->gid && a->umask == b->umask &&
         a->has_nice == b->has_nice && a->nice == b->nice &&
         memcmp(a->rl, b->rl, sizeof a->rl) == 0 && strv_same(a->on_exit, b->on_exit) &&
         strv_same(a->on_give_up, b->on_give_up);
}

bool cfg_chan_same(const struct cfg_chan *a, const struct cfg_chan *b) {
  return str_same(a->name, b->name) && a->capacity == b->capacity && a->slot_size == b->slot_size &&
         a->keyed == b->keyed && a->producers == b->producers && a->consumers == b->consumers;
}

/* ------------------------------------------------------------ entry points */

int cfg_parse(const char *text, const char *file, const char *self_dir, struct cfg *c,
              struct cfg_errors *errs) {
  memset(c, 0, sizeof *c);
  memset(errs, 0, sizeof *errs);
  struct pctx p = {c, errs, self_dir};
  char *fdup = strdup(file ? file : "./config.json");
  char *slash = strrchr(fdup, '/');
  if (slash) {
    *slash = 0;
    c->dir = strdup(slash == fdup ? "/" : fdup);
  } else {
    c->dir = strdup(".");
  }
  free(fdup);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
  if (!root) {
    int line = 1, col = 1;
    for (const char *s = text; end && s < end; s++) {
      col++;
      if (*s == '\n') line++, col = 1;
    }
    err(&p, "", "not valid JSON (near line %d, column %d)", line, col);
    return -1;
  }
  if (is_object(&p, root, "")) {
    keys_check(&p, root, "", top_keys);
    c->name = get_str(&p, root, "", "name", NULL);
    if (!c->name) {
      /* default: the file's name without .json */
      const char *b = file ? strrchr(file, '/') : NULL;
      b = b ? b + 1 : (file ? file : "warren");
      c->name = strndup(b, strcspn(b, "."));
    }
    if (!name_ok(c->name)) err(&p, "name", "\"%s\" is not a valid name", c->name);
    parse_heap(&p, root);
    parse_chaos(&p, root);
    parse_chans(&p, root);
    parse_sems(&p, root);
    parse_workers(&p, root);
    parse_restart(&p, root);
    c->stats_interval_ms = (uint32_t)get_int(&p, root, "", "stats_interval_ms", 5000, 0, 86400000);
    c->drain_timeout_s = get_num(&p, root, "", "drain_timeout_s", 5, 0, 86400);
    c->stop_timeout_s = get_num(&p, root, "", "stop_timeout_s", 10, 0.001, 86400);
    c->start_timeout_s = get_num(&p, root, "", "start_timeout_s", 30, 0.001, 86400);
    c->log_dir = get_str(&p, root, "", "log_dir", NULL);
    c->log_max_bytes = get_size(&p, root, "", "log_max_bytes", 10ull << 20, 1024, 1ull << 40);
    c->log_files = (int)get_int(&p, root, "", "log_files", 5, 0, 100);
    c->metrics_listen = get_str(&p, root, "", "metrics_listen", NULL);
    check_listen(&p);
    if (c->log_dir) {
      char *d = c->log_dir[0] == '/' ? strdup(c->log_dir) : path_join(c->dir, c->log_dir);
      free(c->log_dir);
      c->log_dir = d;
    }
    for (int i = 0; i < c->nworkers; i++) {
      if (c->workers[i].start_timeout_s < 0) c->workers[i].start_timeout_s = c->start_timeout_s;
      if (c->workers[i].stop_timeout_s < 0) c->workers[i].stop_timeout_s = c->stop_timeout_s;
    }
    check_unique(&p);
    check_channels(&p);
    check_deps(&p);
    check_files(&p);
  }
  cJSON_Delete(root);
  return errs->n ? -1 : 0;
}

int cfg_load(const char *file, const char *self_dir, struct cfg *c, struct cfg_errors *errs) {
  memset(c, 0, sizeof *c);
  memset(errs, 0, sizeof *errs);
  FILE *f = fopen(file, "re");
  struct pctx p = {c, errs, self_dir};
  if (!f) {
    err(&p, "", "cannot open %s: %s", file, strerror(errno));
    return -1;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      text = realloc(text, cap);
    }
    size_t r = fread(text + len, 1, 4096, f);
    len += r;
    if (r == 0) break;
  }
  fclose(f);
  text[len] = 0;
  int rc = cfg_parse(text, file, self_dir, c, errs);
  free(text);
  c->file = strdup(file);
  return rc;
}

static void strv_free(char **v) {
  for (char **s = v; s && *s; s++)
    free(*s);
  free(v);
}

void cfg_free(struct cfg *c) {
  for (int i = 0; i < c->nchans; i++)
    free(c->chans[i].name);
  for (int i = 0; i < c->nsems; i++)
    free(c->sems[i].name);
  for (int i = 0; i < c->nworkers; i++) {
    struct cfg_worker *w = &c->workers[i];
    free(w->name);
    strv_free(w->argv);
    free(w->path);
    strv_free(w->in);
    strv_free(w->out);
    strv_free(w->deps);
    strv_free(w->env);
    free(w->in_idx);
    free(w->out_base);
    free(w->in_chan);
    free(w->out_chan);
    free(w->dep_idx);
    free(w->cwd);
    free(w->env_file);
    strv_free(w->file_env);
    free(w->user);
    free(w->group);
    strv_free(w->on_exit);
    strv_free(w->on_give_up);
  }
  free(c->file);
  free(c->log_dir);
  free(c->metrics_listen);
  free(c->chans);
  free(c->sems);
  free(c->workers);
  free(c->start_order);
  free(c->name);
  free(c->dir);
  memset(c, 0, sizeof *c);
}

void cfg_errors_free(struct cfg_errors *e) {
  for (int i = 0; i < e->n; i++)
    free(e->msg[i]);
  free(e->msg);
  memset(e, 0, sizeof *e);
}
