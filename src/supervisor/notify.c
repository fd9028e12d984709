/*
 * notify.c: readiness and watchdog datagrams, the sd_notify protocol.
 *
 * The supervisor binds one unix datagram socket in the abstract namespace
 * (nothing to clean up, even after SIGKILL) and passes its name to every
 * worker as WARREN_NOTIFY, and as NOTIFY_SOCKET to workers configured with
 * "ready": "notify". wr_worker_ready() sends "READY=1" with WARREN_SLOT and
 * WARREN_INCARNATION;
 * a plain sd_notify program sends "READY=1" and is recognised by its pid
 * (SCM_CREDENTIALS: the shim's child, or the shim itself). Datagrams from
 * a uid that is neither ours nor a configured worker's `user` are dropped;
 * so are stale incarnations. A "WATCHDOG=1" line is a heartbeat for the
 * watchdog (watchdog.c), as systemd's WatchdogSec takes it; other lines
 * (STATUS=, WATCHDOG=trigger, ...) are ignored.
 */
#include "sup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int parent_of(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  int ppid = -1;
  if (p && sscanf(p + 1, " %*c %d", &ppid) != 1) ppid = -1;
  return ppid;
}

static struct inst *find_sender(struct sup *s, const char *msg, int pid) {
  const char *sl = strstr(msg, "WARREN_SLOT=");
  const char *ic = strstr(msg, "WARREN_INCARNATION=");
  if (sl && ic) {
    unsigned slot = (unsigned)strtoul(sl + 12, NULL, 10);
    unsigned inc = (unsigned)strtoul(ic + 19, NULL, 10);
    for (int i = 0; i < s->ninst; i++)
      if (s->inst[i]->slot == slot && s->inst[i]->incarnation == inc && s->inst[i]->pid > 0)
        return s->inst[i];
    return NULL;
  }
  int ppid = parent_of(pid);
  for (int i = 0; i < s->ninst; i++)
    if (s->inst[i]->pid > 0 && (s->inst[i]->pid == pid || s->inst[i]->pid == ppid))
      return s->inst[i];
  return NULL;
}

/* Does the datagram hold the line `line` ("KEY=VALUE", exactly)? */
static bool has_line(const char *msg, const char *line) {
  size_t n = strlen(line);
  for (const char *p = msg; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == 0)) return true;
  return false;
}

void notify_drain(struct sup *s) {
  if (s->notify_fd < 0) return;
  for (;;) {
    char buf[4096];
    union {
      struct cmsghdr h;
      char b[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(s->notify_fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return;
    buf[n] = 0;
    struct ucred *cr = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
        cr = (struct ucred *)CMSG_DATA(c);
    bool uid_ok = cr && cr->uid == getuid();
    for (int i = 0; cr && !uid_ok && i < s->cfg->nworkers; i++)
      uid_ok = s->cfg->workers[i].uid >= 0 && (uid_t)s->cfg->workers[i].uid == cr->uid;
    if (!uid_ok) continue;
    bool ready = has_line(buf, "READY=1"), beat = has_line(buf, "WATCHDOG=1");
    struct inst *in = ready || beat ? find_sender(s, buf, cr->pid) : NULL;
    if (in && beat) watchdog_beat(in);
    if (in && ready) {
      sup_dispatch(in, EV_READY);
      sup_kick(s);
    }
  }
}

static void on_notify(uv_poll_t *h, int status, int events) { notify_drain(h->data); }

int notify_open(struct sup *s) {
  s->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->notify_fd < 0) return -errno;
  int one = 1;
  setsockopt(s->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(s->notify_name, sizeof s->notify_name, "@warren-%d-notify", (int)getpid());
  size_t len = strlen(s->notify_name);
  memcpy(sa.sun_path, s->notify_name, len);
  sa.sun_path[0] = 0;
  if (bind(s->notify_fd, (struct sockaddr *)&sa,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
    int e = errno;
    close(s->notify_fd);
    s->notify_fd = -1;
    return -e;
  }
  uv_poll_init(s->loop, &s->notify_poll, s->notify_fd);
  s->notify_poll.data = s;
  uv_poll_start(&s->notify_poll, UV_READABLE, on_notify);
  return 0;
}

static void notify_closed(uv_handle_t *h) {
  struct sup *s = h->data;
  close(s->notify_fd);
  s->notify_fd = -1;
}

void notify_close(struct sup *s) {
  if (s->notify_fd >= 0) uv_close((uv_handle_t *)&s->notify_poll, notify_closed);
}
