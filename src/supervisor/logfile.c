/*
 * logfile.c: per-worker log files (config `log_dir`), rotated by size.
 *
 * With log_dir set, each instance's captured lines go to LOG_DIR/LABEL.log
 * instead of the supervisor's stdout (events stay there). A file is opened
 * on its first line (O_APPEND, 0640, close-on-exec) and rotated when the
 * next line would take it past log_max_bytes (10 MiB): LABEL.log.N-1 ->
 * LABEL.log.N ... LABEL.log -> LABEL.log.1, keeping log_files (5) old files
 * (0: the file is truncated instead). SIGUSR2 closes every file so the next
 * line reopens it, for an outside logrotate that moved it away. Files are
 * keyed by label, not by instance, so a worker's pipes may drain after its
 * instance is gone. One write(2) per line.
 */
#include "sup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lf {
  char label[64];
  int fd;
  uint64_t size;
};

static char *g_dir;
static uint64_t g_max;
static int g_keep;
static struct lf *g_files;
static int g_n;

void logfile_close_all(void) {
  for (int i = 0; i < g_n; i++)
    if (g_files[i].fd >= 0) close(g_files[i].fd);
  free(g_files);
  g_files = NULL;
  g_n = 0;
}

void logfile_configure(const char *dir, uint64_t max_bytes, int files) {
  logfile_close_all();
  free(g_dir);
  g_dir = dir ? strdup(dir) : NULL;
  g_max = max_bytes;
  g_keep = files;
  if (g_dir && mkdir(g_dir, 0750) < 0 && errno != EEXIST)
    log_msg(LOG_ERROR, "log.error", "cannot create log_dir %s: %s", g_dir, strerror(errno));
}

void logfile_reopen(void) {
  for (int i = 0; i < g_n; i++)
    if (g_files[i].fd >= 0) {
      close(g_files[i].fd);
      g_files[i].fd = -1;
    }
}

static void path_of(char *buf, size_t len, const char *label, int n) {
  if (n)
    snprintf(buf, len, "%s/%s.log.%d", g_dir, label, n);
  else
    snprintf(buf, len, "%s/%s.log", g_dir, label);
}

static int open_file(struct lf *f) {
  char p[4096];
  path_of(p, sizeof p, f->label, 0);
  f->fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  struct stat st;
  f->size = f->fd >= 0 && fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  if (f->fd < 0) log_msg(LOG_ERROR, "log.error", "cannot open %s: %s", p, strerror(errno));
  return f->fd;
}

static void rotate(struct lf *f) {
  close(f->fd);
  f->fd = -1;
  char from[4096], to[4096];
  if (g_keep == 0) {
    path_of(from, sizeof from, f->label, 0);
    if (truncate(from, 0) < 0) { /* reopened below; an error shows there */
    }
  }
  for (int n = g_keep; n >= 1; n--) {
    path_of(from, sizeof from, f->label, n - 1);
    path_of(to, sizeof to, f->label, n);
    rename(from, to); /* a missing file is fine */
  }
  open_file(f);
}

bool logfile_line(const char *label, const char *line, size_t len) {
  if (!g_dir) return false;
  struct lf *f = NULL;
  for (int i = 0; i < g_n && !f; i++)
    if (strcmp(g_files[i].label, label) == 0) f = &g_files[i];
  if (!f) {
    g_files = realloc(g_files, sizeof *g_files * (size_t)(g_n + 1));
    f = &g_files[g_n++];
    snprintf(f->label, sizeof f->label, "%s", label);
    f->fd = -1;
  }
  if (f->fd < 0 && open_file(f) < 0) return true;
  if (f->size > 0 && f->size + len + 1 > g_max) rotate(f);
  if (f->fd < 0) return true;
  char *b = malloc(len + 1);
  memcpy(b, line, len);
  b[len] = '\n';
  ssize_t w = write(f->fd, b, len + 1);
  free(b);
  if (w > 0) f->size += (uint64_t)w;
  return true;
}
