/*
 * sup.h: what the modules of the `warren` supervisor share.
 *
 * One single-threaded libuv loop owns everything below (DESIGN.md
 * "Supervisor"). The config (config.c) is parsed into plain structs; each
 * configured worker replica becomes one `struct inst` with its own arena
 * slot, lifecycle state (lifecycle.c, the table) and, while it runs, one
 * `struct proc` (spawn.c: its pid and the two pipes that capture its
 * output). Everything that touches channels and semaphores is
 * in objects.c.
 *
 * Operations (issue 10), one file a concern: reload.c (reload and SIGHUP),
 * metrics.c (Prometheus text, the /metrics listener), events.c (`warren
 * events`), top.c (`warren top`), hooks.c (on_exit / on_give_up),
 * logfile.c (log_dir, rotation, SIGUSR2), sdnotify.c (Type=notify); the
 * per-worker process settings are applied by warren-shim (shim.c).
 */
#ifndef WARREN_SUP_H
#define WARREN_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "warren.h"

struct cJSON;

/* Exit codes (DESIGN.md "Supervisor"). */
enum { SUP_EXIT_OK = 0, SUP_EXIT_FAIL = 1, SUP_EXIT_USAGE = 2 };

#define SUP_ARENA_FD 3 /* the arena fd's number in every worker */

/* ------------------------------------------------------------ config.c */

enum cfg_policy { POLICY_ON_FAILURE = 0, POLICY_ALWAYS, POLICY_NEVER };
enum cfg_strategy { STRAT_ONE_FOR_ONE = 0, STRAT_REST_FOR_ONE, STRAT_ONE_FOR_ALL };
enum cfg_ready { READY_EXEC = 0, READY_NOTIFY };

struct cfg_chan {
  char *name;
  uint32_t capacity, slot_size;
  bool keyed;
  uint32_t producers, consumers; /* replica counts, computed from workers */
};

struct cfg_sem {
  char *name;
  uint32_t value;
};

/* rlimits a worker may set, in the order of cfg_rlimit_names. */
enum { RL_NOFILE = 0, RL_AS, RL_CPU, RL_CORE, RL__COUNT };
extern const char *const cfg_rlimit_names[RL__COUNT + 1];
extern const int cfg_rlimit_resources[RL__COUNT];
#define CFG_UNLIMITED UINT64_MAX
struct cfg_rlimit {
  bool set;
  uint64_t soft, hard; /* CFG_UNLIMITED = RLIM_INFINITY */
};

struct cfg_worker {
  char *name;
  char **argv; /* NULL-terminated; argv[0] as written */
  char *path;  /* argv[0] resolved */
  char **in, **out;
  int nin, nout;
  int *in_idx, *out_base;  /* per in/out: this worker's first replica index in the channel */
  int *in_chan, *out_chan; /* per in/out: index into cfg.chans */
  int replicas;
  int policy;
  int ready;
  char **deps;
  int ndeps;
  int *dep_idx;
  char **env; /* "KEY=VALUE" */
  int nenv;
  char *cwd; /* resolved, or NULL */
  double start_timeout_s, stop_timeout_s;
  double watchdog_s; /* stuck after this long without a heartbeat once ready; 0 = off */
  int order;         /* position in the start order (topological) */
  /* operations (issue 10) */
  char *env_file;  /* resolved path, or NULL; read at load and at each reload */
  char **file_env; /* its "KEY=VALUE" lines, applied before env */
  int nfile_env;
  char *user, *group; /* as written, or NULL */
  int uid, gid;       /* resolved; -1 = unchanged */
  int umask;          /* -1 = inherited */
  bool has_nice;
  int nice;
  struct cfg_rlimit rl[RL__COUNT];
  char **on_exit, **on_give_up; /* hook argv (NULL-terminated), or NULL */
};

struct cfg {
  char *name;
  char *dir; /* the config file's directory */
  uint64_t heap_size;
  struct cfg_chan *chans;
  int nchans;
  struct cfg_sem *sems;
  int nsems;
  struct cfg_worker *workers;
  int nworkers;
  int *start_order; /* worker indices, dependencies first */
  int strategy, intensity;
  double period_s;
  bool give_up_exit;
  uint32_t backoff_initial_ms, backoff_max_ms;
  double reset_after_s, fast_fail_s;
  uint32_t stats_interval_ms;
  double drain_timeout_s, stop_timeout_s, start_timeout_s;
  char *file;             /* the config file, as given (reload reads it again) */
  char *log_dir;          /* per-worker log files (resolved), or NULL */
  uint64_t log_max_bytes; /* rotate at (10 MiB) */
  int log_files;          /* rotated files kept (5) */
  char *metrics_listen;   /* "127.0.0.1:PORT", or NULL (off) */
  uint64_t chaos_seed; /* chaos.c: "chaos" or --chaos SEED[:RATE] */
  double chaos_rate;   /* kills a second; 0 = off */
};

/* Error list: every problem found, each "path: reason". */
struct cfg_errors {
  char **msg;
  int n;
};

/* Parse and validate `text` (the file at `file`, for relative paths). On
 * success returns 0 and fills *c; otherwise returns -1 with every error in
 * *errs. `self_dir` is the supervisor's own directory (finds warren-*). */
int cfg_parse(const char *text, const char *file, const char *self_dir, struct cfg *c,
              struct cfg_errors *errs);
int cfg_load(const char *file, const char *self_dir, struct cfg *c, struct cfg_errors *errs);
void cfg_free(struct cfg *c);
void cfg_errors_free(struct cfg_errors *e);
/* Same definition (everything a running instance was started with)? */
bool cfg_worker_same(const struct cfg_worker *a, const struct cfg_worker *b);
bool cfg_chan_same(const struct cfg_chan *a, const struct cfg_chan *b);
/* "256MiB" -> bytes; 0 or -1 (bad unit/number). */
int cfg_parse_size(const char *s, uint64_t *out);

/* ------------------------------------------------------------ log.c */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void log_init(bool json);
bool log_json(void);
/* One event: `obj` holds its fields and is consumed (cJSON_Delete'd). */
void log_event(int level, const char *event, struct cJSON *obj);
/* Convenience: an event with printf-formatted text as "msg". */
void log_msg(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One captured line of a worker. */
void log_line(const char *worker, int pid, const char *stream, const char *line, size_t len);
/* Every event (never worker.output) is also given as one JSON line to tap. */
void log_set_tap(void (*tap)(const char *json_line, size_t n));

/* ------------------------------------------------------------ lifecycle.c */

enum inst_state {
  ST_STOPPED = 0, /* not running; starts when wanted and its dependencies are ready */
  ST_STARTING,    /* spawned, not ready yet */
  ST_READY,
  ST_STOPPING,  /* SIGTERM sent, waiting for the exit */
  ST_BACKOFF,   /* failed, waiting for its restart timer */
  ST_CRASHLOOP, /* failed too often; retried at the backoff cap */
  ST_EXITED,    /* finished for good (policy says no restart) */
  ST__COUNT
};

enum inst_event {
  EV_START = 0, /* wanted and dependencies ready */
  EV_READY,     /* wr_worker_ready / exec success / READY=1 */
  EV_EXIT,      /* libuv reported its exit status (reclaim already done) */
  EV_STOP,      /* stop for good (supervisor stop) */
  EV_RESTART,   /* stop, then start again (strategy, `warren restart`) */
  EV_TIMER,     /* backoff timer, start_timeout or stop_timeout fired */
  EV_WATCHDOG,  /* no heartbeat for watchdog_s (watchdog.c) */
  EV__COUNT
};

enum inst_action {
  A_NONE = 0,
  A_SPAWN,   /* start a new incarnation */
  A_TERM,    /* SIGTERM the group, arm stop_timeout */
  A_KILL,    /* SIGKILL the group (stop_timeout fired) */
  A_DECIDE,  /* exit while running: restart policy picks the next state */
  A_SETTLE,  /* exit while stopping: stopped, or started again if wanted */
  A_ARM,     /* became ready: cancel start_timeout, note the time */
  A_CANCEL,  /* cancel the pending backoff timer */
  A_TIMEOUT, /* start_timeout fired: kill it (the exit then decides) */
  A_STUCK,   /* watchdog: log worker.stuck, SIGKILL the group (the exit decides) */
};

struct lc_step {
  uint8_t action, next; /* next == ST__COUNT: decided by the action */
};
const struct lc_step *lc_step(int state, int event);
const char *lc_state_name(int state);
const char *lc_event_name(int event);

/* ------------------------------------------------------------ the supervisor */

struct proc;

struct inst {
  struct sup *sup;
  int w;       /* config worker index */
  int replica; /* 0..replicas-1 */
  char label[64];
  uint32_t slot, incarnation;
  int state;
  bool want;         /* should be running (cleared by stop / finished) */
  bool restart_req;  /* EV_RESTART seen: start again after the exit */
  struct proc *proc; /* while a process runs */
  int pid;
  uint64_t started_ms, ready_ms;
  uint32_t fails;    /* consecutive fast failures */
  uint64_t restarts; /* total */
  uint64_t *recent;  /* ring of restart times for the intensity window */
  int nrecent;
  int last_code, last_signal;
  uv_timer_t timer; /* backoff, start_timeout and stop_timeout (one at a time) */
  bool retiring;    /* stopped for a reload: no restart, outputs stay open */
  bool gave_up;     /* on_give_up ran for the current crash loop */
  uint64_t reclaimed_bytes, reclaimed_blocks, redelivered; /* totals, for metrics */
  /* watchdog.c */
  uint64_t hb_seen;        /* the slot's heartbeat counter, as last read */
  uint64_t hb_ms;          /* when a heartbeat last came (or it became ready) */
  bool stuck;              /* SIGKILLed by the watchdog; its exit says so */
  uint64_t watchdog_kills; /* total */
};

struct sup {
  uv_loop_t *loop;
  struct cfg *cfg;
  wr_arena *arena;
  struct inst **inst; /* pointers: an instance survives a reload in place */
  int ninst;
  int *winst;    /* first instance index of each worker */
  bool stopping; /* graceful stop in progress */
  bool draining; /* sources were stopped; waiting for the pipeline */
  int out_pipes;  /* worker stdout/stderr pipes not yet at end of file */
  bool pipes_forced, finished; /* finish(): gave up waiting for them; done */
  int exit_code;
  char self_dir[4096]; /* directory of the warren executable */
  char shim[4096];     /* path of warren-shim (plain commands run under it) */
  char sock_path[256];
  char sock_dir[256]; /* the default socket directory we may remove, or "" */
  char notify_name[108];
  uv_timer_t stats_timer, drain_timer;
  uv_signal_t sig_int, sig_term, sig_hup, sig_chld;
  uv_pipe_t ctl;
  uv_poll_t notify_poll;
  int notify_fd;
  uint64_t heap_baseline; /* heap bytes in use after the objects were built */
  uv_signal_t sig_usr2;
  struct cfg *pending; /* reload.c: the new config, until the retiring instances stopped */
  bool *late;          /* reload.c: per old channel, rebuilt because a producer closed it */
  bool sd_ready;       /* sdnotify.c: READY=1 sent */
  int hooks;           /* hook processes running (hooks.c) */
  uv_tcp_t http;       /* metrics.c: the /metrics listener, when http_on */
  bool http_on;
  char http_addr[80];           /* where it listens ("127.0.0.1:PORT") */
  uv_timer_t watchdog_timer;    /* watchdog.c: runs only when a worker has watchdog_s */
  uv_timer_t sd_watchdog_timer; /* sdnotify.c: WATCHDOG=1 to systemd, when it asks */
};

/* run.c: the supervisor's core. */
int sup_run(struct cfg *c, const char *sock_override);
/* A new instance of worker w, replica r, in arena slot `slot` (not started). */
struct inst *inst_new(struct sup *s, int w, int r, uint32_t slot);
/* Free a stopped instance (its timer is closed first). */
void inst_free(struct inst *in);
bool inst_running(const struct inst *in);
void sup_dispatch(struct inst *in, int event);
void sup_stop(struct sup *s, const char *why);
void sup_kick(struct sup *s);
int sup_restart_worker(struct sup *s, const char *name);
uint64_t sup_now_ms(struct sup *s);

/* spawn.c */
char **env_for_worker(const struct cfg_worker *w, size_t extra, size_t *k);
int spawn_inst(struct sup *s, struct inst *in);
void spawn_signal(struct inst *in, int sig);
void spawn_reap(void); /* on SIGCHLD: the workers' exits, then orphans */

/* chaos.c: SIGKILL random workers, seeded (--chaos SEED[:RATE]). parse:
 * 0, or -1 if spec is not SEED or SEED:RATE with 0 < RATE <= 1000. */
int chaos_parse(const char *spec, uint64_t *seed, double *rate);
void chaos_start(struct sup *s);
void chaos_stop(struct sup *s);

/* integrity.c: after a reclaim, the checkers; corruption is logged. */
void integrity_check(struct sup *s, const char *after);
/* At the end of a run: semaphore.stats (value against initial) for each. */
void integrity_final(struct sup *s);

/* guard.c: kills every worker group if the supervisor dies. */
int guard_start(void);
void guard_note(int pgid, bool add);
/* The files the guard removes if the supervisor dies: the control socket and
 * the directory it made for it (NULL: none); guard_files(NULL, NULL) at a
 * clean stop. Both fit a sockaddr_un path. */
#define GUARD_FILES_MAX 256
void guard_files(const char *sock, const char *dir);
void guard_stop(void);
int guard_pid(void);

/* reclaim.c: everything a dead incarnation held, before its replacement. */
void reclaim_inst(struct sup *s, struct inst *in);

/* objects.c: arena, channels, semaphores. */
int objects_build(struct sup *s);
void objects_close_outputs(struct sup *s, struct inst *in);
int objects_chan_reclaim(wr_arena *a, uint32_t slot, uint32_t inc, uint64_t *redelivered);
int objects_sync_reclaim(wr_arena *a, uint32_t slot, uint32_t inc, uint64_t *permits);
struct cJSON *objects_chan_stats(struct sup *s);

/* stats.c */
struct cJSON *stats_heap(struct sup *s);
struct cJSON *stats_status(struct sup *s);
void stats_log(struct sup *s);

/* notify.c: READY=1 and WATCHDOG=1 datagrams (sd_notify protocol, and
 * wr_worker_ready). notify_drain handles what is queued now. */
int notify_open(struct sup *s);
void notify_drain(struct sup *s);
void notify_close(struct sup *s);

/* watchdog.c: stuck workers (watchdog_s). arm: (re)start or stop the timer
 * for the current config (at start and after a reload). ready: the
 * instance became ready (the heartbeat baseline). beat: a WATCHDOG=1
 * came. kill: EV_WATCHDOG's action. age: seconds since the last
 * heartbeat of a ready instance with a watchdog, else -1. */
void watchdog_arm(struct sup *s);
void watchdog_ready(struct inst *in);
void watchdog_beat(struct inst *in);
void watchdog_kill(struct inst *in);
double watchdog_age_s(struct inst *in);

/* reload.c: `warren reload` and SIGHUP. Validate the file again; an invalid
 * one changes nothing (reply ok=false with the errors). Else stop what
 * changed (workers, and every producer and consumer of a channel that
 * changed shape), then (reload_progress, from sup_kick) rebuild those
 * channels carrying their records over, swap the config and start the rest. */
struct cJSON *reload_request(struct sup *s, const char *why);
void reload_progress(struct sup *s);

/* logfile.c: per-worker log files under log_dir, rotated by size. */
void logfile_configure(const char *dir, uint64_t max_bytes, int files);
/* A captured line: to the worker's file when log_dir is set; false if not. */
bool logfile_line(const char *label, const char *line, size_t len);
void logfile_reopen(void); /* SIGUSR2 */
void logfile_close_all(void);

/* events.c: `warren events` subscribers on the control socket. */
void events_subscribe(uv_stream_t *client);
void events_publish(const char *json_line, size_t n); /* ends with '\n' */
void events_unsubscribe(uv_stream_t *client);
void events_close_all(void);
int events_client(const char *sock, bool json); /* `warren events`: until the run ends */
/* top.c: `warren top`, a live view (refresh 1 s, q quits). */
int top_client(const char *sock);

/* hooks.c: on_exit / on_give_up commands. */
void hook_run(struct sup *s, struct inst *in, const char *which, char *const *argv);
bool hook_pid(int pid); /* one of ours (spawn_reap must leave it to libuv) */
/* At the end of a run: true when no hook runs; else waits (the last hook's
 * exit calls sup_kick again), SIGKILLing them after stop_timeout_s. */
bool hooks_drain(struct sup *s);

/* metrics.c: Prometheus text exposition, and the loopback /metrics listener. */
char *metrics_text(struct sup *s); /* malloc'd */
int metrics_listen(struct sup *s); /* per cfg->metrics_listen; 0 when off */
void metrics_close(struct sup *s);
/* Per-process CPU seconds and resident bytes from /proc (0 when gone). */
void proc_usage(int pid, double *cpu_s, uint64_t *rss);

/* sdnotify.c: warren itself under systemd (Type=notify), by hand. */
void sdnotify_init(void); /* takes NOTIFY_SOCKET and WATCHDOG_* out of the environment */
void sdnotify(const char *msg);
void sdnotify_watchdog_start(struct sup *s); /* pings systemd if WatchdogSec asks */

/* control.c */
int ctl_default_path(const char *name, char *buf, size_t len);
int ctl_listen(struct sup *s, const char *path);
void ctl_close(struct sup *s);
/* Client: send {"cmd": cmd, ...args} and return the parsed reply (caller
 * deletes) or NULL with *err set. */
struct cJSON *ctl_request(const char *path, struct cJSON *req, int *err);
/* A connected client socket (close-on-exec), or -errno. */
int ctl_connect(const char *path);

#endif
