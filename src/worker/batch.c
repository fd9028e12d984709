/*
 * batch.c: `batch`, N records joined into one (with a separator).
 *
 * Input records stay unreleased until the batch that holds them was sent,
 * so a crash redelivers them (at least once). While a batch is incomplete
 * and the input is idle for --flush-ms, the partial batch goes out: that
 * also keeps a batch larger than the input lane's capacity from waiting
 * for records its own unreleased ones block.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  uint64_t size = 100, flush_ms = 100;
  const char *sep = "\n";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (stage_common_opt(ctx, argc, argv, &i)) continue;
    if (strcmp(a, "--sep") == 0) {
      sep = stage_optarg(ctx, argc, argv, &i);
      continue;
    }
    uint64_t *dst = strcmp(a, "--size") == 0       ? &size
                    : strcmp(a, "--flush-ms") == 0 ? &flush_ms
                                                   : NULL;
    if (!dst) stage_die(ctx, EXIT_USAGE, "unknown option %s", a);
    const char *v = stage_optarg(ctx, argc, argv, &i);
    if (!stage_parse_u64(v, dst) || *dst == 0)
      stage_die(ctx, EXIT_USAGE, "%s: \"%s\" is not a positive number", a, v);
  }
  stage_attach(ctx);
  size_t seplen = strlen(sep), cap = 65536, len = 0, nlast = 0;
  char *buf = malloc(cap);
  wr_rec *last = NULL; /* the last record peeked per input lane, to release */
  uint64_t n = 0;
  bool eof = false;
  while (!eof) {
    wr_rec rec;
    int rc = wr_chan_peek(ctx->in, &rec, n ? (int64_t)flush_ms * 1000000 : -1);
    if (rc == -WR_EOF || (rc == -WR_EINTR && g_stop))
      eof = true;
    else if (rc == -WR_EINTR)
      continue;
    else if (rc < 0 && rc != -WR_ETIMEDOUT)
      stage_die(ctx, EXIT_FAIL, "receive: %s", wr_strerror(rc));
    if (rc == 0) {
      size_t need = len + seplen + rec.len;
      if (need > cap && !(buf = realloc(buf, cap = need * 2)))
        stage_die(ctx, EXIT_FAIL, "out of memory");
      if (n++) memcpy(buf + len, sep, seplen), len += seplen;
      memcpy(buf + len, rec.data, rec.len);
      len += rec.len;
      if (rec.lane >= nlast) {
        last = realloc(last, sizeof *last * (rec.lane + 1));
        for (size_t k = nlast; k <= rec.lane; k++)
          last[k].data = NULL;
        nlast = rec.lane + 1;
      }
      last[rec.lane] = rec;
      ctx->nin++;
      if (n < size) continue;
    }
    if (n == 0) continue;
    if (stage_emit(ctx, buf, len, 0)) break; /* stopping: the records are redelivered */
    for (size_t k = 0; k < nlast; k++)
      if (last[k].data) {
        if (wr_chan_release(ctx->in, &last[k])) stage_die(ctx, EXIT_FAIL, "release failed");
        last[k].data = NULL;
      }
    n = len = 0;
  }
  free(buf);
  free(last);
  return stage_finish(ctx);
}

const struct stage stage_batch = {
    "batch", "N records joined into one record (separator, partial flush when idle)",
    "[--size N] [--sep STR] [--flush-ms MS]\n"
    "\n"
    "  --size N       records per batch (default 100)\n"
    "  --sep STR      separator between them (default a newline)\n"
    "  --flush-ms MS  send a partial batch when no record came for MS ms (default 100)",
    STAGE_IN | STAGE_OUT, run};
