/*
 * stdout.c: `stdout`, a sink printing each record as a line on standard
 * output, which `warren run` logs as "WORKER | line".
 */
#include "stage.h"

#include <stdio.h>
#include <string.h>

static int run(struct stage_ctx *ctx, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!stage_common_opt(ctx, argc, argv, &i))
      stage_die(ctx, EXIT_USAGE, "unknown option %s", argv[i]);
  stage_attach(ctx);
  setvbuf(stdout, NULL, _IOFBF, 1 << 16); /* the pipe to the log: whole lines anyway */
  wr_rec rec;
  while (stage_next(ctx, &rec) == 0) {
    fwrite(rec.data, 1, rec.len, stdout);
    putchar('\n');
    stage_done(ctx, &rec);
  }
  return stage_finish(ctx);
}

const struct stage stage_stdout = {
    "stdout", "sink: each record as a line on standard output (the run's log)",
    "\n\nPrints each record and a newline; `warren run` shows it as \"WORKER | record\".", STAGE_IN,
    run};
