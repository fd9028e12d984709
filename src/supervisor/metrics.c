/*
 * metrics.c: Prometheus text exposition (format 0.0.4) of the run, for
 * `warren stats --prometheus` (through the control socket) and for the
 * optional HTTP listener `metrics_listen` (off by default; loopback only,
 * checked by config.c) serving GET /metrics.
 *
 * Families: per instance (labels worker, replica) up, restarts, reclaimed
 * bytes/blocks, redelivered records, watchdog kills, CPU seconds and
 * resident bytes (from /proc); per channel lane (labels channel, lane)
 * depth, capacity, records sent and received, bytes, full and empty waits,
 * redelivered; the heap (bytes in use by an exact scan, size, allocs,
 * frees, reclaimed, pages).
 * The listener is a few lines of HTTP/1.0 on the loop: read the request
 * head, answer, close; nothing is kept between scrapes.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct buf {
  char *p;
  size_t n, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < b->cap - b->n) {
      b->n += (size_t)n;
      return;
    }
    b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
    b->p = realloc(b->p, b->cap);
  }
}

static void family(struct buf *b, const char *name, const char *type, const char *help) {
  put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void proc_usage(int pid, double *cpu_s, uint64_t *rss) {
  *cpu_s = 0;
  *rss = 0;
  if (pid <= 0) return;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  long rss_pages = 0;
  /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
   * cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss */
  if (p && sscanf(p + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                  "%*u %*u %ld",
                  &ut, &st, &rss_pages) == 3) {
    *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    *rss = (uint64_t)rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
  }
}

static double num(const cJSON *o, const char *k) {
  return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k));
}

char *metrics_text(struct sup *s) {
  struct buf b = {malloc(4096), 0, 4096};
  const struct cfg *c = s->cfg;
  static const struct {
    const char *name, *type, *help;
  } wf[] = {
      {"warren_worker_up", "gauge", "1 when the worker replica is ready"},
      {"warren_worker_restarts_total", "counter", "restarts of the worker replica"},
      {"warren_worker_reclaimed_bytes_total", "counter", "heap bytes reclaimed after its exits"},
      {"warren_worker_reclaimed_blocks_total", "counter", "heap blocks reclaimed after its exits"},
      {"warren_worker_redelivered_total", "counter", "records redelivered after its exits"},
      {"warren_worker_watchdog_kills_total", "counter", "kills by the watchdog (stuck)"},
      {"warren_worker_cpu_seconds_total", "counter", "CPU time of the current process"},
      {"warren_worker_resident_bytes", "gauge", "resident memory of the current process"},
  };
  for (size_t f = 0; f < sizeof wf / sizeof wf[0]; f++) {
    family(&b, wf[f].name, wf[f].type, wf[f].help);
    for (int i = 0; i < s->ninst; i++) {
      const struct inst *in = s->inst[i];
      double cpu;
      uint64_t rss;
      proc_usage(in->pid, &cpu, &rss);
      double v[] = {in->state == ST_READY,
                    (double)in->restarts,
                    (double)in->reclaimed_bytes,
                    (double)in->reclaimed_blocks,
                    (double)in->redelivered,
                    (double)in->watchdog_kills,
                    cpu,
                    (double)rss};
      put(&b, "%s{worker=\"%s\",replica=\"%d\"} %.17g\n", wf[f].name, c->workers[in->w].name,
          in->replica, v[f]);
    }
  }
  cJSON *lanes = objects_chan_stats(s);
  static const struct {
    const char *name, *type, *key, *help;
  } cf[] = {
      {"warren_channel_depth", "gauge", "depth", "records in the lane"},
      {"warren_channel_capacity", "gauge", "capacity", "slots of the lane"},
      {"warren_channel_records_total", "counter", "sent", "records sent into the lane"},
      {"warren_channel_received_total", "counter", "received", "records released by the consumer"},
      {"warren_channel_bytes_total", "counter", "bytes", "bytes sent into the lane"},
      {"warren_channel_full_waits_total", "counter", "full_waits", "producer waits on a full lane"},
      {"warren_channel_empty_waits_total", "counter", "empty_waits", "consumer waits on empty"},
      {"warren_channel_redelivered_total", "counter", "redelivered", "records redelivered"},
  };
  for (size_t f = 0; f < sizeof cf / sizeof cf[0]; f++) {
    family(&b, cf[f].name, cf[f].type, cf[f].help);
    for (const cJSON *l = lanes->child; l; l = l->next)
      put(&b, "%s{channel=\"%s\",lane=\"%d\"} %.17g\n", cf[f].name,
          cJSON_GetStringValue(cJSON_GetObjectItem(l, "channel")), (int)num(l, "lane"),
          num(l, cf[f].key));
  }
  cJSON_Delete(lanes);
  cJSON *h = stats_heap(s);
  static const struct {
    const char *name, *type, *key, *help;
  } hf[] = {
      {"warren_heap_bytes_in_use", "gauge", "bytes", "heap bytes allocated (exact scan)"},
      {"warren_heap_size_bytes", "gauge", "heap_bytes", "size of the heap"},
      {"warren_heap_pages_in_use", "gauge", "pages_in_use", "heap pages in use"},
      {"warren_heap_allocs_total", "counter", "allocs", "allocations"},
      {"warren_heap_frees_total", "counter", "frees", "frees"},
      {"warren_heap_reclaimed_bytes_total", "counter", "reclaimed_bytes", "bytes reclaimed"},
  };
  for (size_t f = 0; f < sizeof hf / sizeof hf[0]; f++) {
    family(&b, hf[f].name, hf[f].type, hf[f].help);
    put(&b, "%s %.17g\n", hf[f].name, num(h, hf[f].key));
  }
  family(&b, "warren_heap_check_ok", "gauge", "1 when the heap invariant holds");
  put(&b, "warren_heap_check_ok %d\n",
      strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(h, "check")), "ok") == 0);
  cJSON_Delete(h);
  return b.p;
}

/* ------------------------------------------------------------ the listener */

struct conn {
  uv_tcp_t t;
  struct sup *sup;
  size_t len;
  char req[4096];
  uv_write_t wr;
  char *resp;
};

static void conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  free(c->resp);
  free(c);
}

static void conn_written(uv_write_t *w, int status) {
  struct conn *c = w->data;
  uv_close((uv_handle_t *)&c->t, conn_closed);
}

static void respond(struct conn *c) {
  bool get = strncmp(c->req, "GET ", 4) == 0;
  bool path =
      get && (strncmp(c->req + 4, "/metrics ", 9) == 0 || strncmp(c->req + 4, "/metrics?", 9) == 0);
  char *body = path ? metrics_text(c->sup) : strdup(get ? "not found\n" : "bad request\n");
  const char *status = path ? "200 OK" : get ? "404 Not Found" : "400 Bad Request";
  if (asprintf(&c->resp,
               "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
               status, strlen(body), body) < 0)
    c->resp = NULL;
  free(body);
  uv_read_stop((uv_stream_t *)&c->t);
  if (!c->resp) {
    uv_close((uv_handle_t *)&c->t, conn_closed);
    return;
  }
  uv_buf_t b = uv_buf_init(c->resp, (unsigned)strlen(c->resp));
  c->wr.data = c;
  if (uv_write(&c->wr, (uv_stream_t *)&c->t, &b, 1, conn_written))
    uv_close((uv_handle_t *)&c->t, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  struct conn *c = h->data;
  b->base = c->req + c->len;
  b->len = sizeof c->req - 1 - c->len;
}

static void conn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  struct conn *c = st->data;
  if (n < 0) {
    uv_close((uv_handle_t *)st, conn_closed);
    return;
  }
  c->len += (size_t)n;
  c->req[c->len] = 0;
  if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") || c->len >= sizeof c->req - 1)
    respond(c);
}

static void on_conn(uv_stream_t *server, int status) {
  struct sup *s = server->data;
  if (status < 0) return;
  struct conn *c = calloc(1, sizeof *c);
  c->sup = s;
  uv_tcp_init(s->loop, &c->t);
  c->t.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->t)) {
    uv_close((uv_handle_t *)&c->t, conn_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&c->t, conn_alloc, conn_read);
}

int metrics_listen(struct sup *s) {
  const char *l = s->cfg->metrics_listen;
  if (!l) return 0;
  const char *colon = strrchr(l, ':');
  char host[64];
  snprintf(host, sizeof host, "%.*s", (int)(colon - l), l);
  int port = atoi(colon + 1);
  struct sockaddr_storage sa;
  int rc;
  if (strcmp(host, "[::1]") == 0)
    rc = uv_ip6_addr("::1", port, (struct sockaddr_in6 *)&sa);
  else
    rc = uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port,
                     (struct sockaddr_in *)&sa);
  if (rc) return rc;
  uv_tcp_init(s->loop, &s->http);
  s->http.data = s;
  s->http_on = true;
  rc = uv_tcp_bind(&s->http, (struct sockaddr *)&sa, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&s->http, 16, on_conn);
  if (rc) {
    metrics_close(s);
    return rc;
  }
  int len = sizeof sa;
  uv_tcp_getsockname(&s->http, (struct sockaddr *)&sa, &len);
  char ip[64] = "";
  if (sa.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
    snprintf(s->http_addr, sizeof s->http_addr, "[%s]:%d", ip,
             ntohs(((struct sockaddr_in6 *)&sa)->sin6_port));
  } else {
    uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
    snprintf(s->http_addr, sizeof s->http_addr, "%s:%d", ip,
             ntohs(((struct sockaddr_in *)&sa)->sin_port));
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "address", s->http_addr);
  cJSON_AddStringToObject(o, "url", "/metrics");
  log_event(LOG_INFO, "metrics.listen", o);
  return 0;
}

void metrics_close(struct sup *s) {
  if (!s->http_on) return;
  s->http_on = false;
  if (!uv_is_closing((uv_handle_t *)&s->http)) uv_close((uv_handle_t *)&s->http, NULL);
}
