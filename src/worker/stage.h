/*
 * stage.h: what the stock stages of `warren-worker` share (common.c).
 *
 * A stage is one file with one `struct stage`: its name, a one-line
 * summary, its --help text, and run(). run() parses its own options first
 * (usage errors exit 2 before anything is attached), then calls
 * stage_attach(), which attaches to the arena as the worker the supervisor
 * started, opens input 0 and output 0, arms SIGTERM and announces
 * readiness. Records then flow through four calls:
 *
 *   stage_next(ctx, &rec)  the next input record (peeked, two-phase), or
 *                          1 at end of stream or on SIGTERM
 *   stage_emit(ctx, ...)   send one record to output 0: copied inline when
 *                          it fits the channel's slot, zero-copy (a heap
 *                          block) when it does not
 *   stage_done(ctx, &rec)  release the input record (after its outputs)
 *   stage_finish(ctx)      close output 0 (the consumer drains, then sees
 *                          end of stream) and detach; returns the exit code
 *
 * Because an input record is released only after everything derived from
 * it was sent, a stage killed mid-record gets it again after its restart
 * (at least once). Only src/ prints: stages report errors on stderr as
 * "warren-worker STAGE: reason" and exit 1 (runtime) or 2 (usage).
 */
#ifndef WARREN_STAGE_H
#define WARREN_STAGE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren.h"

/* STAGE_RESUME: the stage's outputs are one deterministic sequence (a
 * source, count's final table): a restarted incarnation drops as many as
 * its predecessors published. STAGE_ONCE: a deterministic per-record
 * transform whose outputs go out once whatever kills it (state.c). */
enum {
  STAGE_IN = 1,
  STAGE_OUT = 2,
  STAGE_OUT_OPTIONAL = 4,
  STAGE_RESUME = 8,
  STAGE_ONCE = 16,
};
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };
enum { STAGE_BATCH = 64 };

struct stage_ctx {
  const struct stage *st;
  wr_worker *w;
  wr_arena *a;
  wr_chan *in, *out;
  const char *sem_name; /* --sem NAME: one permit held per input record */
  wr_sem *sem;
  bool sem_held;
  uint32_t slot_size; /* output 0's inline capacity: larger records go zero-copy */
  uint64_t nin, nout; /* records received / sent */
  /* stage_next's input batch, and the last record of each batch handed out
   * and not yet released (stage_done releases a batch at its last record). */
  wr_rec batch[STAGE_BATCH], pend[STAGE_BATCH];
  size_t bi, bn, npend;
  /* state.c: records this replica published on output 0 (over all its
   * incarnations), outputs stage_emit drops (already published), the
   * progress record of STAGE_ONCE, the count table of count and top. */
  uint64_t published, skip;
  uint32_t nlanes;
  wr_array *prog;
  struct prog *pg;
  struct ktable *kt;
};

struct stage {
  const char *name;
  const char *summary; /* one line for `warren-worker --help` */
  const char *help;    /* the stage's --help text (options), after its usage line */
  unsigned flags;      /* STAGE_IN, STAGE_OUT, STAGE_OUT_OPTIONAL, STAGE_RESUME, STAGE_ONCE */
  int (*run)(struct stage_ctx *ctx, int argc, char **argv);
};

extern volatile sig_atomic_t g_stop; /* SIGTERM or SIGINT arrived */

/* Attach, open the channels the stage's flags ask for, arm SIGTERM and
 * announce readiness. Exits 1 with a clear message on failure. */
void stage_attach(struct stage_ctx *ctx);
/* 0 with *rec peeked; 1 at end of stream or when stopping. Exits 1 on an
 * error. Takes the --sem permit. */
int stage_next(struct stage_ctx *ctx, wr_rec *rec);
/* As stage_next, waiting at most timeout_ns (0: only what is there now);
 * 2 when nothing came. */
int stage_next_t(struct stage_ctx *ctx, wr_rec *rec, int64_t timeout_ns);
/* Done with rec (and the --sem permit): records must be done in the order
 * stage_next gave them; a batch is released with its last record. */
void stage_done(struct stage_ctx *ctx, const wr_rec *rec);
/* Send one record with `key`. 0, or 1 when stopping (SIGTERM during a
 * wait). Exits 1 on an error (out of shared memory, closed channel). */
int stage_emit(struct stage_ctx *ctx, const void *data, size_t len, uint64_t key);
/* Zero-copy: a heap block of len bytes for the caller to fill (exits 1 when
 * the heap is full), and sending it (ownership moves with the record; on
 * stop the block is freed and 1 returned). */
void *stage_block(struct stage_ctx *ctx, size_t len);
int stage_emit_block(struct stage_ctx *ctx, void *block, size_t len, uint64_t key);
/* Close output 0, detach; returns EXIT_OK. */
int stage_finish(struct stage_ctx *ctx);

/* Print "warren-worker STAGE: ..." on stderr and exit with code. */
_Noreturn void stage_die(const struct stage_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Handle the options every stage has (--help, --sem NAME); returns true if
 * argv[*i] was one of them (and advances *i past its argument). */
bool stage_common_opt(struct stage_ctx *ctx, int argc, char **argv, int *i);
/* An unsigned number with an optional size unit (KiB, MiB, k, M...). */
bool stage_parse_u64(const char *s, uint64_t *out);
/* The value after option argv[*i] (advances *i), or a usage error. */
const char *stage_optarg(struct stage_ctx *ctx, int argc, char **argv, int *i);

/* Send every line (without its newline) or every recsize-byte record of f
 * (file-source, stdin); 1 when stopping. Exits 1 on a read error or a line
 * longer than max_line. */
#include <stdio.h>
int stage_send_stream(struct stage_ctx *ctx, FILE *f, const char *path, uint64_t recsize,
                      uint64_t max_line);

/* A 64-bit FNV-1a-style hash, 8 bytes a step: checksums and key hashes. */
uint64_t stage_hash(const void *data, size_t len);

/* A string -> count table (count, top). Keys are byte strings. */
struct table {
  struct tent {
    char *key;
    uint32_t len;
    uint64_t hash, n;
  } * v;
  size_t cap, used;
};
void table_add(struct table *t, const void *key, size_t len, uint64_t n);
/* Entries sorted by count (descending), then key (bytes ascending). */
struct tent *table_sorted(struct table *t);
void table_free(struct table *t);

/* ---- state.c: what a stage keeps in the arena across its own crashes */

/* Records this replica's lanes of output 0 published (role WR_PRODUCER),
 * or its lanes of input 0 released (WR_CONSUMER), over the whole run. */
uint64_t stage_lane_sum(struct stage_ctx *ctx, int role);
/* Unbind every state object of this instance (stage_finish does, after
 * closing output 0). */
void stage_state_free(struct stage_ctx *ctx);
/* STAGE_ONCE (stage_attach, stage_next): read the progress record; begin
 * rec, false if it was complete before a crash (done it without output). */
void stage_once_open(struct stage_ctx *ctx);
bool stage_once_begin(struct stage_ctx *ctx, const wr_rec *rec);

/* The crash-safe key -> count table of count and top: each input record
 * applied once, whatever kills the stage. */
struct ktable {
  wr_map *m;
  uint64_t used; /* keys */
  uint32_t cap, key_max, nlanes;
  uint32_t mkey; /* the map's key_max: > key_max (see state.c), a multiple of 8 */
  char gen;      /* 'a' or 'b': the name the table lives under */
};
/* Open this instance's table; false if it has none (yet, or any more:
 * see count.c). Keys longer than key_max are an error. */
bool ktable_open(struct stage_ctx *ctx, struct ktable *t, uint32_t key_max);
/* Add n to key for input record rec, unless rec was applied already. */
void ktable_add(struct stage_ctx *ctx, struct ktable *t, const void *key, size_t len, uint64_t n,
                const wr_rec *rec);
/* Every entry into out (table_add). */
void ktable_read(struct stage_ctx *ctx, struct ktable *t, struct table *out);

/* Every stage, in `warren-worker --help` order (main.c). */
extern const struct stage stage_gen, stage_file_source, stage_stdin, stage_exec, stage_map,
    stage_batch, stage_count, stage_top, stage_file_sink, stage_stdout, stage_null;

#endif
