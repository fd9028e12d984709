/*
 * file-source.c: `file-source`, a source reading files, by line or by
 * fixed-size record.
 *
 * Paths may be glob patterns; every path is expanded and checked before
 * the stage announces readiness, so a missing file is a clear error at
 * start, never a silent empty stream. With replicas, file i of the sorted
 * list goes to replica i % replicas. Lines are sent without their newline;
 * a line larger than the channel's slot goes zero-copy, one larger than
 * --max-line is an error. Bytes are bytes: NULs and invalid UTF-8 pass.
 */
#include "stage.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Send every line (or record) of f (stage.h). */
int stage_send_stream(struct stage_ctx *ctx, FILE *f, const char *path, uint64_t recsize,
                      uint64_t max_line) {
  char *buf = NULL;
  size_t cap = 0;
  int stop = 0;
  if (recsize) {
    buf = malloc(recsize);
    if (!buf) stage_die(ctx, EXIT_FAIL, "out of memory");
    size_t n;
    while (!stop && !g_stop && (n = fread(buf, 1, recsize, f)) > 0)
      stop = stage_emit(ctx, buf, n, stage_hash(buf, n));
  } else {
    ssize_t n;
    while (!stop && !g_stop && (n = getline(&buf, &cap, f)) > 0) {
      size_t len = (size_t)n - (buf[n - 1] == '\n');
      if (len > max_line)
        stage_die(ctx, EXIT_FAIL, "%s: a line of %zu bytes is longer than --max-line %llu", path,
                  len, (unsigned long long)max_line);
      stop = stage_emit(ctx, buf, len, stage_hash(buf, len));
    }
  }
  if (ferror(f)) stage_die(ctx, EXIT_FAIL, "%s: %s", path, strerror(errno));
  free(buf);
  return stop || g_stop;
}

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t recsize = 0, max_line = 64ull << 20;
  glob_t g = {0};
  int flags = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *pat = NULL;
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--record-size") == 0 || strcmp(a, "--max-line") == 0) {
      const char *v = stage_optarg(ctx, argc, argv, &i);
      uint64_t *dst = a[2] == 'r' ? &recsize : &max_line;
      if (!stage_parse_u64(v, dst) || *dst == 0 || *dst > (1ull << 30))
        stage_die(ctx, EXIT_USAGE, "%s: \"%s\" is not a size from 1 to 1GiB", a, v);
      continue;
    }
    if (strcmp(a, "--path") == 0)
      pat = stage_optarg(ctx, argc, argv, &i);
    else if (a[0] == '-' && a[1])
      stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
    else
      pat = a;
    size_t before = g.gl_pathc;
    int rc = glob(pat, flags | GLOB_BRACE | GLOB_TILDE, NULL, &g);
    flags = GLOB_APPEND;
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == before))
      stage_die(ctx, EXIT_FAIL, "%s: %s", pat,
                strpbrk(pat, "*?[{") ? "no file matches" : "No such file or directory");
    if (rc) stage_die(ctx, EXIT_FAIL, "%s: cannot expand the pattern", pat);
  }
  if (g.gl_pathc == 0) stage_die(ctx, EXIT_USAGE, "no file given (--path FILE or a pattern)");
  for (size_t k = 0; k < g.gl_pathc; k++) {
    struct stat st;
    if (stat(g.gl_pathv[k], &st) != 0)
      stage_die(ctx, EXIT_FAIL, "%s: %s", g.gl_pathv[k], strerror(errno));
    if (S_ISDIR(st.st_mode)) stage_die(ctx, EXIT_FAIL, "%s: is a directory", g.gl_pathv[k]);
  }
  stage_attach(ctx);
  const char *reps = getenv("WARREN_REPLICAS");
  uint32_t nrep = reps ? (uint32_t)strtoul(reps, NULL, 10) : 1, me = wr_worker_replica(ctx->w);
  if (nrep == 0) nrep = 1;
  for (size_t k = 0; k < g.gl_pathc; k++) {
    if (k % nrep != me) continue;
    FILE *f = fopen(g.gl_pathv[k], "re");
    if (!f) stage_die(ctx, EXIT_FAIL, "%s: %s", g.gl_pathv[k], strerror(errno));
    int stop = stage_send_stream(ctx, f, g.gl_pathv[k], recsize, max_line);
    fclose(f);
    if (stop) break;
  }
  globfree(&g);
  return stage_finish(ctx);
}

const struct stage stage_file_source = {
    "file-source", "source: the lines (or fixed-size records) of files; globs, many files",
    "[--record-size BYTES] [--max-line BYTES] [--path] PATH|PATTERN...\n"
    "\n"
    "  PATH, --path PATH   a file or a glob pattern (\"/usr/share/common-licenses/*\");\n"
    "                      several allowed; each must match at least one file\n"
    "  --record-size N     send fixed N-byte records (the last may be shorter)\n"
    "                      instead of lines\n"
    "  --max-line N        longest line accepted (default 64MiB): longer is an error\n"
    "\nLines are sent without their newline. Replicas split the files between them.",
    STAGE_OUT | STAGE_RESUME, run};
