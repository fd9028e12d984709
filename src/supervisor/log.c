/*
 * log.c: the supervisor's output, one line per event, on stdout.
 *
 * Text (default): "HH:MM:SS.mmm LEVEL event key=value ..." for events and
 * "name | line" for a worker's captured output. JSON (--log-format json):
 * one object per line with ts (RFC 3339, UTC, milliseconds), level, event
 * and the event's fields; captured output is event "worker.output" with
 * worker, pid, stream and msg. Lines are written with one write(2) each so
 * they never interleave with another writer of the same file. Every event
 * but worker.output also goes, as its JSON line, to the tap (events.c).
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool g_json;
static void (*g_tap)(const char *, size_t);

void log_set_tap(void (*tap)(const char *json_line, size_t n)) { g_tap = tap; }
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(bool json) { g_json = json; }
bool log_json(void) { return g_json; }

static void out(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDOUT_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void ts(char *buf, size_t len, bool full) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  struct tm tm;
  gmtime_r(&t.tv_sec, &tm);
  char b[32];
  strftime(b, sizeof b, full ? "%Y-%m-%dT%H:%M:%S" : "%H:%M:%S", &tm);
  if (snprintf(buf, len, "%s.%03d%s", b, (int)(t.tv_nsec / 1000000), full ? "Z" : "") >= (int)len)
    buf[len - 1] = 0;
}

/* The event as one JSON line (ts, level, event, then obj's fields), to sink. */
static void json_line(const char *t, int level, const char *event, const cJSON *obj,
                      void (*sink)(const char *, size_t)) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "ts", t);
  cJSON_AddStringToObject(o, "level", level_names[level]);
  cJSON_AddStringToObject(o, "event", event);
  for (const cJSON *it = obj->child; it; it = it->next)
    cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
  char *js = cJSON_PrintUnformatted(o);
  size_t n = strlen(js);
  js[n] = '\n'; /* overwrite the NUL; cJSON allocated n + 1 bytes */
  sink(js, n + 1);
  free(js);
  cJSON_Delete(o);
}

void log_event(int level, const char *event, cJSON *obj) {
  char t[40];
  ts(t, sizeof t, g_json);
  if (!obj) obj = cJSON_CreateObject();
  if (g_tap && strcmp(event, "worker.output") != 0) {
    char tj[40];
    ts(tj, sizeof tj, true);
    json_line(tj, level, event, obj, g_tap);
  }
  if (g_json) {
    json_line(t, level, event, obj, out);
  } else {
    size_t cap = 1024, n = 0;
    char *line = malloc(cap);
    n = (size_t)snprintf(line, cap, "%s %-5s %s", t, level_names[level], event);
    for (cJSON *it = obj->child; it; it = it->next) {
      char *v = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
      const char *val = v ? v : it->valuestring;
      size_t need = n + strlen(it->string) + strlen(val) + 8;
      if (need > cap) line = realloc(line, cap = need * 2);
      bool quote = cJSON_IsString(it) && strchr(val, ' ');
      n += (size_t)snprintf(line + n, cap - n, quote ? " %s=\"%s\"" : " %s=%s", it->string, val);
      free(v);
    }
    line[n++] = '\n';
    out(line, n);
    free(line);
  }
  cJSON_Delete(obj);
}

void log_msg(int level, const char *event, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "msg", buf);
  log_event(level, event, o);
}

void log_line(const char *worker, int pid, const char *stream, const char *line, size_t len) {
  if (g_json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "worker", worker);
    cJSON_AddNumberToObject(o, "pid", pid);
    cJSON_AddStringToObject(o, "stream", stream);
    char *m = strndup(line, len);
    cJSON_AddStringToObject(o, "msg", m);
    free(m);
    log_event(LOG_INFO, "worker.output", o);
    return;
  }
  size_t wl = strlen(worker);
  char *b = malloc(wl + len + 5);
  memcpy(b, worker, wl);
  memcpy(b + wl, " | ", 3);
  memcpy(b + wl + 3, line, len);
  b[wl + 3 + len] = '\n';
  out(b, wl + len + 4);
  free(b);
}
