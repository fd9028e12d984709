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
 *
 * WatchdogSec: systemd's WATCHDOG_USEC and WATCHDOG_PID (the watchdog is
 * ours unless WATCHDOG_PID names another process) are taken out of the
 * environment too, so that they never reach a worker (a worker with
 * watchdog_s gets its own, for the supervisor's socket: watchdog.c); the
 * loop then sends WATCHDOG=1 every half of WATCHDOG_USEC, as the users of
 * sd_watchdog_enabled do: a supervisor whose loop hangs stops pinging.
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
static uint64_t g_watchdog_usec;

void sdnotify_init(void) {
  const char *wu = getenv("WATCHDOG_USEC"), *wp = getenv("WATCHDOG_PID");
  if (wu && (!wp || atol(wp) == (long)getpid())) g_watchdog_usec = strtoull(wu, NULL, 10);
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  const char *e = getenv("NOTIFY_SOCKET");
  if (!e || (e[0] != '/' && e[0] != '@') || strlen(e) >= sizeof g_sa.sun_path) {
    unsetenv("NOTIFY_SOCKET");
    g_watchdog_usec = 0;
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

static void on_ping(uv_timer_t *t) { sdnotify("WATCHDOG=1"); }

void sdnotify_watchdog_start(struct sup *s) {
  uint64_t ms = g_watchdog_usec / 2000;
  if (!g_len || !ms) return;
  sdnotify("WATCHDOG=1");
  uv_timer_start(&s->sd_watchdog_timer, on_ping, ms, ms);
}
