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
 *
 * The guard also removes what the supervisor leaves in the file system: the
 * control socket and, when it is the default one, its directory
 * ($XDG_RUNTIME_DIR/warren, if empty). The arena is a memfd and leaves
 * nothing in /dev/shm. Messages on the pipe are int32 words: v > 1
 * registers group v, v < 0 forgets group -v, v == 1 is followed by a length
 * and "socket\0dir\0" (length 0: nothing to remove, the supervisor did).
 */
#include "sup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_fd = -1;
static pid_t g_pid;

static bool read_full(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

static void guard_main(int rfd) {
  static int32_t groups[WR_MAX_SLOTS * 2];
  static char files[GUARD_FILES_MAX]; /* "socket\0dir\0" or empty */
  int n = 0;
  int32_t v, len;
  while (read_full(rfd, &v, sizeof v)) {
    if (v == 1) {
      if (!read_full(rfd, &len, sizeof len) || len < 0 || len > (int32_t)sizeof files) break;
      memset(files, 0, sizeof files);
      if (!read_full(rfd, files, (size_t)len)) break;
    } else if (v > 1 && n < (int)(sizeof groups / sizeof groups[0])) {
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
  files[sizeof files - 1] = 0;
  if (files[0]) {
    unlink(files);
    const char *dir = files + strlen(files) + 1;
    if (dir < files + sizeof files && *dir) rmdir(dir); /* fails, as it should, if not empty */
  }
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

void guard_files(const char *sock, const char *dir) {
  struct {
    int32_t v, len;
    char files[GUARD_FILES_MAX];
  } m = {.v = 1};
  if (sock) {
    int k = snprintf(m.files, sizeof m.files, "%s%c%s", sock, 0, dir ? dir : "");
    if (k < 0 || k + 1 > (int)sizeof m.files) return; /* cannot be: both fit sun_path */
    m.len = k + 1;
  }
  size_t n = offsetof(__typeof__(m), files) + (size_t)m.len; /* <= PIPE_BUF: one write */
  if (g_fd >= 0 && write(g_fd, &m, n) < 0) {
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
