/*
 * gen.c: `gen`, a source of counted, sized, seeded records.
 *
 * Without --size each record is its decimal number ("0", "1", ...); with
 * --size N each is N bytes of letters: a 64 KiB pool drawn from a xorshift
 * stream seeded by --seed plus the replica index, rotated by a random
 * offset per record, so every run makes the same data. Records
 * larger than the channel's slot go zero-copy. At the end it prints what
 * it sent with an order-independent checksum (the sum of the records'
 * FNV-1a hashes), the same one `null` prints.
 *
 * --resume: a restarted gen continues after the records its predecessors
 * published on its output lanes (their sent counters; a send is committed
 * when published, and reclaim publishes what a dead sender stamped), so a
 * source killed at any moment sends each record once.
 */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { POOL = 1 << 16 };
static char pool[POOL]; /* seeded letters */

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t count = 1000, size = 0, seed = 1, rate = 0;
  bool resume = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--resume") == 0) {
      resume = true;
      continue;
    }
    uint64_t *dst = strcmp(a, "--count") == 0  ? &count
                    : strcmp(a, "--size") == 0 ? &size
                    : strcmp(a, "--seed") == 0 ? &seed
                    : strcmp(a, "--rate") == 0 ? &rate
                                               : NULL;
    if (!dst) stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
    const char *v = stage_optarg(ctx, argc, argv, &i);
    if (!stage_parse_u64(v, dst)) stage_die(ctx, EXIT_USAGE, "%s: \"%s\" is not a number", a, v);
  }
  if (size > (1ull << 30)) stage_die(ctx, EXIT_USAGE, "--size: at most 1GiB");
  stage_attach(ctx);
  char *buf = malloc(size > 32 ? size : 32);
  if (!buf) stage_die(ctx, EXIT_FAIL, "out of memory");
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + wr_worker_replica(ctx->w) + 1, sum = 0, bytes = 0;
  for (size_t k = 0; k < POOL; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    pool[k] = (char)('a' + x % 26);
  }
  uint64_t n = 0, skip = resume ? stage_lane_sum(ctx, WR_PRODUCER) : 0;
  for (; n < skip && n < count; n++) /* what the predecessors sent: the same draws */
    if (size) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  for (; n < count && !g_stop; n++) {
    size_t len = size;
    /* Large records are written straight into the heap block they travel in. */
    char *rec = size > ctx->slot_size ? stage_block(ctx, size) : buf;
    if (size == 0) {
      len = (size_t)snprintf(buf, 32, "%llu", (unsigned long long)n);
    } else {
      /* The pool of letters, rotated by a random offset: fast for large sizes. */
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      for (size_t k = 0, off = x % POOL; k < len;) {
        size_t m = len - k < POOL - off ? len - k : POOL - off;
        memcpy(rec + k, pool + off, m);
        k += m;
        off = 0;
      }
    }
    uint64_t h = stage_hash(rec, len);
    if (rec != buf ? stage_emit_block(ctx, rec, len, h) : stage_emit(ctx, rec, len, h)) break;
    sum += h;
    bytes += len;
    if (rate) { /* a steady trickle, for demos that run until stopped */
      struct timespec ts = {0, (long)(1000000000 / (rate < 1000000000 ? rate : 1000000000))};
      nanosleep(&ts, NULL); /* SIGTERM cuts it short */
    }
  }
  printf("gen: %llu records, %llu bytes, checksum %016llx\n", (unsigned long long)ctx->nout,
         (unsigned long long)bytes, (unsigned long long)sum);
  free(buf);
  return stage_finish(ctx);
}

const struct stage stage_gen = {
    "gen", "source: COUNT generated records (numbers, or seeded SIZE-byte strings)",
    "[--count N] [--size BYTES] [--seed S] [--rate N]\n"
    "\n"
    "  --count N      records to send (default 1000); each replica sends N\n"
    "  --size BYTES   record size (default: the record's number in decimal); units\n"
    "                 k, M, KiB, MiB...; larger than the slot size = zero-copy\n"
    "  --seed S       seed of the letters (default 1; replica r uses S + r)\n"
    "  --rate N       at most about N records a second (default: as fast as possible)\n"
    "  --resume       after a restart, continue after what was already sent\n"
    "\nAt the end prints \"gen: N records, B bytes, checksum X\" (as `null` does).",
    STAGE_OUT, run};
