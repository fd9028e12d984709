/*
 * top.c: `warren top`, a live terminal view of a run.
 *
 * Once a second it asks the control socket for "stats" and redraws the
 * screen: each worker replica with its state, pid, restarts, CPU (percent
 * of one core over the last second, from the CPU seconds the supervisor
 * reads in /proc) and resident memory; each channel lane with its rate
 * (records per second since the last frame), depth / capacity and
 * backpressure (producer waits on a full lane since the last frame); the
 * heap in use. The terminal is put in non-canonical mode without echo so
 * that a single `q` quits (restored on exit); it also ends when the run
 * does. All arithmetic is over this client's own two last samples.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static struct termios g_saved;
static bool g_raw;

static void restore(void) {
  if (g_raw) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
  g_raw = false;
}

static double num(const cJSON *o, const char *k) {
  return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k));
}
static const char *str(const cJSON *o, const char *k) {
  const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
  return v ? v : "";
}

static void human(char *buf, size_t len, double b) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4)
    b /= 1024, i++;
  snprintf(buf, len, i ? "%.1f%s" : "%.0f%s", b, u[i]);
}

/* Value of key k in the previous frame's entry matching `name`/`lane`. */
static double prev_of(const cJSON *arr, const char *field, const char *name, int lane,
                      const char *k) {
  for (const cJSON *x = arr ? arr->child : NULL; x; x = x->next)
    if (strcmp(str(x, field), name) == 0 && (lane < 0 || (int)num(x, "lane") == lane))
      return num(x, k);
  return -1;
}

static void draw(const cJSON *r, const cJSON *prev, double dt) {
  char t[16];
  time_t now = time(NULL);
  strftime(t, sizeof t, "%H:%M:%S", localtime(&now));
  printf("\033[H\033[2J");
  printf("warren top - %s (pid %d) %s - %s   q: quit\n\n", str(r, "name"), (int)num(r, "pid"),
         str(r, "state"), t);
  printf("%-24s %-10s %8s %8s %6s %10s\n", "WORKER", "STATE", "PID", "RESTARTS", "CPU%", "RSS");
  const cJSON *pw = prev ? cJSON_GetObjectItem(prev, "workers") : NULL;
  const cJSON *ws = cJSON_GetObjectItem(r, "workers");
  for (const cJSON *w = ws ? ws->child : NULL; w; w = w->next) {
    double pc = prev_of(pw, "name", str(w, "name"), -1, "cpu_s");
    double cpu = pc >= 0 && dt > 0 && num(w, "cpu_s") >= pc ? (num(w, "cpu_s") - pc) / dt * 100 : 0;
    char rss[32];
    human(rss, sizeof rss, num(w, "rss_bytes"));
    printf("%-24s %-10s %8d %8d %6.1f %10s\n", str(w, "name"), str(w, "state"), (int)num(w, "pid"),
           (int)num(w, "restarts"), cpu, rss);
  }
  const cJSON *pl = prev ? cJSON_GetObjectItem(prev, "channels") : NULL;
  const cJSON *ls = cJSON_GetObjectItem(r, "channels");
  if (ls && ls->child)
    printf("\n%-20s %5s %10s %15s %12s\n", "CHANNEL", "LANE", "RATE/s", "DEPTH/CAP",
           "FULL-WAITS/s");
  for (const cJSON *l = ls ? ls->child : NULL; l; l = l->next) {
    int lane = (int)num(l, "lane");
    double ps = prev_of(pl, "channel", str(l, "channel"), lane, "sent");
    double pf = prev_of(pl, "channel", str(l, "channel"), lane, "full_waits");
    double rate = ps >= 0 && dt > 0 ? (num(l, "sent") - ps) / dt : 0;
    double full = pf >= 0 && dt > 0 ? (num(l, "full_waits") - pf) / dt : 0;
    char dc[40];
    snprintf(dc, sizeof dc, "%.0f/%.0f", num(l, "depth"), num(l, "capacity"));
    printf("%-20s %5d %10.0f %15s %12.0f%s\n", str(l, "channel"), lane, rate < 0 ? 0 : rate, dc,
           full < 0 ? 0 : full, cJSON_IsTrue(cJSON_GetObjectItem(l, "closed")) ? " closed" : "");
  }
  const cJSON *h = cJSON_GetObjectItem(r, "heap");
  char in_use[32], size[32];
  human(in_use, sizeof in_use, num(h, "bytes"));
  human(size, sizeof size, num(h, "heap_bytes"));
  printf("\nheap: %s in use of %s, reclaimed %.0f bytes, check %s\n", in_use, size,
         num(h, "reclaimed_bytes"), str(h, "check"));
  fflush(stdout);
}

int top_client(const char *sock) {
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved) == 0) {
    struct termios raw = g_saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    g_raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    atexit(restore);
  }
  cJSON *prev = NULL;
  struct timespec pt = {0, 0};
  int code = SUP_EXIT_OK;
  for (;;) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", "stats");
    int err = 0;
    cJSON *r = ctl_request(sock, req, &err);
    if (!r) {
      restore();
      printf("\nwarren top: the run ended (%s)\n", strerror(-err));
      break;
    }
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double dt = prev ? (double)(t.tv_sec - pt.tv_sec) + (double)(t.tv_nsec - pt.tv_nsec) / 1e9 : 0;
    draw(r, prev, dt);
    cJSON_Delete(prev);
    prev = r;
    pt = t;
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    bool quit = false;
    if (poll(&p, 1, 1000) > 0) {
      char c[64];
      ssize_t n = read(STDIN_FILENO, c, sizeof c);
      if (n == 0 && !g_raw) quit = true; /* stdin closed: not interactive */
      for (ssize_t i = 0; i < n; i++)
        quit = quit || c[i] == 'q' || c[i] == 'Q';
    }
    if (quit) break;
  }
  cJSON_Delete(prev);
  restore();
  return code;
}
