/*
 * control.c: the control socket, server and client.
 *
 * A unix stream socket, mode 0600, at $XDG_RUNTIME_DIR/warren/NAME.sock
 * (fallback /tmp/warren-UID/NAME.sock, a 0700 directory we own). Protocol:
 * the client sends one JSON object and a newline ({"cmd": "status"},
 * "stats", "stop", {"cmd": "restart", "worker": W}); the server answers one
 * JSON object and a newline, {"ok": true, ...} or {"ok": false, "error":
 * ...}, and closes; "events" stays open and streams (events.c); "metrics"
 * answers the Prometheus text; "reload" answers the plan or the config's
 * errors (reload.c). A peer whose uid (SO_PEERCRED) is not ours is answered
 * "permission denied" and nothing else, whatever the socket's mode.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct client {
  uv_close_cb close_cb; /* first: run.c closes leftover pipes through it */
  uv_pipe_t pipe;
  struct sup *sup;
  size_t len;
  char buf[4096];
  uv_write_t wr;
  char *reply;
  bool subscribed; /* an events client (events.c) */
};

int ctl_default_path(const char *name, char *buf, size_t len) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  char dir[200];
  if (xdg && *xdg) {
    snprintf(dir, sizeof dir, "%s/warren", xdg);
  } else {
    snprintf(dir, sizeof dir, "/tmp/warren-%u", (unsigned)getuid());
  }
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) return -errno;
  struct stat st;
  if (stat(dir, &st) < 0) return -errno;
  if (st.st_uid != getuid() || !S_ISDIR(st.st_mode)) return -EPERM;
  if (!name) {
    snprintf(buf, len, "%s", dir);
    return 0;
  }
  int n = snprintf(buf, len, "%s/%s.sock", dir, name);
  if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return -ENAMETOOLONG;
  return 0;
}

static void client_closed(uv_handle_t *h) {
  struct client *c = h->data;
  free(c->reply);
  free(c);
}

static void on_written(uv_write_t *w, int status) {
  struct client *c = w->data;
  uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void reply(struct client *c, cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  size_t n = strlen(s);
  c->reply = realloc(s, n + 2);
  c->reply[n] = '\n';
  uv_buf_t b = uv_buf_init(c->reply, (unsigned)n + 1);
  c->wr.data = c;
  uv_read_stop((uv_stream_t *)&c->pipe);
  if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, on_written))
    uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static cJSON *error_reply(const char *msg) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 0);
  cJSON_AddStringToObject(o, "error", msg);
  return o;
}

static cJSON *handle(struct sup *s, const cJSON *req) {
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
  if (!cJSON_IsString(cmd)) return error_reply("missing \"cmd\"");
  const char *c = cmd->valuestring;
  cJSON *o;
  if (strcmp(c, "status") == 0) {
    o = stats_status(s);
  } else if (strcmp(c, "stats") == 0) {
    o = stats_status(s);
    cJSON_AddItemToObject(o, "heap", stats_heap(s));
    cJSON_AddItemToObject(o, "channels", objects_chan_stats(s));
  } else if (strcmp(c, "metrics") == 0) {
    o = cJSON_CreateObject();
    char *t = metrics_text(s);
    cJSON_AddStringToObject(o, "text", t);
    free(t);
  } else if (strcmp(c, "reload") == 0) {
    return reload_request(s, "control socket");
  } else if (strcmp(c, "stop") == 0) {
    sup_stop(s, "control socket");
    o = cJSON_CreateObject();
  } else if (strcmp(c, "restart") == 0) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(req, "worker");
    if (!cJSON_IsString(w)) return error_reply("missing \"worker\"");
    if (sup_restart_worker(s, w->valuestring)) return error_reply("no such worker");
    o = cJSON_CreateObject();
  } else {
    return error_reply("unknown command");
  }
  cJSON_AddBoolToObject(o, "ok", 1);
  return o;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  struct client *c = h->data;
  b->base = c->buf + c->len;
  b->len = sizeof c->buf - 1 - c->len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  struct client *c = st->data;
  if (n < 0) {
    events_unsubscribe(st);
    uv_close((uv_handle_t *)st, client_closed);
    return;
  }
  if (c->subscribed) return; /* an events client says nothing more */
  c->len += (size_t)n;
  c->buf[c->len] = 0;
  if (!memchr(c->buf, '\n', c->len) && c->len < sizeof c->buf - 1) return;
  cJSON *req = cJSON_Parse(c->buf);
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
  if (cJSON_IsString(cmd) && strcmp(cmd->valuestring, "events") == 0) {
    /* stays open: events.c writes every event to it; reading goes on to see EOF */
    cJSON_Delete(req);
    c->subscribed = true;
    static char ok[] = "{\"ok\":true}\n";
    uv_buf_t ob = uv_buf_init(ok, sizeof ok - 1);
    uv_try_write(st, &ob, 1);
    events_subscribe(st);
    return;
  }
  reply(c, req ? handle(c->sup, req) : error_reply("bad request: not JSON"));
  cJSON_Delete(req);
}

static void on_connect(uv_stream_t *server, int status) {
  struct sup *s = server->data;
  if (status < 0) return;
  struct client *c = calloc(1, sizeof *c);
  c->sup = s;
  c->close_cb = client_closed;
  uv_pipe_init(s->loop, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe)) {
    uv_close((uv_handle_t *)&c->pipe, client_closed);
    return;
  }
  uv_os_fd_t fd;
  struct ucred cr = {0};
  socklen_t len = sizeof cr;
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || cr.uid != getuid()) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "uid", cr.uid);
    log_event(LOG_WARN, "control.refused", o);
    reply(c, error_reply("permission denied"));
    return;
  }
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

int ctl_listen(struct sup *s, const char *path) {
  snprintf(s->sock_path, sizeof s->sock_path, "%s", path);
  /* A socket file nobody answers on is stale (its supervisor died). */
  int err = 0;
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "cmd", "status");
  cJSON *r = ctl_request(path, req, &err);
  if (r) {
    cJSON_Delete(r);
    s->sock_path[0] = 0;
    return -EADDRINUSE;
  }
  unlink(path);
  uv_pipe_init(s->loop, &s->ctl, 0);
  s->ctl.data = s;
  mode_t old = umask(0077);
  int rc = uv_pipe_bind(&s->ctl, path);
  /* Another run that stopped may have just removed our default directory. */
  if (rc == UV_ENOENT && s->sock_dir[0] && mkdir(s->sock_dir, 0700) == 0)
    rc = uv_pipe_bind(&s->ctl, path);
  umask(old);
  if (!rc) rc = uv_listen((uv_stream_t *)&s->ctl, 64, on_connect);
  if (rc) {
    s->sock_path[0] = 0;
    uv_close((uv_handle_t *)&s->ctl, NULL);
    return rc;
  }
  chmod(path, 0600);
  guard_files(path, s->sock_dir); /* removed by the guard if we are SIGKILLed */
  return 0;
}

void ctl_close(struct sup *s) {
  if (!s->sock_path[0]) return;
  uv_close((uv_handle_t *)&s->ctl, NULL);
  guard_files(NULL, NULL);
  unlink(s->sock_path);
  if (s->sock_dir[0]) rmdir(s->sock_dir); /* fails, as it should, if another run is there */
  s->sock_path[0] = 0;
}

int ctl_connect(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = -errno;
    if (fd >= 0) close(fd);
    return e;
  }
  return fd;
}

cJSON *ctl_request(const char *path, cJSON *req, int *err) {
  char *msg = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  int fd = ctl_connect(path);
  if (fd < 0) {
    *err = fd;
    free(msg);
    return NULL;
  }
  size_t n = strlen(msg);
  msg[n] = '\n';
  /* A server that refuses us answers and closes at once: a failed send
   * (EPIPE, no SIGPIPE) still leaves its answer to read. */
  ssize_t w = send(fd, msg, n + 1, MSG_NOSIGNAL);
  int send_err = w < 0 ? -errno : 0;
  free(msg);
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = 0;
  cJSON *o = cJSON_Parse(buf);
  free(buf);
  if (!o) *err = send_err ? send_err : -EPROTO;
  return o;
}
