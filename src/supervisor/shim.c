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
 * command's (if the exec fails the shim exits 127: an ordinary failed
 * start). Children the command forks are covered by the supervisor's guard
 * (guard.c), not by the shim.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: warren-shim PATH ARG0 [ARGS...] (started by warren)\n");
    return 2;
  }
  /* Arm, then check that the parent is still the supervisor (it may have
   * died before we armed, and we would then belong to another process). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const char *sup = getenv("WARREN_SUPERVISOR");
  if (!sup || atol(sup) != (long)getppid()) return 1;
  execv(argv[1], argv + 2);
  fprintf(stderr, "warren-shim: cannot exec %s: %s\n", argv[1], strerror(errno));
  return 127;
}
