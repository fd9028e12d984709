/*
 * stdin.c: `stdin`, a source reading the run's standard input, by line or
 * fixed-size record.
 *
 * `warren run` gives its workers /dev/null as standard input, so that a
 * replica never steals another's bytes. This stage reads the supervisor's
 * own standard input instead (/proc/PPID/fd/0, the same file or pipe), so
 * `producer | warren run stdin.json` works; when this process's own stdin
 * is not a character device (started by hand with input), it reads that.
 * Use one replica: bytes of a pipe cannot be split by line between readers.
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t recsize = 0, max_line = 64ull << 20;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--record-size") != 0 && strcmp(a, "--max-line") != 0)
      stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
    const char *v = stage_optarg(ctx, argc, argv, &i);
    uint64_t *dst = a[2] == 'r' ? &recsize : &max_line;
    if (!stage_parse_u64(v, dst) || *dst == 0 || *dst > (1ull << 30))
      stage_die(ctx, EXIT_USAGE, "%s: \"%s\" is not a size from 1 to 1GiB", a, v);
  }
  const char *reps = getenv("WARREN_REPLICAS");
  if (reps && strcmp(reps, "1") != 0)
    stage_die(ctx, EXIT_FAIL, "one replica only: %s readers of one stream would split its lines",
              reps);
  int fd = STDIN_FILENO;
  struct stat st;
  if (fstat(fd, &st) != 0 || S_ISCHR(st.st_mode)) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/fd/0", (int)getppid());
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      stage_die(ctx, EXIT_FAIL, "cannot read the run's standard input (%s): %s", p,
                strerror(errno));
  }
  FILE *f = fdopen(fd, "r");
  if (!f) stage_die(ctx, EXIT_FAIL, "standard input: %s", strerror(errno));
  stage_attach(ctx);
  stage_send_stream(ctx, f, "standard input", recsize, max_line);
  fclose(f);
  return stage_finish(ctx);
}

const struct stage stage_stdin = {
    "stdin", "source: the lines (or fixed-size records) of the run's standard input",
    "[--record-size BYTES] [--max-line BYTES]\n"
    "\n"
    "  --record-size N   send fixed N-byte records instead of lines\n"
    "  --max-line N      longest line accepted (default 64MiB)\n"
    "\nReads what `warren run` itself reads: `producer | warren run CONFIG`.",
    STAGE_OUT, run};
