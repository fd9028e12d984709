/*
 * shim.c: warren-shim, the exec shim for commands that do not use libwarren
 * and for workers with process settings.
 *
 *   warren-shim [-r RES=SOFT:HARD]... [-m UMASK] [-n NICE] [-g GID [-G GID,...]] [-u UID] -- PATH ARG0 [ARGS...]
 *   warren-shim PATH ARG0 [ARGS...]
 *
 * libuv has no pre-exec hook, and a plain command (/bin/sleep) would outlive
 * a supervisor killed with SIGKILL. The shim applies the worker's settings
 * (rlimits by resource number, umask in decimal, nice, then group and user:
 * the identity last, while it may still raise limits), arms
 * PR_SET_PDEATHSIG(SIGKILL) (after the identity change, which clears it),
 * checks that its parent is still the supervisor that started it (it may
 * have died before the arming), sets WATCHDOG_PID to its own pid when the
 * supervisor gave it WATCHDOG_USEC (watchdog_s), and execs the command in
 * place: same pid, same process group, so the exit status the supervisor
 * sees is the command's. A setting that cannot be applied, or an exec that
 * fails, ends the shim with 127: an ordinary failed start. Children the
 * command forks are covered by the supervisor's guard (guard.c), not by the
 * shim.
 *
 * The shim is linked statically where the build allows it (not under the
 * sanitizers): it runs before every plain command, and a static exec skips
 * the dynamic loader, ~0.25 ms of a ~0.8 ms start here. So it does no name
 * service lookups (they would need the shared NSS modules of the very glibc
 * it was linked with): the supervisor resolves the user's supplementary
 * groups (getgrouplist) and passes them as -G; without -G, -g drops them.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *arg) {
  fprintf(stderr, "warren-shim: %s %s: %s\n", what, arg, strerror(errno));
  return 127;
}

static rlim_t lim(unsigned long long v) { return v == ~0ull ? RLIM_INFINITY : (rlim_t)v; }

int main(int argc, char **argv) {
  int i = 1;
  long uid = -1, gid = -1;
  gid_t groups[256];
  size_t ngroups = 0;
  if (argc > 1 && argv[1][0] == '-') {
    for (; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
      const char *f = argv[i], *v = argv[i + 1];
      if (strcmp(f, "-r") == 0) {
        int res;
        unsigned long long soft, hard;
        if (sscanf(v, "%d=%llu:%llu", &res, &soft, &hard) != 3) return fail("bad", v);
        struct rlimit rl = {lim(soft), lim(hard)};
        if (setrlimit(res, &rl) < 0) return fail("setrlimit", v);
      } else if (strcmp(f, "-m") == 0) {
        umask((mode_t)atoi(v));
      } else if (strcmp(f, "-n") == 0) {
        errno = 0;
        if (setpriority(PRIO_PROCESS, 0, atoi(v)) < 0) return fail("nice", v);
      } else if (strcmp(f, "-g") == 0) {
        gid = atol(v);
      } else if (strcmp(f, "-G") == 0) {
        for (char *p = (char *)v; *p && ngroups < sizeof groups / sizeof groups[0]; p++) {
          groups[ngroups++] = (gid_t)strtoul(p, &p, 10);
          if (*p != ',') break;
        }
      } else if (strcmp(f, "-u") == 0) {
        uid = atol(v);
      } else {
        errno = EINVAL;
        return fail("unknown option", f);
      }
    }
    i++; /* "--" */
  }
  if (argc - i < 2) {
    fprintf(stderr, "usage: warren-shim [OPTIONS] -- PATH ARG0 [ARGS...] (started by warren)\n");
    return 2;
  }
  if (gid >= 0) {
    if (setgroups(ngroups, groups) < 0 && errno != EPERM)
      return fail("setgroups", argv[i]);
    if (setgid((gid_t)gid) < 0) return fail("setgid", argv[i]);
  }
  if (uid >= 0 && setuid((uid_t)uid) < 0) return fail("setuid", argv[i]);
  /* Arm, then check that the parent is still the supervisor (it may have
   * died before we armed, and we would then belong to another process). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const char *sup = getenv("WARREN_SUPERVISOR");
  if (!sup || atol(sup) != (long)getppid()) return 1;
  if (getenv("WATCHDOG_USEC")) { /* as systemd: the pid that must send WATCHDOG=1 */
    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
  }
  execv(argv[i], argv + i + 1);
  fprintf(stderr, "warren-shim: cannot exec %s: %s\n", argv[i], strerror(errno));
  return 127;
}
