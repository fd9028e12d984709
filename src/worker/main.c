/*
 * main.c: `warren-worker STAGE [OPTIONS]`, the stock stages of a pipeline.
 *
 * One file a stage (stage.h describes what they share); this file only
 * dispatches on the first argument and prints the overall help.
 */
#include "stage.h"

#include <stdio.h>
#include <string.h>

static const struct stage *const stages[] = {
    &stage_gen,   &stage_file_source, &stage_stdin,     &stage_exec,   &stage_map,  &stage_batch,
    &stage_count, &stage_top,         &stage_file_sink, &stage_stdout, &stage_null, NULL};

static int usage(FILE *f, int code) {
  fprintf(f, "usage: warren-worker STAGE [OPTIONS]   (warren-worker STAGE --help)\n"
             "\n"
             "A stock pipeline stage, started by `warren run CONFIG`: it reads records from\n"
             "the worker's first input channel and/or writes to its first output channel.\n"
             "\n"
             "stages:\n");
  for (int i = 0; stages[i]; i++)
    fprintf(f, "  %-12s %s\n", stages[i]->name, stages[i]->summary);
  fprintf(f, "\nexit codes: 0 done (end of stream or SIGTERM), 1 runtime error, 2 usage\n");
  return code;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(stderr, EXIT_USAGE);
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return usage(stdout, 0);
  if (strcmp(argv[1], "--version") == 0) {
    printf("warren-worker (libwarren %s)\n", wr_version());
    return 0;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 0; stages[i]; i++)
    if (strcmp(argv[1], stages[i]->name) == 0) {
      struct stage_ctx ctx = {.st = stages[i]};
      return stages[i]->run(&ctx, argc - 1, argv + 1);
    }
  fprintf(stderr, "warren-worker: unknown stage \"%s\"\n", argv[1]);
  return usage(stderr, EXIT_USAGE);
}
