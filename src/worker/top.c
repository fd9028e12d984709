/*
 * top.c: `top`, a sink printing the N most frequent keys.
 *
 * Input records are "KEY<TAB>COUNT" (what count sends; tables of several
 * count replicas are summed) or plain keys (each counts 1). At end of
 * stream it prints "COUNT KEY" lines (uniq -c style, most frequent first,
 * ties by key in byte order) on stdout or into --out FILE.
 *
 * Crash-safe as count is (count.c, state.c): the merged table lives in the
 * arena, each input record applied once, so a top killed at any moment
 * prints the same table. --out FILE is rewritten whole by whichever
 * incarnation prints; one killed while printing on stdout prints again
 * (those lines may come twice in the log). A restart that finds no table
 * although its input lanes released records knows its predecessor printed
 * and freed it: it prints nothing and leaves FILE alone.
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t top = 10, key_max = 0;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--out") == 0) {
      out = stage_optarg(ctx, argc, argv, &i);
    } else if (strcmp(a, "-n") == 0 || strcmp(a, "--top") == 0) {
      const char *v = stage_optarg(ctx, argc, argv, &i);
      if (!stage_parse_u64(v, &top)) stage_die(ctx, EXIT_USAGE, "%s: \"%s\" is not a number", a, v);
    } else if (strcmp(a, "--key-max") == 0) {
      const char *v = stage_optarg(ctx, argc, argv, &i);
      if (!stage_parse_u64(v, &key_max) || key_max == 0 || key_max > (1u << 20))
        stage_die(ctx, EXIT_USAGE, "--key-max: \"%s\" is not a size from 1 to 1MiB", v);
    } else {
      stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
    }
  }
  /* Opened (not truncated) before attaching, so an unwritable path fails at start. */
  int fd = out ? open(out, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
  if (out && fd < 0) stage_die(ctx, EXIT_FAIL, "%s: %s", out, strerror(errno));
  stage_attach(ctx);
  struct ktable kt;
  if (!ktable_open(ctx, &kt, (uint32_t)key_max) && stage_lane_sum(ctx, WR_CONSUMER) > 0) {
    if (fd >= 0) close(fd);
    return stage_finish(ctx); /* a predecessor printed the table (see above) */
  }
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    const char *d = rec.data, *tab = NULL;
    uint64_t n = 1;
    size_t len = rec.len;
    for (size_t k = len; k-- > 0 && d[k] >= '0' && d[k] <= '9';)
      if (k > 0 && d[k - 1] == '\t') tab = d + k - 1;
    if (tab) {
      n = 0; /* the digits up to the record's end (a record is not NUL-terminated) */
      for (const char *c = tab + 1; c < d + len; c++)
        n = n * 10 + (uint64_t)(*c - '0');
      len = (size_t)(tab - d);
    }
    ktable_add(ctx, &kt, d, len, n, &rec);
    stage_done(ctx, &rec);
  }
  struct table t = {0};
  ktable_read(ctx, &kt, &t);
  size_t keys = t.used;
  struct tent *v = table_sorted(&t);
  uint64_t total = 0;
  for (size_t i = 0; i < keys; i++)
    total += v[i].n;
  FILE *f = stdout;
  if (fd >= 0 && (ftruncate(fd, 0) || !(f = fdopen(fd, "we"))))
    stage_die(ctx, EXIT_FAIL, "%s: %s", out, strerror(errno));
  size_t show = top == 0 || top > keys ? keys : (size_t)top;
  fprintf(f, "top %zu of %zu keys (%llu in all):\n", show, keys, (unsigned long long)total);
  for (size_t i = 0; i < show; i++)
    fprintf(f, "%7llu %.*s\n", (unsigned long long)v[i].n, (int)v[i].len, v[i].key);
  if (f != stdout && fclose(f)) stage_die(ctx, EXIT_FAIL, "%s: %s", out, strerror(errno));
  table_free(&t);
  return stage_finish(ctx);
}

const struct stage stage_top = {
    "top", "sink: the N most frequent keys (merges count tables)",
    "[-n N] [--out FILE] [--key-max N]\n"
    "\n"
    "  -n, --top N  how many keys to print (default 10; 0 = all)\n"
    "  --out FILE   write there instead of standard output (the log)\n"
    "  --key-max N  longest key (default: the input channel's slot size)\n"
    "\nInput: \"KEY<TAB>COUNT\" records (from count; summed per key) or plain keys\n"
    "(each counts 1). Output: a header line, then \"COUNT KEY\" lines, most\n"
    "frequent first, ties in byte order of the key. The merged table lives in the\n"
    "arena: a top killed at any moment prints the same table.",
    STAGE_IN, run};
