/*
 * state.c: what a stage keeps across its own crashes, in the arena, under
 * names of its instance ("WORKER.REPLICA~x": '~' is not a config name's
 * character, so nothing clashes; replicas never share; a restarted
 * incarnation finds its predecessor's). stage_finish unbinds them all after
 * closing output 0, so a finished stage leaves nothing in the heap.
 *
 * Two kinds of state, for two kinds of stage:
 *
 * 1. The key -> count table of count and top (~a, ~b): a wr_map whose value
 *    per key is its count and, for each input lane, the sequence number
 *    after the last record of that lane applied to this key. One record is
 *    one wr_map_group on its key, atomic with respect to a crash (the
 *    stripe's undo copy rolls a cut-short update back). A record comes
 *    again when its consumer died before releasing it; the records of one
 *    lane arrive in lane order, each once per incarnation. So a record
 *    (lane L, seq s) was applied to key k iff k's next[L] > s: it set
 *    next[L] to s + 1, and later records of L only raise it; a record not
 *    applied finds next[L] <= s, since every record of L applied before it
 *    (to any key) has a lower sequence. One value holds every lane's
 *    number, so replicas upstream (several lanes) and keyed or round-robin
 *    channels need nothing more: a lane feeds one consumer replica, and
 *    each replica has its own table. No multi-key transaction is needed.
 *    The map has a fixed capacity: at half full it grows into the other
 *    name (~a <-> ~b) twice as large: create, copy every entry, unbind the
 *    old one. Nothing is applied meanwhile, so after a crash in between
 *    the one with more entries is complete (equal: the copy is complete)
 *    and the other is unbound. A heap too small fails with a clear message.
 *    A map key is never empty: an empty record is counted under a stand-in
 *    key longer than any real one (the map's key_max is key_max rounded up
 *    past it, to 8 bytes, which also keeps the values 8-aligned).
 *
 * 2. The progress record of a deterministic per-record transform (map,
 *    STAGE_ONCE; ~p): its outputs go out once even when it dies half-way
 *    through a record's outputs. The channel's own counters say how many
 *    records this replica published (a send counts once published, and
 *    reclaim publishes what a dead sender stamped: gen --resume's
 *    argument). Before its first output, each record writes one wr_array
 *    element: (lane, seq, base = published so far), and marks the record
 *    before it complete (per lane: next seq, and how many outputs of that
 *    lane's next record are out). A restarted incarnation turns the record
 *    in progress into "P - base outputs already out" for its lane; records
 *    before a lane's next are skipped whole (released, no output), and the
 *    next one skips its outputs already out (stage_emit drops them). The
 *    counts per lane stay exact across any number of crashes, in any
 *    order of lanes after a restart.
 *
 * Sources and count's final table (STAGE_RESUME) emit one deterministic
 * sequence: a restarted incarnation drops the first P records it would
 * send, P being what its predecessors published.
 */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KT_INIT_CAP = 4096, KT_KEY_LIMIT = 1 << 20 };

/* ------------------------------------------------------------ names, lanes */

static void state_name(struct stage_ctx *ctx, char c, char *buf) {
  snprintf(buf, WR_NAME_MAX, "%.39s.%u~%c", wr_worker_name(ctx->w), wr_worker_replica(ctx->w), c);
}

/* "name@index" of the first entry of WARREN_IN / WARREN_OUT. */
static bool side_of(const char *env, char *name, uint32_t *index) {
  const char *o = getenv(env);
  size_t n = o ? strcspn(o, "@,") : 0;
  if (n == 0 || n >= WR_NAME_MAX || o[n] != '@') return false;
  memcpy(name, o, n);
  name[n] = 0;
  *index = (uint32_t)strtoul(o + n + 1, NULL, 10);
  return true;
}

uint64_t stage_lane_sum(struct stage_ctx *ctx, int role) {
  char name[WR_NAME_MAX];
  uint32_t me;
  if (!side_of(role == WR_PRODUCER ? "WARREN_OUT" : "WARREN_IN", name, &me)) return 0;
  static wr_lane_stats ls[4096]; /* a channel has at most 4096 lanes */
  int n = wr_chan_stats(ctx->a, name, ls, 4096);
  uint64_t sum = 0;
  for (int k = 0; k < n && k < 4096; k++) {
    if (role == WR_PRODUCER && ls[k].producer == me) sum += ls[k].sent;
    if (role == WR_CONSUMER && ls[k].consumer == me) sum += ls[k].received;
  }
  return sum;
}

struct lanes_q {
  const char *name;
  uint32_t n, slot_size;
};
static int producers_of(const char *name, const wr_chan_opts *o, void *arg) {
  struct lanes_q *q = arg;
  if (strcmp(name, q->name) != 0) return 0;
  q->n = o->producers ? o->producers : 1;
  q->slot_size = o->slot_size;
  return 1;
}

/* Input 0's lanes (one per producer replica: wr_rec.lane < n) and slot size. */
static struct lanes_q in_lanes(struct stage_ctx *ctx) {
  char name[WR_NAME_MAX];
  uint32_t me;
  struct lanes_q q = {name, 1, 64};
  if (side_of("WARREN_IN", name, &me)) wr_chan_foreach(ctx->a, producers_of, &q);
  return q;
}

void stage_state_free(struct stage_ctx *ctx) {
  if (ctx->kt) wr_map_close(ctx->kt->m), ctx->kt->m = NULL;
  if (ctx->prog) wr_array_close(ctx->prog), ctx->prog = NULL;
  free(ctx->pg);
  ctx->pg = NULL;
  char name[WR_NAME_MAX];
  for (const char *c = "abp"; *c; c++) {
    state_name(ctx, *c, name);
    int rc = wr_name_unbind(ctx->a, name);
    if (rc && rc != -WR_ENOENT) stage_die(ctx, EXIT_FAIL, "free %s: %s", name, wr_strerror(rc));
  }
}

/* ------------------------------------------------------------ key -> count table */

struct kval {
  uint64_t n;
  uint64_t next[]; /* per input lane: seq after the last record applied to this key */
};

static wr_map *kt_open_gen(struct stage_ctx *ctx, char gen) {
  char name[WR_NAME_MAX];
  state_name(ctx, gen, name);
  wr_map *m = NULL;
  int rc = wr_map_open(ctx->a, name, &m);
  if (rc && rc != -WR_ENOENT) stage_die(ctx, EXIT_FAIL, "table %s: %s", name, wr_strerror(rc));
  return m;
}

static void kt_drop_gen(struct stage_ctx *ctx, wr_map **m, char gen) {
  char name[WR_NAME_MAX];
  state_name(ctx, gen, name);
  wr_map_close(*m);
  *m = NULL;
  int rc = wr_name_unbind(ctx->a, name);
  if (rc) stage_die(ctx, EXIT_FAIL, "free table %s: %s", name, wr_strerror(rc));
}

bool ktable_open(struct stage_ctx *ctx, struct ktable *t, uint32_t key_max) {
  memset(t, 0, sizeof *t);
  struct lanes_q q = in_lanes(ctx);
  t->key_max = key_max ? key_max : q.slot_size;
  t->nlanes = q.n;
  if (t->key_max > KT_KEY_LIMIT) stage_die(ctx, EXIT_USAGE, "--key-max: at most 1MiB");
  t->mkey = (t->key_max + 8) & ~7u; /* room for the empty key's stand-in; values 8-aligned */
  ctx->kt = t;
  wr_map *a = kt_open_gen(ctx, 'a'), *b = kt_open_gen(ctx, 'b');
  if (a && b) { /* a crash while growing: keep the complete one */
    int64_t na = wr_map_count(a), nb = wr_map_count(b);
    if (na < 0 || nb < 0)
      stage_die(ctx, EXIT_FAIL, "table: %s", wr_strerror((int)(na < 0 ? na : nb)));
    bool keep_a = na > nb || (na == nb && wr_map_capacity(a) > wr_map_capacity(b));
    kt_drop_gen(ctx, keep_a ? &b : &a, keep_a ? 'b' : 'a');
  }
  t->m = a ? a : b;
  t->gen = a ? 'a' : 'b';
  if (!t->m) return false;
  int64_t n = wr_map_count(t->m);
  if (n < 0) stage_die(ctx, EXIT_FAIL, "table: %s", wr_strerror((int)n));
  t->used = (uint64_t)n;
  t->cap = wr_map_capacity(t->m);
  return true;
}

/* Create generation `gen` for cap keys, or die explaining the heap is too small. */
static wr_map *kt_create(struct stage_ctx *ctx, struct ktable *t, char gen, uint64_t cap) {
  char name[WR_NAME_MAX];
  state_name(ctx, gen, name);
  if (cap > UINT32_MAX) stage_die(ctx, EXIT_FAIL, "a table of more than %u keys", UINT32_MAX / 2);
  wr_map_opts o = {.capacity = (uint32_t)cap,
                   .key_max = t->mkey,
                   .value_max = (uint32_t)(sizeof(struct kval) + 8 * t->nlanes),
                   .stripes = 16};
  int rc = wr_map_create(ctx->a, name, &o);
  if (rc == -WR_ENOMEM)
    stage_die(ctx, EXIT_FAIL,
              "a table for %llu keys does not fit the heap: raise \"heap\": {\"size\"} in the "
              "config (plan on 4-8 x %u bytes a key)",
              (unsigned long long)cap / 2, (unsigned)(24 + o.key_max + o.value_max));
  if (rc) stage_die(ctx, EXIT_FAIL, "create table %s: %s", name, wr_strerror(rc));
  wr_map *m = kt_open_gen(ctx, gen);
  if (!m) stage_die(ctx, EXIT_FAIL, "table %s vanished", name);
  return m;
}

static int kt_copy(const void *key, uint32_t klen, const void *val, uint32_t vlen, void *arg) {
  return wr_map_put(arg, key, klen, val, vlen);
}

/* Grow into the other generation, twice as large (see the top comment). */
static void kt_grow(struct stage_ctx *ctx, struct ktable *t) {
  char ng = t->gen == 'a' ? 'b' : 'a';
  for (uint64_t cap = (uint64_t)t->cap * 2;; cap *= 2) {
    wr_map *m = kt_create(ctx, t, ng, cap);
    int rc = wr_map_foreach(t->m, kt_copy, m);
    if (rc == 0) {
      kt_drop_gen(ctx, &t->m, t->gen);
      t->m = m;
      t->gen = ng;
      t->cap = (uint32_t)cap;
      return;
    }
    kt_drop_gen(ctx, &m, ng);
    if (rc != -WR_ENOMEM) stage_die(ctx, EXIT_FAIL, "grow table: %s", wr_strerror(rc));
    /* a stripe of the new map filled up: larger still */
  }
}

struct kt_add {
  uint64_t n, seq;
  uint32_t lane, vlen;
  bool added;
};

static int kt_apply(void *val, uint32_t *len, uint32_t cap, int exists, void *arg) {
  struct kt_add *x = arg;
  struct kval *v = val;
  if (cap < x->vlen) return -WR_EMSGSIZE;
  if (!exists) {
    memset(v, 0, x->vlen);
    *len = x->vlen;
    x->added = true;
  } else if (*len != x->vlen) {
    return -WR_ECORRUPT;
  } else if (v->next[x->lane] > x->seq) {
    return WR_MAP_KEEP; /* applied before its consumer died: redelivered */
  }
  v->n += x->n;
  v->next[x->lane] = x->seq + 1;
  return WR_MAP_KEEP;
}

void ktable_add(struct stage_ctx *ctx, struct ktable *t, const void *key, size_t len, uint64_t n,
                const wr_rec *rec) {
  static const char empty[KT_KEY_LIMIT + 8];
  if (len == 0) { /* a map key is never empty: a stand-in no real key can be */
    key = empty;
    len = t->mkey;
  } else if (len > t->key_max) {
    stage_die(ctx, EXIT_FAIL, "a key of %zu bytes is longer than --key-max %u", len, t->key_max);
  }
  if (rec->lane >= t->nlanes)
    stage_die(ctx, EXIT_FAIL, "a record of input lane %u (%u lanes known)", rec->lane, t->nlanes);
  if (!t->m) {
    t->gen = 'a';
    t->cap = KT_INIT_CAP;
    t->m = kt_create(ctx, t, 'a', KT_INIT_CAP);
  }
  struct kt_add x = {n, rec->seq, rec->lane, (uint32_t)(sizeof(struct kval) + 8 * t->nlanes),
                     false};
  for (;;) {
    if ((t->used + 1) * 2 > t->cap) kt_grow(ctx, t);
    int rc = wr_map_group(t->m, key, len, kt_apply, &x);
    if (rc == 0) break;
    if (rc == -WR_ENOMEM) { /* the key's stripe is full */
      kt_grow(ctx, t);
      continue;
    }
    stage_die(ctx, EXIT_FAIL, "table: %s", wr_strerror(rc));
  }
  t->used += x.added;
}

struct kt_read {
  struct table *out;
  uint32_t key_max;
};
static int kt_read(const void *key, uint32_t klen, const void *val, uint32_t vlen, void *arg) {
  struct kt_read *r = arg;
  const struct kval *v = val;
  if (vlen >= sizeof *v) table_add(r->out, key, klen > r->key_max ? 0 : klen, v->n);
  return 0;
}

void ktable_read(struct stage_ctx *ctx, struct ktable *t, struct table *out) {
  if (!t->m) return;
  int rc = wr_map_foreach(t->m, kt_read, &(struct kt_read){out, t->key_max});
  if (rc) stage_die(ctx, EXIT_FAIL, "read table: %s", wr_strerror(rc));
}

/* ------------------------------------------------------------ progress record */

struct prog {
  uint64_t cur; /* 0, or 1 + the lane of the record in progress (zeroed: none) */
  uint64_t cur_seq, cur_base;
  struct {
    uint64_t next; /* records of the lane before this one are complete */
    uint64_t out;  /* outputs of record `next` already out */
  } l[];
};
static size_t prog_size(uint32_t nlanes) { return sizeof(struct prog) + 16 * (size_t)nlanes; }

void stage_once_open(struct stage_ctx *ctx) {
  ctx->nlanes = in_lanes(ctx).n;
  ctx->pg = calloc(1, prog_size(ctx->nlanes));
  if (!ctx->pg) stage_die(ctx, EXIT_FAIL, "out of memory");
  char name[WR_NAME_MAX];
  state_name(ctx, 'p', name);
  int rc = wr_array_open(ctx->a, name, &ctx->prog);
  if (rc == -WR_ENOENT) return; /* created with the first record */
  if (rc) stage_die(ctx, EXIT_FAIL, "progress %s: %s", name, wr_strerror(rc));
  wr_array_get(ctx->prog, 0, ctx->pg);
  struct prog *p = ctx->pg;
  if (p->cur > ctx->nlanes) stage_die(ctx, EXIT_FAIL, "progress %s: a damaged record", name);
  if (p->cur) { /* cut short: P - base of its outputs are out */
    p->l[p->cur - 1].next = p->cur_seq;
    p->l[p->cur - 1].out = ctx->published > p->cur_base ? ctx->published - p->cur_base : 0;
  }
  p->cur = 0;
}

bool stage_once_begin(struct stage_ctx *ctx, const wr_rec *rec) {
  struct prog *p = ctx->pg;
  if (rec->lane >= ctx->nlanes)
    stage_die(ctx, EXIT_FAIL, "a record of input lane %u (%u lanes known)", rec->lane, ctx->nlanes);
  if (rec->seq < p->l[rec->lane].next) return false; /* complete before a crash */
  uint64_t out = rec->seq == p->l[rec->lane].next ? p->l[rec->lane].out : 0;
  if (p->cur) { /* the record before this one is complete */
    p->l[p->cur - 1].next = p->cur_seq + 1;
    p->l[p->cur - 1].out = 0;
  }
  p->l[rec->lane].next = rec->seq;
  p->l[rec->lane].out = 0;
  p->cur = rec->lane + 1ull;
  p->cur_seq = rec->seq;
  p->cur_base = ctx->published - out;
  ctx->skip = out;
  char name[WR_NAME_MAX];
  state_name(ctx, 'p', name);
  int rc = 0;
  if (!ctx->prog && ((rc = wr_array_create(ctx->a, name, 1, (uint32_t)prog_size(ctx->nlanes))) ||
                     (rc = wr_array_open(ctx->a, name, &ctx->prog))))
    stage_die(ctx, EXIT_FAIL, "progress %s: %s", name, wr_strerror(rc));
  if ((rc = wr_array_set(ctx->prog, 0, p)))
    stage_die(ctx, EXIT_FAIL, "progress %s: %s", name, wr_strerror(rc));
  return true;
}
