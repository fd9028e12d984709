/*
 * shim.c: warren-shim, the exec shim for commands that do not use libwarren.
 *
 *   warren-shim PATH ARG0 [ARGS...]
 *
 * libuv has no pre-exec hook, and a plain command (/bin/sleep) would outlive
 * a supervisor killed with SIGKILL. The shim arms PR_SET_PDEATHSIG(SIGKILL),
 * checks that its parent is still the supervisor that started it (it may
 * have died before the arming), and execs the command in place: same pid,
 * same process group, so the exit status the supervisor sees is the
 * command's. With WARREN_READY=exec it first announces readiness on
 * WARREN_NOTIFY ("exec success": the supervisor resolved PATH as executable
 * when it checked the config; if the exec still fails the shim exits 127,
 * which is an ordinary failed start). Children the command forks are
 * covered by the supervisor's guard (guard.c), not by the shim.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void notify_ready(void) {
  const char *n = getenv("WARREN_NOTIFY");
  if (!n || !*n) return;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len = strlen(n);
  if (len >= sizeof sa.sun_path) return;
  memcpy(sa.sun_path, n, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
  char msg[128];
  int m = snprintf(msg, sizeof msg, "READY=1\nWARREN_SLOT=%s\nWARREN_INCARNATION=%s\n",
                   getenv("WARREN_SLOT") ? getenv("WARREN_SLOT") : "",
                   getenv("WARREN_INCARNATION") ? getenv("WARREN_INCARNATION") : "");
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sendto(fd, msg, (size_t)m, 0, (struct sockaddr *)&sa,
         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  close(fd);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: warren-shim PATH ARG0 [ARGS...] (started by warren)\n");
    return 2;
  }
  pid_t sup = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != sup || sup == 1) return 1; /* the supervisor died before we armed */
  const char *mode = getenv("WARREN_READY");
  if (mode && strcmp(mode, "exec") == 0) notify_ready();
  execv(argv[1], argv + 2);
  fprintf(stderr, "warren-shim: cannot exec %s: %s\n", argv[1], strerror(errno));
  return 127;
}
