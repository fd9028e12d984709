/*
 * count.c: `count`, a key -> count table sent at end of stream.
 *
 * Each input record is a key; at end of stream (or on SIGTERM) the table
 * goes out sorted by count, one "KEY<TAB>COUNT" record per key, or, with no
 * output channel, is printed as "COUNT KEY" lines. With replicas behind a
 * keyed channel (map hash-key), each key reaches one replica and a `top`
 * stage merges their tables. The table lives in this process: a count that
 * crashes restarts from zero (the records it had counted were released).
 */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!stage_common_opt(ctx, argc, argv, &i))
      stage_die(ctx, EXIT_USAGE, "unknown option %s", argv[i]);
  stage_attach(ctx);
  struct table t = {0};
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    table_add(&t, rec.data, rec.len, 1);
    stage_done(ctx, &rec);
  }
  size_t n = t.used;
  struct tent *v = table_sorted(&t);
  char *line = NULL;
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ctx->out) {
      printf("%7llu %.*s\n", (unsigned long long)v[i].n, (int)v[i].len, v[i].key);
      continue;
    }
    if (v[i].len + 32 > cap && !(line = realloc(line, cap = v[i].len + 64)))
      stage_die(ctx, EXIT_FAIL, "out of memory");
    memcpy(line, v[i].key, v[i].len);
    int m = snprintf(line + v[i].len, 32, "\t%llu", (unsigned long long)v[i].n);
    if (stage_emit(ctx, line, v[i].len + (size_t)m, v[i].hash)) break;
  }
  free(line);
  table_free(&t);
  return stage_finish(ctx);
}

const struct stage stage_count = {
    "count", "key -> count table, sent (or printed) at end of stream",
    "\n"
    "Counts equal records. At end of stream sends one \"KEY<TAB>COUNT\" record per\n"
    "key, most frequent first, or prints \"COUNT KEY\" lines when the worker has no\n"
    "output channel. Replicas behind a keyed channel (map hash-key) split the keys;\n"
    "a `top` stage merges their tables.",
    STAGE_IN | STAGE_OUT_OPTIONAL, run};
