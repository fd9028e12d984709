/*
 * bench_supervisor.c: the supervisor's performance goals, each against a
 * baseline measured in the same run (DESIGN.md house style: ratios, not
 * absolute numbers).
 *
 *   P5  crash -> replacement ready (SIGKILL of a worker up long enough to
 *       restart at once, through reclaim, respawn under the shim, attach and
 *       wr_worker_ready), vs fork+exec+wait of /bin/true. Goal: <= spawn + 2 ms.
 *   P6a supervisor wake-ups per second while idle (context switches from
 *       /proc), vs the one the stats timer needs.
 *   P6b 256 workers over 1024 lanes from `warren run` to all ready, vs 256
 *       fork+exec of /bin/true (all started, then all waited). Goal: <= 1.5x.
 *
 * It runs the real `warren` from the same build; its workers are this
 * program (`bench_supervisor --worker`: attach, open its channels, ready,
 * wait). `--quick` uses fewer rounds.
 */
#include "warren.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

static int worker_main(void) {
  wr_worker *w;
  int rc = wr_worker_attach(&w);
  if (rc) return fprintf(stderr, "attach: %s\n", wr_strerror(rc)), 3;
  wr_chan *c;
  for (uint32_t i = 0; i < wr_worker_nin(w); i++)
    if ((rc = wr_worker_in(w, i, &c))) return fprintf(stderr, "in: %s\n", wr_strerror(rc)), 4;
  for (uint32_t i = 0; i < wr_worker_nout(w); i++)
    if ((rc = wr_worker_out(w, i, &c))) return fprintf(stderr, "out: %s\n", wr_strerror(rc)), 4;
  wr_worker_ready(w);
  for (;;)
    pause();
}

static void spawn_true(pid_t *pid) {
  *pid = fork();
  if (*pid == 0) {
    execl("/bin/true", "true", (char *)NULL);
    _exit(127);
  }
}

/* ------------------------------------------------------------ a supervised run */

struct run {
  pid_t pid;
  FILE *out;
  char dir[64];
};

static char g_self[1024], g_warren[4096];

static void run_start(struct run *r, const char *config_body) {
  snprintf(r->dir, sizeof r->dir, "/tmp/warren-bench-XXXXXX");
  if (!mkdtemp(r->dir)) exit(1);
  char cfg[128], sock[128];
  snprintf(cfg, sizeof cfg, "%s/bench.json", r->dir);
  snprintf(sock, sizeof sock, "%s/ctl.sock", r->dir);
  FILE *f = fopen(cfg, "w");
  fputs(config_body, f);
  fclose(f);
  int p[2];
  if (pipe(p)) exit(1);
  r->pid = fork();
  if (r->pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    execl(g_warren, "warren", "--log-format", "json", "run", cfg, "--socket", sock, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  r->out = fdopen(p[0], "r");
}

/* Read log lines until one contains `event` (and `also`, if given); returns
 * its pid field or 0; -1 at end of output. */
static int run_until(struct run *r, const char *event, const char *also) {
  char line[8192], want[128];
  snprintf(want, sizeof want, "\"event\":\"%s\"", event);
  while (fgets(line, sizeof line, r->out)) {
    if (!strstr(line, want) || (also && !strstr(line, also))) continue;
    char *p = strstr(line, "\"pid\":");
    return p ? atoi(p + 6) : 0;
  }
  return -1;
}

static void run_stop(struct run *r) {
  if (r->pid > 1) kill(r->pid, SIGTERM);
  char line[8192];
  while (fgets(line, sizeof line, r->out)) {
  }
  fclose(r->out);
  waitpid(r->pid, NULL, 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", r->dir);
  if (system(cmd)) {
  }
}

static long ctxt_switches(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  long total = 0, v;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
        sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
      total += v;
  if (f) fclose(f);
  return total;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--worker") == 0) return worker_main();
  bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
  g_self[n > 0 ? n : 0] = 0;
  char *slash = strrchr(g_self, '/');
  char dir[4096];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - g_self), g_self);
  snprintf(g_warren, sizeof g_warren, "%.4000s/../src/supervisor/warren", dir);
  if (access(g_warren, X_OK)) return fprintf(stderr, "no %s\n", g_warren), 77;

  int rounds = quick ? 10 : 40;
  double base[64], p5[64];

  /* baseline: fork + exec + wait of /bin/true */
  for (int i = 0; i < rounds; i++) {
    double t0 = now_ms();
    pid_t p;
    spawn_true(&p);
    waitpid(p, NULL, 0);
    base[i] = now_ms() - t0;
  }
  double spawn = median(base, rounds);

  /* P5 */
  char cfg[16384];
  snprintf(cfg, sizeof cfg,
           "{\"name\":\"bench5\",\"heap\":{\"size\":\"16MiB\"},"
           "\"workers\":[{\"name\":\"w\",\"exec\":[\"%s\",\"--worker\"],\"ready\":\"notify\"}],"
           "\"restart\":{\"intensity\":100000,\"fast_fail_s\":0},\"stats_interval_ms\":0}",
           g_self);
  struct run r;
  run_start(&r, cfg);
  /* The shim execs in place: the pid of worker.start is the worker's. */
  int w = run_until(&r, "worker.start", NULL);
  run_until(&r, "worker.ready", NULL);
  for (int i = 0; i < rounds; i++) {
    if (w <= 1) { /* never kill(-1) or kill(0): that would hit everything */
      fprintf(stderr, "no worker pid in the log\n");
      run_stop(&r);
      return 1;
    }
    double t0 = now_ms();
    kill(w, SIGKILL);
    w = run_until(&r, "worker.start", NULL);
    run_until(&r, "worker.ready", NULL);
    p5[i] = now_ms() - t0;
  }
  run_stop(&r);
  double crash = median(p5, rounds);
  printf("P5 crash->ready      %8.3f ms   fork+exec+wait /bin/true %8.3f ms   ratio %.2f   "
         "excess %+.3f ms (goal <= +2 ms)\n",
         crash, spawn, crash / spawn, crash - spawn);

  /* P6a: idle wake-ups with a 1 s stats timer and 8 idle workers */
  snprintf(cfg, sizeof cfg,
           "{\"name\":\"bench6a\",\"heap\":{\"size\":\"16MiB\"},"
           "\"workers\":[{\"name\":\"w\",\"exec\":[\"%s\",\"--worker\"],\"ready\":\"notify\","
           "\"replicas\":8}],\"stats_interval_ms\":1000}",
           g_self);
  run_start(&r, cfg);
  for (int i = 0; i < 8; i++)
    run_until(&r, "worker.ready", NULL);
  /* let startup settle, then count while idle; the log pipe is not read
   * meanwhile (one heap.stats line a second fits in it) */
  usleep(300000);
  long c0 = ctxt_switches(r.pid);
  double t0 = now_ms();
  sleep(quick ? 2 : 4);
  double secs = (now_ms() - t0) / 1000;
  long c1 = ctxt_switches(r.pid);
  run_stop(&r);
  printf("P6 idle wake-ups     %8.2f /s   stats timer alone          %8.2f /s   ratio %.2f\n",
         (double)(c1 - c0) / secs, 1.0, (double)(c1 - c0) / secs);

  /* P6b: 256 workers over 1024 lanes vs 256 fork+exec of /bin/true */
  t0 = now_ms();
  pid_t pids[256];
  for (int i = 0; i < 256; i++)
    spawn_true(&pids[i]);
  for (int i = 0; i < 256; i++)
    waitpid(pids[i], NULL, 0);
  double base256 = now_ms() - t0;
  snprintf(cfg, sizeof cfg,
           "{\"name\":\"bench6b\",\"heap\":{\"size\":\"64MiB\"},"
           "\"channels\":[{\"name\":\"grid\",\"capacity\":16,\"slot_size\":64}],"
           "\"workers\":["
           "{\"name\":\"p\",\"exec\":[\"%s\",\"--worker\"],\"out\":[\"grid\"],\"replicas\":32},"
           "{\"name\":\"c\",\"exec\":[\"%s\",\"--worker\"],\"in\":[\"grid\"],\"replicas\":32},"
           "{\"name\":\"x\",\"exec\":[\"%s\",\"--worker\"],\"ready\":\"notify\",\"replicas\":192}"
           "],\"stats_interval_ms\":0}",
           g_self, g_self, g_self);
  t0 = now_ms();
  run_start(&r, cfg);
  int ready = 0;
  while (ready < 256 && run_until(&r, "worker.ready", NULL) >= 0)
    ready++;
  double start256 = now_ms() - t0;
  run_stop(&r);
  if (ready < 256) return fprintf(stderr, "only %d workers became ready\n", ready), 1;
  printf("P6 256 workers/1024 lanes %8.2f ms   256 fork+exec /bin/true %8.2f ms   ratio %.2f "
         "(goal <= 1.5)\n",
         start256, base256, start256 / base256);
  return 0;
}
