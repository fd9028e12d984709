/*
 * spawn.c: starting an instance's process, capturing its output, reaping it.
 *
 * A worker with channels uses libwarren (it must attach to use them), which
 * arms PR_SET_PDEATHSIG itself; any other command is started through
 * warren-shim (shim.c), which arms it and execs in place. The process
 * starts in its own session and process group, registered with the guard
 * (guard.c), with /dev/null on stdin, a socket pair on stdout and stderr,
 * and the arena fd placed at SUP_ARENA_FD (the one inherited fd; everything
 * else is close-on-exec). The environment carries the instance's identity
 * (WARREN_*), after the worker's env_file and env (and WATCHDOG_USEC with
 * watchdog_s, as systemd sets it; a worker with one starts through the
 * shim, which adds WATCHDOG_PID). Each stream is split into lines, logged
 * as "label | line" or written to the worker's log file (logfile.c); a line
 * longer than LINE_MAX_BYTES is cut there, marked, and the rest of it
 * dropped. A worker with user/group, umask, nice or rlimits is started
 * through the shim too, which applies them before its exec.
 *
 * Why posix_spawn and not uv_spawn: libuv 1.44 forks, and a fork of the
 * supervisor copies its page tables, makes every page it writes next fault
 * (copy-on-write) and tears the copy down at the child's exec: ~1.2 ms a
 * start, done one after the other. glibc's posix_spawn is
 * clone(CLONE_VM | CLONE_VFORK): no copy, and it still returns only once
 * the exec succeeded, with the exec's error if it failed (so "ready":
 * "exec" holds). Under valgrind, which turns that clone into a fork, a
 * failed exec shows as the child's exit code 127 instead. The exit is
 * reaped here on SIGCHLD (spawn_reap, by pid: never waitpid(-1), which
 * would steal the hooks' children from libuv).
 *
 * A `struct proc` lives from spawn until its process is reaped and its two
 * pipes are closed; the instance forgets it at the exit, so a replacement
 * can start while the old pipes still drain.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LINE_MAX_BYTES 8192
static const char cut_marker[] = " [...cut: line longer than 8 KiB]";

struct proc {
  uv_close_cb close_cb; /* first: run.c closes leftover pipes through it */
  uv_pipe_t pipe[2];
  struct inst *in;
  struct sup *sup;
  struct proc *next; /* in g_running until reaped */
  char label[64];
  int pid;
  int open;     /* pipes not yet closed, + 1 until reaped */
  bool skip[2]; /* dropping the rest of a cut line */
  size_t len[2];
  char buf[2][LINE_MAX_BYTES];
};

static const char *const stream_names[2] = {"stdout", "stderr"};

static struct proc *g_running; /* spawned and not yet reaped */

static void proc_put(struct proc *pr) {
  if (--pr->open == 0) free(pr);
}
static void proc_closed(uv_handle_t *h) { proc_put(h->data); }

static void emit(struct proc *pr, int k, const char *line, size_t len) {
  if (!logfile_line(pr->label, line, len)) log_line(pr->label, pr->pid, stream_names[k], line, len);
}

static void flush_lines(struct proc *pr, int k, bool all) {
  char *b = pr->buf[k];
  size_t start = 0;
  for (size_t i = 0; i < pr->len[k]; i++)
    if (b[i] == '\n') {
      if (!pr->skip[k]) emit(pr, k, b + start, i - start);
      pr->skip[k] = false;
      start = i + 1;
    }
  if (start == 0 && pr->len[k] == LINE_MAX_BYTES) { /* a line too long: cut, mark, skip */
    if (!pr->skip[k]) {
      char *cut = malloc(LINE_MAX_BYTES + sizeof cut_marker);
      memcpy(cut, b, LINE_MAX_BYTES);
      memcpy(cut + LINE_MAX_BYTES, cut_marker, sizeof cut_marker - 1);
      emit(pr, k, cut, LINE_MAX_BYTES + sizeof cut_marker - 1);
      free(cut);
    }
    pr->skip[k] = true;
    start = pr->len[k];
  }
  if (all) {
    if (pr->len[k] > start && !pr->skip[k]) emit(pr, k, b + start, pr->len[k] - start);
    start = pr->len[k];
  }
  memmove(b, b + start, pr->len[k] - start);
  pr->len[k] -= start;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct proc *pr = h->data;
  int k = (uv_pipe_t *)h == &pr->pipe[1];
  buf->base = pr->buf[k] + pr->len[k];
  buf->len = LINE_MAX_BYTES - pr->len[k];
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct proc *pr = st->data;
  int k = (uv_pipe_t *)st == &pr->pipe[1];
  if (n > 0) {
    pr->len[k] += (size_t)n;
    flush_lines(pr, k, false);
  } else if (n < 0) {
    flush_lines(pr, k, true);
    uv_close((uv_handle_t *)st, proc_closed);
    /* The run ends only after the last lines of its workers were logged. */
    if (--pr->sup->out_pipes == 0 && pr->sup->stopping) sup_kick(pr->sup);
  }
}

static void proc_exited(struct proc *pr, int64_t status, int sig) {
  struct inst *in = pr->in;
  int pid = pr->pid;
  proc_put(pr);
  if (!in) return;
  in->proc = NULL;
  /* Whatever the worker left in its group goes with it (the shim kills its
   * descendants; this covers a shim that was itself killed). */
  if (pid > 1) kill(-pid, SIGKILL);
  guard_note(pid, false);
  in->last_code = (int)status;
  in->last_signal = sig;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "worker", in->label);
  cJSON_AddNumberToObject(o, "pid", pid);
  if (sig)
    cJSON_AddStringToObject(o, "signal", strsignal(sig));
  else
    cJSON_AddNumberToObject(o, "code", (double)status);
  if (in->stuck) cJSON_AddStringToObject(o, "by", "watchdog");
  in->stuck = false;
  log_event((sig || status) && in->state != ST_STOPPING ? LOG_WARN : LOG_INFO, "worker.exit", o);
  reclaim_inst(in->sup, in);
  in->pid = 0;
  const struct cfg_worker *w = &in->sup->cfg->workers[in->w];
  if (w->on_exit) hook_run(in->sup, in, "on_exit", w->on_exit);
  sup_dispatch(in, EV_EXIT);
  sup_kick(in->sup);
}

/* "name@index,name@index" for the instance's inputs or outputs. */
static void chan_list(char *buf, size_t len, const struct cfg_worker *w, const struct inst *in,
                      bool out) {
  buf[0] = 0;
  int n = out ? w->nout : w->nin;
  for (int k = 0; k < n; k++) {
    int i = (out ? w->out_base : w->in_idx)[k] + in->replica;
    snprintf(buf + strlen(buf), len - strlen(buf), "%s%s@%d", k ? "," : "",
             (out ? w->out : w->in)[k], i);
  }
}

/* warren's environment without WARREN_* and NOTIFY_SOCKET, then the
 * worker's env_file and env entries; room for `extra` more and the NULL.
 * *k gets the number of entries filled. Shared with hooks.c. */
char **env_for_worker(const struct cfg_worker *w, size_t extra, size_t *k) {
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + (size_t)w->nenv + (size_t)w->nfile_env + extra + 1, sizeof(char *));
  *k = 0;
  for (size_t i = 0; env && i < n; i++)
    if (strncmp(environ[i], "WARREN_", 7) && strncmp(environ[i], "NOTIFY_SOCKET=", 14))
      env[(*k)++] = strdup(environ[i]);
  for (int i = 0; env && i < w->nfile_env; i++)
    env[(*k)++] = strdup(w->file_env[i]);
  for (int i = 0; env && i < w->nenv; i++)
    env[(*k)++] = strdup(w->env[i]);
  return env;
}

static char **build_env(struct sup *s, struct inst *in, const struct cfg_worker *w) {
  size_t k;
  char **env = env_for_worker(w, 16, &k);
  if (!env) return NULL;
  char chans[4096];
#define ADD(...)                                                                                   \
  do {                                                                                             \
    char *v_;                                                                                      \
    if (asprintf(&v_, __VA_ARGS__) >= 0) env[k++] = v_;                                            \
  } while (0)
  ADD("WARREN_ARENA_FD=%d", SUP_ARENA_FD);
  ADD("WARREN_WORKER=%s", w->name);
  ADD("WARREN_REPLICA=%d", in->replica);
  ADD("WARREN_REPLICAS=%d", w->replicas);
  ADD("WARREN_SLOT=%u", in->slot);
  ADD("WARREN_INCARNATION=%u", in->incarnation);
  ADD("WARREN_NOTIFY=%s", s->notify_name);
  ADD("WARREN_SUPERVISOR=%d", (int)getpid());
  chan_list(chans, sizeof chans, w, in, false);
  ADD("WARREN_IN=%s", chans);
  chan_list(chans, sizeof chans, w, in, true);
  ADD("WARREN_OUT=%s", chans);
  /* As systemd: a watchdog implies a notify socket (NotifyAccess=main);
   * the shim adds WATCHDOG_PID, the pid the command will have. */
  if (w->ready == READY_NOTIFY || w->watchdog_s > 0) ADD("NOTIFY_SOCKET=%s", s->notify_name);
  if (w->watchdog_s > 0) ADD("WATCHDOG_USEC=%llu", (unsigned long long)(w->watchdog_s * 1e6));
#undef ADD
  env[k] = NULL;
  return env;
}

static void strv_free(char **v) {
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

/* "GID,GID,..." for warren-shim -G: the supplementary groups of user uid
 * (as initgroups would set them, gid included), or NULL for none. */
static char *groups_arg(int uid, int gid) {
  struct passwd *pw = getpwuid((uid_t)uid);
  if (!pw) return NULL;
  int n = 256;
  gid_t g[256];
  if (getgrouplist(pw->pw_name, (gid_t)gid, g, &n) < 0) n = 256; /* more: the first 256 */
  char *s = malloc((size_t)n * 11 + 1), *p = s;
  for (int i = 0; s && i < n; i++)
    p += sprintf(p, "%s%u", i ? "," : "", (unsigned)g[i]);
  return s;
}

int spawn_inst(struct sup *s, struct inst *in) {
  const struct cfg_worker *w = &s->cfg->workers[in->w];
  int rc = wr_slot_prepare(s->arena, in->slot, &in->incarnation);
  if (rc) return rc;
  struct proc *pr = calloc(1, sizeof *pr);
  pr->close_cb = proc_closed;
  pr->in = in;
  pr->sup = s;
  snprintf(pr->label, sizeof pr->label, "%s", in->label);

  int argc = 0;
  while (w->argv[argc])
    argc++;
  bool setup = w->uid >= 0 || w->gid >= 0 || w->umask >= 0 || w->has_nice;
  for (int i = 0; i < RL__COUNT; i++)
    setup = setup || w->rl[i].set;
  bool shim = w->nin + w->nout == 0 || setup || w->watchdog_s > 0;
  char **args = calloc((size_t)argc + 3 + 2 * (RL__COUNT + 5), sizeof(char *));
  char opt[RL__COUNT + 5][64];
  char *groups = NULL;
  int k0 = 0, no = 0;
  if (shim) {
    args[k0++] = s->shim;
    /* warren-shim -r RES=SOFT:HARD -m UMASK -n NICE -g GID -u UID -- PATH ARG0... */
    for (int i = 0; i < RL__COUNT; i++)
      if (w->rl[i].set) {
        args[k0++] = "-r";
        snprintf(opt[no], sizeof opt[no], "%d=%llu:%llu", cfg_rlimit_resources[i],
                 (unsigned long long)w->rl[i].soft, (unsigned long long)w->rl[i].hard);
        args[k0++] = opt[no++];
      }
    const struct {
      const char *flag;
      bool on;
      int v;
    } o1[] = {{"-m", w->umask >= 0, w->umask},
              {"-n", w->has_nice, w->nice},
              {"-g", w->gid >= 0, w->gid},
              {"-u", w->uid >= 0, w->uid}};
    for (size_t i = 0; i < sizeof o1 / sizeof o1[0]; i++)
      if (o1[i].on) {
        args[k0++] = (char *)o1[i].flag;
        snprintf(opt[no], sizeof opt[no], "%d", o1[i].v);
        args[k0++] = opt[no++];
      }
    if (w->gid >= 0 && w->uid >= 0 && (groups = groups_arg(w->uid, w->gid))) {
      args[k0++] = "-G";
      args[k0++] = groups;
    }
    args[k0++] = "--";
    args[k0++] = w->path;
  }
  for (int i = 0; i < argc; i++)
    args[k0 + i] = w->argv[i];
  char **env = build_env(s, in, w);

  /* Our ends of the output streams, and the child's (dup2'ed to 1 and 2). */
  int sv[2][2] = {{-1, -1}, {-1, -1}};
  for (int k = 0; k < 2 && !rc; k++)
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[k])) rc = -errno;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  if (!rc) {
    /* 0-2 are open in the supervisor (run.c), so the child ends are >= 3
     * and are moved to 1 and 2 before the arena takes SUP_ARENA_FD; a dup2
     * onto the same number clears close-on-exec (glibc >= 2.29). */
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, sv[0][1], 1);
    posix_spawn_file_actions_adddup2(&fa, sv[1][1], 2);
    posix_spawn_file_actions_adddup2(&fa, wr_arena_fd(s->arena), SUP_ARENA_FD);
    if (w->cwd) posix_spawn_file_actions_addchdir_np(&fa, w->cwd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int err = posix_spawn(&pid, shim ? s->shim : w->path, &fa, &at, args, env);
    rc = -err;
    if (!err) pr->pid = pid;
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  free(args);
  free(groups);
  strv_free(env);
  for (int k = 0; k < 2; k++)
    if (sv[k][1] >= 0) close(sv[k][1]);
  if (rc) {
    for (int k = 0; k < 2; k++)
      if (sv[k][0] >= 0) close(sv[k][0]);
    free(pr);
    wr_slot_mark_dead(s->arena, in->slot, in->incarnation);
    wr_slot_release(s->arena, in->slot, in->incarnation);
    return rc;
  }
  pr->open = 3;
  pr->next = g_running;
  g_running = pr;
  in->pid = pr->pid;
  guard_note(pr->pid, true);
  in->proc = pr;
  for (int k = 0; k < 2; k++) {
    uv_pipe_init(s->loop, &pr->pipe[k], 0);
    pr->pipe[k].data = pr;
    uv_pipe_open(&pr->pipe[k], sv[k][0]);
    uv_read_start((uv_stream_t *)&pr->pipe[k], on_alloc, on_read);
  }
  s->out_pipes += 2;
  return 0;
}

/* To the instance's process group. Never with pid <= 1: kill(-1) would
 * signal every process we may signal, kill(0) our own group. */
void spawn_signal(struct inst *in, int sig) {
  if (in->pid > 1) kill(-in->pid, sig);
}

/* On SIGCHLD: our workers (each by pid), then the orphans of workers (the
 * supervisor is their subreaper). Never waitpid(-1): the hooks' children
 * are libuv's. */
void spawn_reap(void) {
  for (struct proc **pp = &g_running; *pp;) {
    struct proc *pr = *pp;
    int st;
    if (waitpid(pr->pid, &st, WNOHANG) != pr->pid) {
      pp = &pr->next;
      continue;
    }
    *pp = pr->next;
    proc_exited(pr, WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  }
  DIR *d = opendir("/proc/self/task");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    int pid;
    while (fscanf(f, "%d", &pid) == 1) {
      bool ours = hook_pid(pid) || pid == guard_pid();
      for (struct proc *pr = g_running; pr && !ours; pr = pr->next)
        ours = pr->pid == pid;
      if (!ours) waitpid(pid, NULL, WNOHANG);
    }
    fclose(f);
  }
  closedir(d);
}
