/*
 * common.c: the record loop every stage shares (see stage.h), option
 * helpers, the record hash and the count table.
 *
 * Graceful stop: SIGTERM/SIGINT set g_stop and call wr_interrupt(), so a
 * stage blocked in a channel wait returns at once; stage_next then reports
 * the end of its input, the stage flushes what it holds (count and top
 * emit their tables) and stage_finish closes its output, so the next stage
 * sees end of stream instead of waiting for ever.
 */
#include "stage.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t g_stop;

static void on_stop(int sig) {
  (void)sig;
  g_stop = 1;
  wr_interrupt();
}

_Noreturn void stage_die(const struct stage_ctx *ctx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "warren-worker %s: ", ctx->st->name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (code == EXIT_USAGE) fprintf(stderr, "Try 'warren-worker %s --help'.\n", ctx->st->name);
  exit(code);
}

bool stage_parse_u64(const char *s, uint64_t *out) {
  static const struct {
    const char *u;
    uint64_t mul;
  } units[] = {{"", 1},           {"k", 1000},         {"K", 1000},         {"M", 1000000},
               {"G", 1000000000}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
               {"B", 1}};
  if (!s || *s < '0' || *s > '9') return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return false;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp(end, units[i].u) == 0) {
      if (v > UINT64_MAX / units[i].mul) return false;
      *out = v * units[i].mul;
      return true;
    }
  return false;
}

const char *stage_optarg(struct stage_ctx *ctx, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) stage_die(ctx, EXIT_USAGE, "option %s needs a value", argv[*i]);
  return argv[++*i];
}

bool stage_common_opt(struct stage_ctx *ctx, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
    printf("usage: warren-worker %s %s\n", ctx->st->name, ctx->st->help);
    printf("\ncommon options:\n"
           "  --sem NAME   hold one permit of semaphore NAME while handling each input record\n"
           "  --help       this text\n");
    exit(EXIT_OK);
  }
  if (strcmp(a, "--sem") == 0) {
    ctx->sem_name = stage_optarg(ctx, argc, argv, i);
    return true;
  }
  return false;
}

struct slot_q {
  const char *name;
  uint32_t *slot_size;
};
static int slot_of(const char *name, const wr_chan_opts *o, void *arg) {
  struct slot_q *q = arg;
  if (strcmp(name, q->name) != 0) return 0;
  *q->slot_size = o->slot_size;
  return 1;
}

void stage_attach(struct stage_ctx *ctx) {
  int rc = wr_worker_attach(&ctx->w);
  if (rc == -WR_ENOENV)
    stage_die(ctx, EXIT_FAIL,
              "not started by warren (WARREN_* environment missing): run it "
              "from a config with `warren run CONFIG`");
  if (rc) stage_die(ctx, EXIT_FAIL, "cannot attach to the arena: %s", wr_strerror(rc));
  ctx->a = wr_worker_arena(ctx->w);
  unsigned f = ctx->st->flags;
  if (f & STAGE_IN) {
    if (wr_worker_nin(ctx->w) < 1)
      stage_die(ctx, EXIT_FAIL, "needs an input channel (\"in\" in the config)");
    if ((rc = wr_worker_in(ctx->w, 0, &ctx->in)))
      stage_die(ctx, EXIT_FAIL, "cannot open input: %s", wr_strerror(rc));
  }
  if (f & (STAGE_OUT | STAGE_OUT_OPTIONAL)) {
    if (wr_worker_nout(ctx->w) >= 1) {
      if ((rc = wr_worker_out(ctx->w, 0, &ctx->out)))
        stage_die(ctx, EXIT_FAIL, "cannot open output: %s", wr_strerror(rc));
    } else if (f & STAGE_OUT) {
      stage_die(ctx, EXIT_FAIL, "needs an output channel (\"out\" in the config)");
    }
  }
  ctx->slot_size = UINT32_MAX;
  if (ctx->out) {
    /* Output 0 is the first "name@index" of WARREN_OUT. */
    const char *o = getenv("WARREN_OUT");
    char name[WR_NAME_MAX];
    size_t n = o ? strcspn(o, "@,") : 0;
    if (n > 0 && n < sizeof name) {
      memcpy(name, o, n);
      name[n] = 0;
      wr_chan_foreach(ctx->a, slot_of, &(struct slot_q){name, &ctx->slot_size});
    }
  }
  if (ctx->sem_name) {
    wr_sem *s;
    if ((rc = wr_sem_open(ctx->a, ctx->sem_name, &s)))
      stage_die(ctx, EXIT_FAIL, "semaphore %s: %s", ctx->sem_name, wr_strerror(rc));
    ctx->sem = s;
  }
  if (ctx->out && (f & (STAGE_RESUME | STAGE_ONCE))) {
    ctx->published = stage_lane_sum(ctx, WR_PRODUCER);
    if (f & STAGE_RESUME) ctx->skip = ctx->published;
  }
  if (f & STAGE_ONCE) stage_once_open(ctx);
  struct sigaction sa = {.sa_handler = on_stop};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  rc = wr_worker_ready(ctx->w);
  if (rc && rc != -WR_ENOENV)
    stage_die(ctx, EXIT_FAIL, "cannot announce readiness: %s", wr_strerror(rc));
}

static void sem_put(struct stage_ctx *ctx) {
  if (ctx->sem_held) wr_sem_release(ctx->sem, 1);
  ctx->sem_held = false;
}

/* Input comes in batches (wr_chan_peek_batch: up to STAGE_BATCH records of
 * one lane); a batch is released in one step when its last record is done,
 * which wakes its producer once instead of once a record. */
int stage_next_t(struct stage_ctx *ctx, wr_rec *rec, int64_t timeout_ns) {
again:
  while (ctx->bi == ctx->bn) {
    if (g_stop) return 1;
    if (ctx->npend == STAGE_BATCH) { /* the caller holds that many batches: done them first */
      if (timeout_ns != 0)
        stage_die(ctx, EXIT_FAIL, "internal: %d input batches held", STAGE_BATCH);
      return 2;
    }
    int rc = wr_chan_peek_batch(ctx->in, ctx->batch, STAGE_BATCH, timeout_ns);
    if (rc == -WR_EOF) return 1;
    if (rc == -WR_EAGAIN || rc == -WR_ETIMEDOUT) return 2;
    if (rc == -WR_EINTR) continue;
    if (rc < 0) stage_die(ctx, EXIT_FAIL, "receive: %s", wr_strerror(rc));
    ctx->bn = (size_t)rc;
    ctx->bi = 0;
    ctx->pend[ctx->npend++] = ctx->batch[rc - 1]; /* released with its batch's last record */
  }
  *rec = ctx->batch[ctx->bi++];
  if ((ctx->st->flags & STAGE_ONCE) && !stage_once_begin(ctx, rec)) {
    stage_done(ctx, rec); /* its outputs went out before a crash */
    goto again;
  }
  ctx->nin++;
  while (ctx->sem && !ctx->sem_held) {
    int rc = wr_sem_acquire(ctx->sem, 1, -1);
    if (rc == 0)
      ctx->sem_held = true;
    else if (rc != -WR_EINTR)
      stage_die(ctx, EXIT_FAIL, "semaphore: %s", wr_strerror(rc));
    else if (g_stop)
      return 1; /* the record stays unreleased: redelivered */
  }
  return 0;
}

int stage_next(struct stage_ctx *ctx, wr_rec *rec) { return stage_next_t(ctx, rec, -1); }

void stage_done(struct stage_ctx *ctx, const wr_rec *rec) {
  for (size_t k = 0; k < ctx->npend; k++)
    if (ctx->pend[k].lane == rec->lane && ctx->pend[k].seq == rec->seq) {
      int rc = wr_chan_release(ctx->in, &ctx->pend[k]);
      if (rc) stage_die(ctx, EXIT_FAIL, "release: %s", wr_strerror(rc));
      ctx->pend[k] = ctx->pend[--ctx->npend];
      break;
    }
  sem_put(ctx);
}

int stage_emit_block(struct stage_ctx *ctx, void *block, size_t len, uint64_t key) {
  if (ctx->skip) { /* published by a predecessor */
    ctx->skip--;
    wr_free(ctx->a, block);
    return 0;
  }
  for (;;) {
    int rc = wr_chan_send_block_key(ctx->out, key, block, len, -1);
    if (rc == 0) break;
    if (rc == -WR_EINTR && !g_stop) continue;
    wr_free(ctx->a, block);
    if (rc == -WR_EINTR) return 1;
    stage_die(ctx, EXIT_FAIL, "send: %s", wr_strerror(rc));
  }
  ctx->nout++;
  ctx->published++;
  return 0;
}

void *stage_block(struct stage_ctx *ctx, size_t len) {
  void *block;
  int rc = wr_alloc(ctx->a, len ? len : 1, &block);
  if (rc) stage_die(ctx, EXIT_FAIL, "record of %zu bytes: %s", len, wr_strerror(rc));
  return block;
}

int stage_emit(struct stage_ctx *ctx, const void *data, size_t len, uint64_t key) {
  if (len > UINT32_MAX) stage_die(ctx, EXIT_FAIL, "record of %zu bytes is too large", len);
  if (ctx->skip) { /* published by a predecessor */
    ctx->skip--;
    return 0;
  }
  if (len > ctx->slot_size) {
    /* Larger than a slot: one copy into a heap block, sent zero-copy. */
    void *block = stage_block(ctx, len);
    memcpy(block, data, len);
    return stage_emit_block(ctx, block, len, key);
  }
  for (;;) {
    int rc = wr_chan_send_key(ctx->out, key, data, len, -1);
    if (rc == 0) break;
    if (rc == -WR_EMSGSIZE) { /* the slot size was not known */
      ctx->slot_size = len - 1;
      return stage_emit(ctx, data, len, key);
    }
    if (rc == -WR_EINTR && !g_stop) continue;
    if (rc == -WR_EINTR) return 1;
    stage_die(ctx, EXIT_FAIL, "send: %s", wr_strerror(rc));
  }
  ctx->nout++;
  ctx->published++;
  return 0;
}

int stage_finish(struct stage_ctx *ctx) {
  if (ctx->out) wr_chan_close(ctx->out);
  stage_state_free(ctx); /* after the close: a restart finds nothing left to send */
  sem_put(ctx);
  if (ctx->sem) wr_sem_close(ctx->sem);
  wr_worker_detach(ctx->w);
  fflush(stdout);
  return EXIT_OK;
}

uint64_t stage_hash(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull ^ len, w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) { /* FNV-1a over 8-byte words, then the tail bytes */
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < len; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* ------------------------------------------------------------ table */

static void table_grow(struct table *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  struct tent *v = calloc(cap, sizeof *v);
  if (!v) {
    fprintf(stderr, "warren-worker: out of memory\n");
    exit(EXIT_FAIL);
  }
  for (size_t i = 0; i < t->cap; i++)
    if (t->v[i].key) {
      size_t j = t->v[i].hash & (cap - 1);
      while (v[j].key)
        j = (j + 1) & (cap - 1);
      v[j] = t->v[i];
    }
  free(t->v);
  t->v = v;
  t->cap = cap;
}

void table_add(struct table *t, const void *key, size_t len, uint64_t n) {
  if ((t->used + 1) * 2 > t->cap) table_grow(t);
  uint64_t h = stage_hash(key, len);
  size_t j = h & (t->cap - 1);
  while (t->v[j].key) {
    if (t->v[j].hash == h && t->v[j].len == len && memcmp(t->v[j].key, key, len) == 0) {
      t->v[j].n += n;
      return;
    }
    j = (j + 1) & (t->cap - 1);
  }
  char *k = malloc(len + 1);
  if (!k) {
    fprintf(stderr, "warren-worker: out of memory\n");
    exit(EXIT_FAIL);
  }
  memcpy(k, key, len);
  k[len] = 0;
  t->v[j] = (struct tent){k, (uint32_t)len, h, n};
  t->used++;
}

static int tent_cmp(const void *x, const void *y) {
  const struct tent *a = x, *b = y;
  if (a->n != b->n) return a->n > b->n ? -1 : 1;
  size_t m = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->key, b->key, m);
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

struct tent *table_sorted(struct table *t) {
  size_t k = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->v[i].key) t->v[k++] = t->v[i];
  for (size_t i = k; i < t->cap; i++)
    t->v[i] = (struct tent){0};
  if (k) qsort(t->v, k, sizeof *t->v, tent_cmp); /* t->v is NULL for an empty table */
  t->cap = 0;                                    /* no longer a hash table: table_free only */
  t->used = k;
  return t->v;
}

void table_free(struct table *t) {
  size_t n = t->cap ? t->cap : t->used; /* hashed, or sorted into [0, used) */
  for (size_t i = 0; i < n; i++)
    free(t->v[i].key);
  free(t->v);
  memset(t, 0, sizeof *t);
}
