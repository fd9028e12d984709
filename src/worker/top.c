/*
 * top.c: `top`, a sink printing the N most frequent keys.
 *
 * Input records are "KEY<TAB>COUNT" (what count sends; tables of several
 * count replicas are summed) or plain keys (each counts 1). At end of
 * stream it prints "COUNT KEY" lines (uniq -c style, most frequent first,
 * ties by key in byte order) on stdout or into --out FILE.
 */
#include "stage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t top = 10;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--out") == 0) {
      out = stage_optarg(ctx, argc, argv, &i);
    } else if (strcmp(a, "-n") == 0 || strcmp(a, "--top") == 0) {
      const char *v = stage_optarg(ctx, argc, argv, &i);
      if (!stage_parse_u64(v, &top)) stage_die(ctx, EXIT_USAGE, "%s: \"%s\" is not a number", a, v);
    } else {
      stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
    }
  }
  FILE *f = stdout;
  if (out && !(f = fopen(out, "we"))) stage_die(ctx, EXIT_FAIL, "%s: %s", out, strerror(errno));
  stage_attach(ctx);
  struct table t = {0};
  uint64_t total = 0;
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
    table_add(&t, d, len, n);
    total += n;
    stage_done(ctx, &rec);
  }
  size_t keys = t.used;
  struct tent *v = table_sorted(&t);
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
    "[-n N] [--out FILE]\n"
    "\n"
    "  -n, --top N  how many keys to print (default 10; 0 = all)\n"
    "  --out FILE   write there instead of standard output (the log)\n"
    "\nInput: \"KEY<TAB>COUNT\" records (from count; summed per key) or plain keys\n"
    "(each counts 1). Output: a header line, then \"COUNT KEY\" lines, most\n"
    "frequent first, ties in byte order of the key.",
    STAGE_IN, run};
