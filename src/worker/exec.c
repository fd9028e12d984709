/*
 * exec.c: `exec -- CMD ARGS...`, an unmodified program as a stage.
 *
 * The command runs as a child with pipes on its stdin and stdout (stderr
 * goes to the supervisor's log). A feeder thread writes each input record
 * and a newline to the child's stdin and releases the record; the main
 * thread splits the child's stdout into lines and sends each one out. Both
 * directions block on their own, so a program that buffers its output
 * (tr, sed, sort) works: nothing waits for an answer to a record.
 *
 * End of input closes the child's stdin; the child's end of output then
 * ends the stage. If the child dies first, the stage exits 1 and the
 * supervisor restarts the stage, which starts a new child: records the
 * child had already read are lost with it (they were released), records
 * not yet written are redelivered. The child gets PR_SET_PDEATHSIG, sits
 * in the stage's process group (a stop's SIGTERM reaches it too) and does
 * not inherit the arena.
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct feeder {
  struct stage_ctx *ctx;
  int fd;   /* the child's stdin */
  int done; /* 1: the feeder ended the child's input (EOF, stop); 2: the child went away */
};

static int write_all(int fd, const void *p, size_t n) {
  const char *s = p;
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Records go to the child in writes of up to 64 KiB: while more input is
 * ready, records are gathered (and kept unreleased); when none is, or the
 * buffer is full, it is written and they are released. */
static void *feed(void *arg) {
  struct feeder *f = arg;
  enum { CAP = 1 << 16, MAXREC = 1024 };
  static wr_rec recs[MAXREC];
  char *buf = malloc(CAP);
  size_t len = 0, n = 0;
  bool gone = false;
  if (!buf) stage_die(f->ctx, EXIT_FAIL, "out of memory");
  for (;;) {
    /* 0: a record, 1: end of stream or stop, 2: none ready now */
    int rc = stage_next_t(f->ctx, &recs[n], n ? 0 : -1);
    bool more = rc == 0;
    const wr_rec *r = &recs[n];
    if (more && r->len + 1 <= CAP - len) {
      memcpy(buf + len, r->data, r->len);
      buf[len + r->len] = '\n';
      len += r->len + 1;
      n++;
      if (n < MAXREC) continue;
      more = false;
    }
    /* Write what was gathered, release it, then the record that did not fit. */
    if (len && write_all(f->fd, buf, len)) gone = true;
    for (size_t k = 0; k < n && !gone; k++)
      stage_done(f->ctx, &recs[k]);
    if (gone) break;
    len = 0;
    if (more) { /* a record larger than the buffer */
      recs[0] = recs[n];
      if (write_all(f->fd, recs[0].data, recs[0].len) || write_all(f->fd, "\n", 1)) {
        gone = true;
        break;
      }
      stage_done(f->ctx, &recs[0]);
    }
    n = 0;
    if (rc == 1) break;
  }
  free(buf);
  /* Before the close: the child's end of output, which follows it, then
   * implies the store. Pairs with the acquire in run(). */
  __atomic_store_n(&f->done, gone ? 2 : 1, __ATOMIC_RELEASE);
  close(f->fd);
  return NULL;
}

/* fork + exec argv with pipes; an exec failure comes back through a
 * close-on-exec pipe as its errno. */
static pid_t start(struct stage_ctx *ctx, char **argv, int *to, int *from) {
  int in[2], out[2], st[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(st, O_CLOEXEC))
    stage_die(ctx, EXIT_FAIL, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) stage_die(ctx, EXIT_FAIL, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    for (int fd = 3; fd < 1024; fd++)
      if (fd != st[1]) close(fd); /* the arena fd among them */
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], argv);
    int e = errno;
    if (write(st[1], &e, sizeof e) < 0) _exit(127);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(st[1]);
  int e = 0;
  ssize_t n;
  while ((n = read(st[0], &e, sizeof e)) < 0 && errno == EINTR) {
  }
  close(st[0]);
  if (n > 0) {
    waitpid(pid, NULL, 0);
    stage_die(ctx, EXIT_FAIL, "cannot run %s: %s", argv[0], strerror(e));
  }
  *to = in[1];
  *from = out[0];
  return pid;
}

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (argv[i][0] == '-') stage_die(ctx, EXIT_USAGE, "unknown option %s", argv[i]);
    break;
  }
  if (i >= argc) stage_die(ctx, EXIT_USAGE, "no command given (exec -- CMD ARGS...)");
  char **cmd = argv + i;
  int to, from;
  pid_t pid = start(ctx, cmd, &to, &from);
  stage_attach(ctx);
  struct feeder f = {ctx, to, 0};
  pthread_t t;
  if (pthread_create(&t, NULL, feed, &f)) stage_die(ctx, EXIT_FAIL, "cannot start a thread");
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  if (!buf) stage_die(ctx, EXIT_FAIL, "out of memory");
  for (;;) {
    if (len == cap && !(buf = realloc(buf, cap *= 2))) stage_die(ctx, EXIT_FAIL, "out of memory");
    ssize_t n = read(from, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) stage_die(ctx, EXIT_FAIL, "reading %s: %s", cmd[0], strerror(errno));
    if (n == 0) break;
    size_t start_ = 0, end = len + (size_t)n;
    for (size_t k = len; k < end; k++)
      if (buf[k] == '\n') {
        if (stage_emit(ctx, buf + start_, k - start_, 0)) break;
        start_ = k + 1;
      }
    memmove(buf, buf + start_, end - start_);
    len = end - start_;
  }
  if (len > 0) stage_emit(ctx, buf, len, 0); /* a last line without newline */
  free(buf);
  close(from);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int fed = __atomic_load_n(&f.done, __ATOMIC_ACQUIRE); /* pairs with the release in feed() */
  if (!g_stop && (fed != 1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
    if (WIFSIGNALED(status))
      stage_die(ctx, EXIT_FAIL, "%s was killed by signal %d", cmd[0], WTERMSIG(status));
    stage_die(ctx, EXIT_FAIL, "%s exited with status %d%s", cmd[0], WEXITSTATUS(status),
              fed == 1 ? "" : " before the end of its input");
  }
  if (!fed) return EXIT_OK; /* stopping: the feeder may be blocked; exit without it */
  pthread_join(t, NULL);
  return stage_finish(ctx);
}

const struct stage stage_exec = {
    "exec", "each record to a command's stdin, each line of its stdout out",
    "[--] CMD [ARGS...]\n"
    "\n"
    "Runs CMD once (restarted with the stage) and streams records through it:\n"
    "each input record plus a newline goes to CMD's standard input, each line\n"
    "CMD writes to standard output is sent out (without its newline). CMD's\n"
    "standard error goes to the log. Any program that reads lines and writes\n"
    "lines fits unmodified: tr, sed, rev, awk, grep, python3 -u script.py.",
    STAGE_IN | STAGE_OUT, run};
