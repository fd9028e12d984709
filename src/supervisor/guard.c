/*
 * guard.c: the process that kills every worker group when the supervisor
 * dies, even by SIGKILL (DESIGN.md "Supervisor": workers never outlive it).
 *
 * PR_SET_PDEATHSIG covers a worker process itself (armed by the library at
 * attach, by warren-shim for plain commands), but not the children a worker
 * forks. So at start-up the supervisor forks one guard holding the read end
 * of a close-on-exec pipe. The supervisor writes +pgid when it spawns a
 * worker (each worker leads its own group) and -pgid when that worker's
 * exit was handled. The guard only reads: end of file means the supervisor
 * is gone (nobody else holds the write end), and the guard then SIGKILLs
 * every group still registered and exits. At a clean stop the supervisor
 * closes the pipe with no group left, and reaps the guard.
 */
#include "sup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_fd = -1;
static pid_t g_pid;

static void guard_main(int rfd) {
  static int32_t groups[WR_MAX_SLOTS * 2];
  int n = 0;
  for (;;) {
    int32_t v;
    ssize_t r = read(rfd, &v, sizeof v);
    if (r < 0 && errno == EINTR) continue;
    if (r != (ssize_t)sizeof v) break;
    if (v > 1 && n < (int)(sizeof groups / sizeof groups[0])) {
      groups[n++] = v;
    } else if (v < 0) {
      for (int i = 0; i < n; i++)
        if (groups[i] == -v) {
          groups[i] = groups[--n];
          break;
        }
    }
  }
  for (int i = 0; i < n; i++)
    kill(-groups[i], SIGKILL); /* every groups[i] > 1 */
  _exit(0);
}

int guard_start(void) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    return -e;
  }
  if (pid == 0) {
    close(p[1]);
    /* Its own group, so that signals sent to the supervisor's group (^C in a
     * terminal) do not end it before the supervisor has stopped the workers. */
    setpgid(0, 0);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    guard_main(p[0]);
  }
  close(p[0]);
  g_fd = p[1];
  g_pid = pid;
  return 0;
}

void guard_note(int pgid, bool add) {
  int32_t v = add ? pgid : -pgid;
  if (g_fd >= 0 && write(g_fd, &v, sizeof v) < 0) {
    /* the guard is gone: nothing better to do than carry on */
  }
}

int guard_pid(void) { return g_pid; }

void guard_stop(void) {
  if (g_fd < 0) return;
  close(g_fd);
  g_fd = -1;
  waitpid(g_pid, NULL, 0);
}
