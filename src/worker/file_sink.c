/*
 * file-sink.c: `file-sink`, a sink writing records to a file.
 *
 * One record per line by default, or the raw bytes back to back (--raw:
 * fixed-size records written by file-source --record-size come out as the
 * original file). "%r" in the path becomes the replica index, so replicas
 * write their own files. The file is flushed and closed at end of stream
 * and on SIGTERM.
 */
#include "stage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  const char *path = NULL;
  bool raw = false, append = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--path") == 0)
      path = stage_optarg(ctx, argc, argv, &i);
    else if (strcmp(a, "--raw") == 0)
      raw = true;
    else if (strcmp(a, "--append") == 0)
      append = true;
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
  FILE *f = fopen(name, append ? "ae" : "we");
  if (!f) stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    if (fwrite(rec.data, 1, rec.len, f) != rec.len || (!raw && fputc('\n', f) == EOF))
      stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
    stage_done(ctx, &rec);
  }
  if (fclose(f)) stage_die(ctx, EXIT_FAIL, "%s: %s", name, strerror(errno));
  return stage_finish(ctx);
}

const struct stage stage_file_sink = {
    "file-sink", "sink: records into a file, one a line (or raw bytes)",
    "[--raw] [--append] [--path] FILE\n"
    "\n"
    "  FILE, --path FILE  where to write; \"%r\" becomes the replica index\n"
    "  --raw              no newline after each record (binary records)\n"
    "  --append           append instead of truncating",
    STAGE_IN, run};
