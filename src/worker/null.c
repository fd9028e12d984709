/*
 * null.c: `null`, a sink that only counts: records, bytes and a checksum.
 *
 * The checksum is the sum of each record's FNV-1a hash, so it does not
 * depend on the order in which replicas and lanes deliver; `gen` prints
 * the same sum for what it sent.
 */
#include "stage.h"

#include <stdio.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!stage_common_opt(ctx, argc, argv, &i))
      stage_die(ctx, EXIT_USAGE, "unknown option %s", argv[i]);
  stage_attach(ctx);
  uint64_t bytes = 0, sum = 0, blocks = 0;
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    bytes += rec.len;
    sum += stage_hash(rec.data, rec.len);
    blocks += (rec.flags & WR_REC_BLOCK) != 0;
    stage_done(ctx, &rec);
  }
  printf("null: %llu records, %llu bytes, checksum %016llx (%llu zero-copy)\n",
         (unsigned long long)ctx->nin, (unsigned long long)bytes, (unsigned long long)sum,
         (unsigned long long)blocks);
  return stage_finish(ctx);
}

const struct stage stage_null = {
    "null", "sink: counts records and bytes, prints a checksum",
    "\n\nAt the end prints \"null: N records, B bytes, checksum X (Z zero-copy)\";\n"
    "the checksum ignores order and equals the one `gen` prints for the same data.",
    STAGE_IN, run};
