/*
 * count.c: `count`, a key -> count table sent at end of stream.
 *
 * Each input record is a key; at end of stream (or on SIGTERM) the table
 * goes out sorted by count, one "KEY<TAB>COUNT" record per key, or, with no
 * output channel, is printed as "COUNT KEY" lines. With replicas behind a
 * keyed channel (map hash-key), each key reaches one replica and a `top`
 * stage merges their tables.
 *
 * Crash-safe, exactly once: the table lives in the arena (state.c: one
 * wr_map per replica, each record applied once however often it comes), so
 * a count killed at any moment restarts where it stopped, counting nothing
 * twice and losing nothing. Sorting makes the final table one fixed
 * sequence, so a count killed while sending it resumes after what its
 * predecessor published (STAGE_RESUME). stage_finish frees the table only
 * after closing the output; a restart that finds no table although its
 * input lanes released records knows its predecessor finished, and ends
 * without sending (or printing) anything again.
 */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t key_max = 0;
  for (int i = 1; i < argc; i++) {
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(argv[i], "--key-max") == 0) {
      const char *v = stage_optarg(ctx, argc, argv, &i);
      if (!stage_parse_u64(v, &key_max) || key_max == 0 || key_max > (1u << 20))
        stage_die(ctx, EXIT_USAGE, "--key-max: \"%s\" is not a size from 1 to 1MiB", v);
    } else {
      stage_die(ctx, EXIT_USAGE, "unknown option %s", argv[i]);
    }
  }
  stage_attach(ctx);
  struct ktable kt;
  if (!ktable_open(ctx, &kt, (uint32_t)key_max) && stage_lane_sum(ctx, WR_CONSUMER) > 0)
    return stage_finish(ctx); /* a predecessor sent the whole table (see above) */
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    ktable_add(ctx, &kt, rec.data, rec.len, 1, &rec);
    stage_done(ctx, &rec);
  }
  struct table t = {0};
  ktable_read(ctx, &kt, &t);
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
    "[--key-max N]\n"
    "\n"
    "Counts equal records. At end of stream sends one \"KEY<TAB>COUNT\" record per\n"
    "key, most frequent first, or prints \"COUNT KEY\" lines when the worker has no\n"
    "output channel. Replicas behind a keyed channel (map hash-key) split the keys;\n"
    "a `top` stage merges their tables.\n"
    "\n"
    "  --key-max N  longest key (default: the input channel's slot size)\n"
    "\nThe table lives in the arena: a count killed at any moment restarts where it\n"
    "stopped, each record counted once.",
    STAGE_IN | STAGE_OUT_OPTIONAL | STAGE_RESUME, run};
