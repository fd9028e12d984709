/*
 * sdnotify.c: warren under systemd with Type=notify, without libsystemd.
 *
 * At start-up the supervisor takes $NOTIFY_SOCKET (a path, or "@name" in
 * the abstract namespace) out of its environment, so that neither workers
 * nor hooks inherit it (a worker configured "ready": "notify" gets the
 * supervisor's own socket instead, notify.c). Then it sends, as the
 * sd_notify protocol says (one datagram of "KEY=VALUE" lines):
 * READY=1 once every worker is ready (or finished) for the first time,
 * RELOADING=1 when a reload starts and READY=1 when it is done, and
 * STOPPING=1 when a stop begins. Without NOTIFY_SOCKET nothing is sent.
 */
#include "sup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un g_sa;
static socklen_t g_len;

void sdnotify_init(void) {
  const char *e = getenv("NOTIFY_SOCKET");
  if (!e || (e[0] != '/' && e[0] != '@') || strlen(e) >= sizeof g_sa.sun_path) {
    unsetenv("NOTIFY_SOCKET");
    return;
  }
  g_sa.sun_family = AF_UNIX;
  size_t n = strlen(e);
  memcpy(g_sa.sun_path, e, n);
  if (e[0] == '@') g_sa.sun_path[0] = 0;
  g_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));
  unsetenv("NOTIFY_SOCKET");
}

void sdnotify(const char *msg) {
  if (!g_len) return;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&g_sa, g_len) < 0)
    log_msg(LOG_WARN, "sdnotify.error", "cannot notify systemd: %s", strerror(errno));
  close(fd);
}
