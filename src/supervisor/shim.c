/*
 * shim.c: warren-shim, the tiny parent every worker runs under.
 *
 *   warren-shim PATH ARG0 [ARGS...]
 *
 * libuv has no pre-exec hook, and a command that does not use libwarren
 * (/bin/sleep) would outlive a supervisor killed with SIGKILL; so would any
 * child a worker forks, even one that uses the library. The shim closes
 * both holes (DESIGN.md "Supervisor"):
 * - it arms PR_SET_PDEATHSIG (SHIM_DEATH_SIG) and checks that its parent
 *   is still the supervisor, then becomes a child subreaper, forks the
 *   command (which arms PR_SET_PDEATHSIG(SIGKILL) against the shim) and
 *   waits;
 * - when the supervisor dies, the shim SIGKILLs every descendant (they
 *   all come back to it as its orphans) and exits;
 * - when the command exits, the shim kills what it left behind, reaps it,
 *   and exits with the command's status (re-raising its signal), so the
 *   supervisor learns the death exactly;
 * - readiness for plain commands (WARREN_READY=exec): after a successful
 *   exec (a close-on-exec pipe tells), the shim sends READY=1 with the
 *   slot and incarnation to WARREN_NOTIFY.
 * Signals sent to the group (the supervisor's SIGTERM) reach the command
 * directly; the shim keeps them blocked and only waits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHIM_DEATH_SIG (SIGRTMIN + 3)

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

/* SIGKILL every child (descendants come back to us as they are orphaned)
 * and reap until none is left. */
static void kill_all(void) {
  for (;;) {
    DIR *d = opendir("/proc/self/task");
    if (d) {
      struct dirent *e;
      while ((e = readdir(d))) {
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "re") : NULL;
        int pid;
        while (f && fscanf(f, "%d", &pid) == 1) kill(pid, SIGKILL);
        if (f) fclose(f);
      }
      closedir(d);
    }
    if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) return;
  }
}

static void exit_like(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    prctl(PR_SET_DUMPABLE, 0); /* the command dumped core already if it should */
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    _exit(128 + sig);
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: warren-shim PATH ARG0 [ARGS...] (started by warren)\n");
    return 2;
  }
  pid_t sup = getppid();
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGFPE);
  sigprocmask(SIG_BLOCK, &all, &old);
  prctl(PR_SET_PDEATHSIG, SHIM_DEATH_SIG);
  if (getppid() != sup) return 1; /* the supervisor died before we armed */
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return 1;
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "warren-shim: fork: %s\n", strerror(errno));
    return 1;
  }
  if (child == 0) {
    close(p[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
    sigprocmask(SIG_SETMASK, &old, NULL);
    execv(argv[1], argv + 2);
    int e = errno;
    ssize_t w = write(p[1], &e, sizeof e);
    (void)w;
    _exit(127);
  }
  close(p[1]);
  int e = 0;
  ssize_t r;
  do r = read(p[0], &e, sizeof e);
  while (r < 0 && errno == EINTR);
  close(p[0]);
  if (r > 0) {
    fprintf(stderr, "warren-shim: cannot exec %s: %s\n", argv[1], strerror(e));
  } else {
    const char *mode = getenv("WARREN_READY");
    if (mode && strcmp(mode, "exec") == 0) notify_ready();
  }

  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig == SHIM_DEATH_SIG) {
      kill_all();
      _exit(137);
    }
    if (sig != SIGCHLD) continue;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
      if (pid == child) {
        kill_all();
        exit_like(status);
      }
  }
}
