/*
 * file-sink.c: `file-sink`, a sink writing records to a file.
 *
 * One record per line by default, or the raw bytes back to back (--raw:
 * fixed-size records written by file-source --record-size come out as the
 * original file). "%r" in the path becomes the replica index, so replicas
 * write their own files. The file is flushed and closed at end of stream
 * and on SIGTERM.
 *
 * --exactly-once keeps a commit record beside the file (FILE.commit): the
 * file's committed length and, for each input lane, the sequence number
 * after the last record written. Each record is written, then the commit
 * record (one pwrite of the whole record, so a kill never tears it), then
 * released. A restarted sink truncates the file to its committed length
 * (a record written but not committed is gone, and comes again) and skips
 * redelivered records the commit record already holds (written and
 * committed, not released). So after any kill the file holds each record
 * the sink received exactly once. (Duplicates made upstream, by a stage
 * killed between its send and its release, are other records to the sink.)
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* FILE.commit: the whole record is rewritten with one pwrite of one page
 * at offset 0 (a fatal signal can cut a write between pages, never inside
 * one); the checksum catches anything else. */
#define COMMIT_LANES 508
struct commit {
  uint64_t magic, length;
  uint64_t next[COMMIT_LANES]; /* per input lane (wr_rec.lane): seq after the last written */
  uint64_t sum;
};
_Static_assert(sizeof(struct commit) <= 4096, "the commit record fits one page");

static uint64_t commit_sum(const struct commit *c) {
  return stage_hash(c, offsetof(struct commit, sum));
}
#define COMMIT_MAGIC 0x54494d4d4f435257ull /* "WRCOMMIT" */

/* Open (or create) the commit record; truncate the file to its committed
 * length. Returns its fd. */
static int commit_open(struct stage_ctx *ctx, FILE *f, const char *name, bool append,
                       struct commit *c) {
  char path[4200];
  snprintf(path, sizeof path, "%s.commit", name);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) stage_die(ctx, EXIT_FAIL, "%s: %s", path, strerror(errno));
  memset(c, 0, sizeof *c);
  ssize_t got = pread(fd, c, sizeof *c, 0);
  if (got > 0 && (got != (ssize_t)sizeof *c || c->sum != commit_sum(c)))
    stage_die(ctx, EXIT_FAIL, "%s: a damaged commit record", path);
  if (got <= 0 || c->magic != COMMIT_MAGIC) {
    memset(c, 0, sizeof *c); /* a first run: start from the file as opened */
    c->magic = COMMIT_MAGIC;
    fseek(f, 0, SEEK_END);
    c->length = append ? (uint64_t)ftell(f) : 0;
  }
  if (ftruncate(fileno(f), (off_t)c->length) || fseek(f, (long)c->length, SEEK_SET))
    stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
  c->sum = commit_sum(c);
  if (pwrite(fd, c, sizeof *c, 0) != (ssize_t)sizeof *c)
    stage_die(ctx, EXIT_FAIL, "%s: %s", path, strerror(errno));
  return fd;
}

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  const char *path = NULL;
  bool raw = false, append = false, once = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--path") == 0)
      path = stage_optarg(ctx, argc, argv, &i);
    else if (strcmp(a, "--raw") == 0)
      raw = true;
    else if (strcmp(a, "--append") == 0)
      append = true;
    else if (strcmp(a, "--exactly-once") == 0)
      once = true;
    else if (a[0] != '-' && !path)
      path = a;
    else
      stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
  }
  if (!path) stage_die(ctx, EXIT_USAGE, "no file given (--path FILE)");
  stage_attach(ctx);
  char name[4096];
  const char *r = strstr(path, "%r");
  if (r)
    snprintf(name, sizeof name, "%.*s%u%s", (int)(r - path), path, wr_worker_replica(ctx->w),
             r + 2);
  else
    snprintf(name, sizeof name, "%s", path);
  /* exactly-once: read-write without truncation; the commit record decides */
  FILE *f = once ? fopen(name, "a+e") : fopen(name, append ? "ae" : "we");
  if (!f) stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
  static struct commit c;
  int cfd = once ? commit_open(ctx, f, name, append, &c) : -1;
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    if (once && rec.lane < COMMIT_LANES && rec.seq < c.next[rec.lane]) {
      stage_done(ctx, &rec); /* written and committed by a predecessor */
      continue;
    }
    if (fwrite(rec.data, 1, rec.len, f) != rec.len || (!raw && fputc('\n', f) == EOF))
      stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
    if (once) {
      if (fflush(f)) stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
      c.length += rec.len + !raw;
      if (rec.lane < COMMIT_LANES) c.next[rec.lane] = rec.seq + 1;
      c.sum = commit_sum(&c);
      if (pwrite(cfd, &c, sizeof c, 0) != (ssize_t)sizeof c)
        stage_die(ctx, EXIT_FAIL, "%s.commit: %s", name, strerror(errno));
    }
    stage_done(ctx, &rec);
  }
  if (cfd >= 0) close(cfd);
  if (fclose(f)) stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
  return stage_finish(ctx);
}

const struct stage stage_file_sink = {
    "file-sink", "sink: records into a file, one a line (or raw bytes)",
    "[--raw] [--append] [--path] FILE\n"
    "\n"
    "  FILE, --path FILE  where to write; \"%r\" becomes the replica index\n"
    "  --raw              no newline after each record (binary records)\n"
    "  --append           append instead of truncating\n"
    "  --exactly-once     each received record in FILE exactly once, whatever kills\n"
    "                     the sink (a commit record in FILE.commit)",
    STAGE_IN, run};
