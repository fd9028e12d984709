/*
 * map.c: `map OP...`, small builtin transforms applied in order.
 *
 * Each op turns one record into zero or more records (split-words makes
 * one per word); the next op applies to each of them. An op is a row of
 * the table below; adding one is adding a row and a function.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

struct op {
  const char *name;
  /* Transform in[0..len) into out (room for len bytes), returning the
   * output length; NULL for splitters and hash-key (see apply). */
  size_t (*fn)(const char *in, size_t len, char *out);
  int split; /* 1: runs of letters; 2: white-space-separated fields */
};

static size_t op_upper(const char *in, size_t len, char *out) {
  for (size_t i = 0; i < len; i++)
    out[i] = in[i] >= 'a' && in[i] <= 'z' ? (char)(in[i] - 32) : in[i];
  return len;
}
static size_t op_lower(const char *in, size_t len, char *out) {
  for (size_t i = 0; i < len; i++)
    out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] + 32) : in[i];
  return len;
}
static size_t op_reverse(const char *in, size_t len, char *out) {
  for (size_t i = 0; i < len; i++)
    out[i] = in[len - 1 - i];
  return len;
}
static size_t op_trim(const char *in, size_t len, char *out) {
  size_t a = 0, b = len;
  while (a < b && strchr(" \t\r\n\v\f", in[a]) && in[a])
    a++;
  while (b > a && strchr(" \t\r\n\v\f", in[b - 1]) && in[b - 1])
    b--;
  memcpy(out, in + a, b - a);
  return b - a;
}

static const struct op ops[] = {{"upper", op_upper, 0},     {"lower", op_lower, 0},
                                {"reverse", op_reverse, 0}, {"trim", op_trim, 0},
                                {"split-words", NULL, 1},   {"split-ws", NULL, 2},
                                {"hash-key", NULL, 0},      {NULL, NULL, 0}};

static const struct op *chain[32];
static int nchain;
static char *scratch[32];
static size_t scratch_cap[32];

static int is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v'; }

/* Apply chain[i..] to one record; 1 when stopping. */
static int apply(struct stage_ctx *ctx, int i, const char *d, size_t len, uint64_t key) {
  if (i == nchain) return stage_emit(ctx, d, len, key);
  const struct op *op = chain[i];
  if (op->split) {
    int (*in)(char) = op->split == 1 ? is_word : NULL;
    size_t k = 0;
    while (k < len) {
      while (k < len && (in ? !in(d[k]) : is_ws(d[k])))
        k++;
      size_t s = k;
      while (k < len && (in ? in(d[k]) : !is_ws(d[k])))
        k++;
      if (k > s && apply(ctx, i + 1, d + s, k - s, key)) return 1;
    }
    return 0;
  }
  if (!op->fn) return apply(ctx, i + 1, d, len, stage_hash(d, len)); /* hash-key */
  if (len > scratch_cap[i]) {
    free(scratch[i]);
    scratch_cap[i] = len * 2;
    if (!(scratch[i] = malloc(scratch_cap[i]))) stage_die(ctx, EXIT_FAIL, "out of memory");
  }
  size_t n = op->fn(d, len, scratch[i]);
  return apply(ctx, i + 1, scratch[i], n, key);
}

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    const struct op *op = ops;
    while (op->name && strcmp(op->name, argv[i]) != 0)
      op++;
    if (!op->name) stage_die(ctx, EXIT_USAGE, "unknown op \"%s\"", argv[i]);
    if (nchain == 32) stage_die(ctx, EXIT_USAGE, "at most 32 ops");
    chain[nchain++] = op;
  }
  if (nchain == 0) stage_die(ctx, EXIT_USAGE, "no op given");
  stage_attach(ctx);
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    if (apply(ctx, 0, rec.data, rec.len, rec.key)) break; /* stopping: rec is redelivered */
    stage_done(ctx, &rec);
  }
  for (int i = 0; i < nchain; i++)
    free(scratch[i]);
  return stage_finish(ctx);
}

const struct stage stage_map = {
    "map", "builtin transforms: upper, lower, reverse, trim, split-words, split-ws, hash-key",
    "OP [OP...]\n"
    "\n"
    "Applies each OP in order to every record (a splitting op's pieces each go\n"
    "through the rest). Ops:\n"
    "  upper        ASCII letters to upper case\n"
    "  lower        ASCII letters to lower case\n"
    "  reverse      reverse the bytes of the record\n"
    "  trim         remove leading and trailing white space\n"
    "  split-words  one record per word (a maximal run of ASCII letters A-Z a-z)\n"
    "  split-ws     one record per white-space-separated field\n"
    "  hash-key     set the record's key to a hash of its bytes: a keyed channel\n"
    "               then sends equal records to the same consumer replica\n"
    "Example: map split-words lower hash-key",
    STAGE_IN | STAGE_OUT | STAGE_ONCE, run};
