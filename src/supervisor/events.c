/*
 * events.c: `warren events [--json]`, a live stream of the supervisor's
 * events over the control socket.
 *
 * A client sends {"cmd": "events"}; control.c answers {"ok": true} and hands
 * the connection here. From then on every event the supervisor logs
 * (log.c's tap: state changes, starts, exits, restarts, reclaims, stats,
 * reloads; not the workers' captured output) is written to it as one JSON
 * line. A subscriber that does not keep up (more than 1 MiB queued) misses
 * lines rather than growing the supervisor's memory. The client prints the
 * lines as they are (--json) or as "time level event key=value ...", and
 * ends when the run ends.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SUBS 64
#define MAX_QUEUED (1u << 20)

static uv_stream_t *g_subs[MAX_SUBS];
static int g_nsubs;

struct ev_write {
  uv_write_t req;
  char data[];
};

static void written(uv_write_t *w, int status) { free(w); }

void events_publish(const char *line, size_t n) {
  for (int i = 0; i < g_nsubs; i++) {
    uv_stream_t *st = g_subs[i];
    if (uv_is_closing((uv_handle_t *)st) || uv_stream_get_write_queue_size(st) > MAX_QUEUED)
      continue;
    struct ev_write *w = malloc(sizeof *w + n);
    memcpy(w->data, line, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, st, &b, 1, written)) free(w);
  }
}

void events_subscribe(uv_stream_t *client) {
  if (g_nsubs < MAX_SUBS) g_subs[g_nsubs++] = client;
  log_set_tap(events_publish);
}

void events_unsubscribe(uv_stream_t *client) {
  for (int i = 0; i < g_nsubs; i++)
    if (g_subs[i] == client) g_subs[i--] = g_subs[--g_nsubs];
  if (g_nsubs == 0) log_set_tap(NULL);
}

void events_close_all(void) {
  g_nsubs = 0; /* their pipes are closed with the rest of the loop's handles */
  log_set_tap(NULL);
}

/* ------------------------------------------------------------ the client */

static void print_text(const char *line) {
  cJSON *o = cJSON_Parse(line);
  if (!o) return;
  const char *ts = cJSON_GetStringValue(cJSON_GetObjectItem(o, "ts"));
  printf("%s %-5s %s", ts ? ts : "", cJSON_GetStringValue(cJSON_GetObjectItem(o, "level")),
         cJSON_GetStringValue(cJSON_GetObjectItem(o, "event")));
  for (cJSON *it = o->child; it; it = it->next) {
    if (!strcmp(it->string, "ts") || !strcmp(it->string, "level") || !strcmp(it->string, "event"))
      continue;
    char *v = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
    printf(" %s=%s", it->string, v ? v : it->valuestring);
    free(v);
  }
  putchar('\n');
  cJSON_Delete(o);
}

int events_client(const char *path, bool json) {
  int fd = ctl_connect(path);
  if (fd < 0) {
    fprintf(stderr, "warren: %s: %s\n", path, strerror(-fd));
    return SUP_EXIT_FAIL;
  }
  static const char req[] = "{\"cmd\":\"events\"}\n";
  if (write(fd, req, sizeof req - 1) < 0) {
    /* the answer, if any, says why */
  }
  FILE *f = fdopen(fd, "r");
  char *line = NULL;
  size_t cap = 0;
  bool first = true;
  int code = SUP_EXIT_OK;
  while (getline(&line, &cap, f) > 0) {
    if (first) {
      first = false;
      cJSON *r = cJSON_Parse(line);
      if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
        const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(r, "error"));
        fprintf(stderr, "warren: %s\n", e ? e : "bad reply");
        code = SUP_EXIT_FAIL;
        cJSON_Delete(r);
        break;
      }
      cJSON_Delete(r);
      continue;
    }
    if (json)
      fputs(line, stdout);
    else
      print_text(line);
    fflush(stdout);
  }
  free(line);
  fclose(f);
  return code;
}
