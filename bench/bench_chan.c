/*
 * bench_chan.c: channel throughput and latency against baselines measured in
 * the same run, each side a real process (fork):
 *   P1  64 B inline records, streaming: vs a pipe, a unix socket and a
 *       naive spin ring (written here: shared head/tail, no index caching)
 *   P2  64 KiB zero-copy records (wr_alloc + wr_chan_send_block, the
 *       consumer frees): message rate vs 64 KiB pipe messages
 *   P3  ping-pong round trip, both sides spinning: vs a raw cache-line
 *       ping-pong; P3b blocking (futex) vs a pipe ping-pong
 *   sweeps: 1 KiB records; batch sizes 1..64 at 64 B
 * Each measurement runs for a fixed time (BENCH_MS, default 250 ms) and
 * prints a rate; each ratio is printed on its own line as "ratio NAME X".
 * Numbers belong here, never in tests.
 */
#include <warren.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static wr_arena *arena;
static int bench_ms = 250;
static int parent_close = -1; /* an fd the parent must drop once both sides run */

struct ctl {
  _Atomic int ready, go, stop;
  _Atomic uint64_t count;
  _Atomic int64_t t0, t1;
  _Atomic uint64_t sink;
};
static struct ctl *ctl;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline int stopped(void) { return atomic_load_explicit(&ctl->stop, memory_order_relaxed); }

typedef void (*side_fn)(void *arg);

static pid_t start_side(side_fn fn, void *arg, int claim) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  uint32_t slot;
  if (claim && wr_slot_claim(arena, &slot) != 0) _exit(90);
  atomic_fetch_add(&ctl->ready, 1);
  while (!atomic_load(&ctl->go)) relax();
  fn(arg);
  _exit(0);
}

static void reap(pid_t pid) {
  int st;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "bench: a side failed (status %d)\n", st);
    exit(1);
  }
  for (uint32_t s = 1; s < WR_MAX_SLOTS; s++) {
    wr_slot_info in;
    wr_slot_info_get(arena, s, &in);
    if (in.pid != pid || in.state != WR_SLOT_LIVE) continue;
    wr_slot_mark_dead(arena, s, in.incarnation);
    wr_chan_reclaim(arena, s, in.incarnation, NULL);
    wr_heap_reclaim(arena, s, in.incarnation, NULL);
    wr_slot_release(arena, s, in.incarnation);
  }
}

/* Run a pair of sides for bench_ms; the consumer counts in ctl->count and
 * stamps t1 when it sees the end. Returns items per second. */
static double run_pair(side_fn prod, void *pa, side_fn cons, void *ca, int claim) {
  memset(ctl, 0, sizeof *ctl);
  pid_t c = start_side(cons, ca, claim);
  pid_t p = start_side(prod, pa, claim);
  if (parent_close >= 0) close(parent_close); /* else a reader never sees EOF */
  parent_close = -1;
  while (atomic_load(&ctl->ready) < 2) usleep(100);
  atomic_store(&ctl->t0, now_ns());
  atomic_store(&ctl->go, 1);
  usleep((useconds_t)bench_ms * 1000);
  atomic_store(&ctl->stop, 1);
  reap(p);
  reap(c);
  int64_t dt = atomic_load(&ctl->t1) - atomic_load(&ctl->t0);
  return dt > 0 ? (double)atomic_load(&ctl->count) * 1e9 / (double)dt : 0;
}

static void done(uint64_t n) {
  atomic_store(&ctl->t1, now_ns());
  atomic_store(&ctl->count, n);
}

/* ------------------------------------------------------------ pipe / socket */

struct fdpair {
  int fd[2];
  size_t len;
};

static void fd_prod(void *arg) {
  struct fdpair *f = arg;
  close(f->fd[0]);
  char *buf = calloc(1, f->len);
  while (!stopped()) {
    for (int i = 0; i < 64; i++) {
      size_t off = 0;
      while (off < f->len) {
        ssize_t w = write(f->fd[1], buf + off, f->len - off);
        if (w <= 0) _exit(1);
        off += (size_t)w;
      }
    }
  }
  close(f->fd[1]);
  free(buf);
}

static void fd_cons(void *arg) {
  struct fdpair *f = arg;
  close(f->fd[1]);
  char *buf = malloc(f->len);
  uint64_t n = 0, bytes = 0;
  for (;;) {
    ssize_t r = read(f->fd[0], buf, f->len - (bytes % f->len));
    if (r <= 0) break;
    bytes += (uint64_t)r;
  }
  n = bytes / f->len;
  done(n);
  free(buf);
}

static double fd_rate(int kind, size_t len) {
  struct fdpair f = {.len = len};
  if (kind == 0 ? pipe(f.fd) : socketpair(AF_UNIX, SOCK_STREAM, 0, f.fd)) return 0;
  parent_close = f.fd[1];
  double r = run_pair(fd_prod, &f, fd_cons, &f, 0);
  close(f.fd[0]);
  return r;
}

/* ------------------------------------------------------------ naive spin ring */

#define NAIVE_CAP 1024
struct naive {
  _Alignas(64) _Atomic uint64_t head;
  _Alignas(64) _Atomic uint64_t tail;
  _Alignas(64) uint8_t slots[NAIVE_CAP][64];
};
static struct naive *nv;

static void naive_prod(void *arg) {
  (void)arg;
  uint8_t rec[64] = {1};
  uint64_t t = 0;
  while (!stopped()) {
    for (int i = 0; i < 256; i++) {
      while (t - atomic_load_explicit(&nv->head, memory_order_acquire) >= NAIVE_CAP) relax();
      memcpy(nv->slots[t % NAIVE_CAP], rec, 64);
      atomic_store_explicit(&nv->tail, ++t, memory_order_release);
    }
  }
  atomic_store_explicit(&nv->tail, t | (1ull << 63), memory_order_release);
}

static void naive_cons(void *arg) {
  (void)arg;
  uint8_t rec[64];
  uint64_t h = 0, sum = 0;
  for (;;) {
    uint64_t t;
    while ((t = atomic_load_explicit(&nv->tail, memory_order_acquire)) == h) relax();
    if (t >> 63 && (t & ~(1ull << 63)) == h) break;
    memcpy(rec, nv->slots[h % NAIVE_CAP], 64);
    sum += rec[0];
    atomic_store_explicit(&nv->head, ++h, memory_order_release);
  }
  atomic_store(&ctl->sink, sum);
  done(h);
}

static double naive_rate(void) {
  memset(nv, 0, sizeof *nv);
  return run_pair(naive_prod, NULL, naive_cons, NULL, 0);
}

/* ------------------------------------------------------------ channel streaming */

struct cs {
  const char *name;
  size_t len;
  int batch;
};

static void chan_prod(void *arg) {
  struct cs *s = arg;
  wr_chan *c;
  if (wr_chan_open(arena, s->name, WR_PRODUCER, 0, &c)) _exit(2);
  uint8_t *rec = calloc(1, s->len);
  wr_msg m[64];
  for (int i = 0; i < 64; i++) m[i] = (wr_msg){.data = rec, .len = (uint32_t)s->len};
  while (!stopped()) {
    for (int i = 0; i < 256;) {
      if (s->batch == 1) {
        if (wr_chan_send(c, rec, s->len, -1)) _exit(3);
        i++;
      } else {
        int n = wr_chan_send_batch(c, m, (size_t)s->batch, -1);
        if (n <= 0) _exit(3);
        i += n;
      }
    }
  }
  wr_chan_close(c);
  wr_chan_detach(c);
  free(rec);
}

static void chan_cons(void *arg) {
  struct cs *s = arg;
  wr_chan *c;
  if (wr_chan_open(arena, s->name, WR_CONSUMER, 0, &c)) _exit(4);
  uint8_t *buf = malloc(s->len);
  wr_rec r[64];
  uint64_t n = 0, sum = 0;
  size_t max = s->batch == 1 ? 1 : 64;
  for (;;) {
    int k = wr_chan_peek_batch(c, r, max, -1);
    if (k == -WR_EOF) break;
    if (k <= 0) _exit(5);
    for (int i = 0; i < k; i++) {
      memcpy(buf, r[i].data, r[i].len);
      sum += buf[0];
    }
    wr_chan_release(c, &r[k - 1]);
    n += (uint64_t)k;
  }
  atomic_store(&ctl->sink, sum);
  done(n);
  wr_chan_detach(c);
  free(buf);
}

static double chan_rate(size_t len, int batch, uint32_t cap) {
  wr_chan_opts o = {.capacity = cap, .slot_size = (uint32_t)len};
  wr_chan_destroy(arena, "b");
  if (wr_chan_create(arena, "b", &o)) return 0;
  struct cs s = {"b", len, batch};
  double r = run_pair(chan_prod, &s, chan_cons, &s, 1);
  wr_chan_destroy(arena, "b");
  return r;
}

/* ------------------------------------------------------------ zero-copy */

#define ZC_LEN (64u << 10)

static void zc_prod(void *arg) {
  (void)arg;
  wr_chan *c;
  if (wr_chan_open(arena, "zc", WR_PRODUCER, 0, &c)) _exit(2);
  uint64_t i = 0;
  while (!stopped()) {
    void *b;
    if (wr_alloc(arena, ZC_LEN, &b)) _exit(6);
    memcpy(b, &i, sizeof i); /* a header; the payload is produced in place */
    if (wr_chan_send_block(c, b, ZC_LEN, -1)) _exit(7);
    i++;
  }
  wr_chan_close(c);
  wr_chan_detach(c);
}

static void zc_cons(void *arg) {
  (void)arg;
  wr_chan *c;
  if (wr_chan_open(arena, "zc", WR_CONSUMER, 0, &c)) _exit(4);
  uint64_t n = 0, sum = 0;
  for (;;) {
    wr_rec r;
    int k = wr_chan_peek(c, &r, -1);
    if (k == -WR_EOF) break;
    if (k) _exit(5);
    sum += *(const uint64_t *)r.data;
    wr_chan_release(c, &r); /* frees the block */
    n++;
  }
  atomic_store(&ctl->sink, sum);
  done(n);
  wr_chan_detach(c);
}

static double zc_rate(void) {
  wr_chan_opts o = {.capacity = 64, .slot_size = 8};
  wr_chan_destroy(arena, "zc");
  if (wr_chan_create(arena, "zc", &o)) return 0;
  double r = run_pair(zc_prod, NULL, zc_cons, NULL, 1);
  wr_chan_destroy(arena, "zc");
  return r;
}

/* ------------------------------------------------------------ ping-pong */

struct pp {
  int a2b[2], b2a[2];
  int spin; /* channels: 1 = spin (timeout 0 polling), 0 = blocking */
};
static _Atomic uint64_t *line;

static void raw_ping(void *arg) {
  (void)arg;
  uint64_t n = 0;
  while (!stopped()) {
    atomic_store_explicit(line, 2 * n + 1, memory_order_release);
    while (atomic_load_explicit(line, memory_order_acquire) != 2 * n + 2) relax();
    n++;
  }
  done(n);
  atomic_store_explicit(line, UINT64_MAX, memory_order_release);
}
static void raw_pong(void *arg) {
  (void)arg;
  for (uint64_t n = 0;; n++) {
    uint64_t v;
    while ((v = atomic_load_explicit(line, memory_order_acquire)) != 2 * n + 1) {
      if (v == UINT64_MAX) return;
      relax();
    }
    atomic_store_explicit(line, 2 * n + 2, memory_order_release);
  }
}

static void pipe_ping(void *arg) {
  struct pp *p = arg;
  uint64_t n = 0, x = 0;
  while (!stopped()) {
    if (write(p->a2b[1], &x, 8) != 8 || read(p->b2a[0], &x, 8) != 8) _exit(1);
    n++;
  }
  done(n);
  close(p->a2b[1]);
}
static void pipe_pong(void *arg) {
  struct pp *p = arg;
  close(p->a2b[1]);
  uint64_t x;
  while (read(p->a2b[0], &x, 8) == 8)
    if (write(p->b2a[1], &x, 8) != 8) _exit(1);
}

static int chan_wait_peek(wr_chan *c, wr_rec *r, int spin) {
  if (!spin) return wr_chan_peek(c, r, -1);
  int rc;
  while ((rc = wr_chan_peek(c, r, 0)) == -WR_EAGAIN) relax();
  return rc;
}

static void chan_ping(void *arg) {
  struct pp *p = arg;
  wr_chan *out, *in;
  if (wr_chan_open(arena, "ab", WR_PRODUCER, 0, &out) ||
      wr_chan_open(arena, "ba", WR_CONSUMER, 0, &in))
    _exit(2);
  uint64_t n = 0;
  wr_rec r;
  /* the reply is released after the next send: off the round trip's path */
  while (!stopped()) {
    if (wr_chan_send(out, &n, 8, -1)) _exit(3);
    if (n) wr_chan_release(in, &r);
    if (chan_wait_peek(in, &r, p->spin)) _exit(3);
    n++;
  }
  if (n) wr_chan_release(in, &r);
  done(n);
  wr_chan_close(out);
  wr_chan_detach(out);
  wr_chan_detach(in);
}
static void chan_pong(void *arg) {
  struct pp *p = arg;
  wr_chan *out, *in;
  if (wr_chan_open(arena, "ba", WR_PRODUCER, 0, &out) ||
      wr_chan_open(arena, "ab", WR_CONSUMER, 0, &in))
    _exit(2);
  for (;;) {
    wr_rec r;
    if (chan_wait_peek(in, &r, p->spin)) break; /* EOF */
    uint64_t x = *(const uint64_t *)r.data;
    if (wr_chan_send(out, &x, 8, -1)) _exit(3); /* reply first, then release */
    wr_chan_release(in, &r);
  }
  wr_chan_detach(out);
  wr_chan_detach(in);
}

/* Round trips per second -> ns per round trip. */
static double rtt_ns(double rate) { return rate > 0 ? 1e9 / rate : 0; }

static double chan_rtt(int spin) {
  wr_chan_opts o = {.capacity = 16, .slot_size = 8};
  wr_chan_destroy(arena, "ab");
  wr_chan_destroy(arena, "ba");
  if (wr_chan_create(arena, "ab", &o) || wr_chan_create(arena, "ba", &o)) return 0;
  struct pp p = {.spin = spin};
  double r = rtt_ns(run_pair(chan_ping, &p, chan_pong, &p, 1));
  wr_chan_destroy(arena, "ab");
  wr_chan_destroy(arena, "ba");
  return r;
}

static double pipe_rtt(void) {
  struct pp p;
  if (pipe(p.a2b) || pipe(p.b2a)) return 0;
  parent_close = p.a2b[1];
  double r = rtt_ns(run_pair(pipe_ping, &p, pipe_pong, &p, 0));
  close(p.a2b[0]);
  close(p.b2a[0]);
  close(p.b2a[1]);
  return r;
}

static double raw_rtt(void) {
  atomic_store(line, 0);
  return rtt_ns(run_pair(raw_ping, NULL, raw_pong, NULL, 0));
}

/* ------------------------------------------------------------ main */

static void ratio(const char *name, double x, const char *goal) {
  printf("ratio %-28s %8.2f   (goal %s)\n", name, x, goal);
}

/* Every measurement, run `reps` times interleaved; the best run counts
 * (highest rate, lowest RTT): the machine is shared, noise only slows. */
enum {
  M_PIPE64, M_SOCK64, M_NAIVE64, M_CHAN64, M_CHAN64B, M_PIPEZC, M_CHANZC, M_RAWRTT,
  M_SPINRTT, M_PIPERTT, M_BLOCKRTT, M_PIPE1K, M_CHAN1K, M_CHAN1KB, M_B1, M_B4, M_B16, M_B64,
  M_COUNT
};
static const int is_rtt[M_COUNT] = {[M_RAWRTT] = 1, [M_SPINRTT] = 1, [M_PIPERTT] = 1,
                                    [M_BLOCKRTT] = 1};

static double measure(int m) {
  switch (m) {
  case M_PIPE64: return fd_rate(0, 64);
  case M_SOCK64: return fd_rate(1, 64);
  case M_NAIVE64: return naive_rate();
  case M_CHAN64: return chan_rate(64, 1, 1024);
  case M_CHAN64B: return chan_rate(64, 32, 1024);
  case M_PIPEZC: return fd_rate(0, ZC_LEN);
  case M_CHANZC: return zc_rate();
  case M_RAWRTT: return raw_rtt();
  case M_SPINRTT: return chan_rtt(1);
  case M_PIPERTT: return pipe_rtt();
  case M_BLOCKRTT: return chan_rtt(0);
  case M_PIPE1K: return fd_rate(0, 1024);
  case M_CHAN1K: return chan_rate(1024, 1, 256);
  case M_CHAN1KB: return chan_rate(1024, 16, 256);
  case M_B1: return chan_rate(64, 1, 1024);
  case M_B4: return chan_rate(64, 4, 1024);
  case M_B16: return chan_rate(64, 16, 1024);
  default: return chan_rate(64, 64, 1024);
  }
}

int main(int argc, char **argv) {
  const char *ms = getenv("BENCH_MS"), *rp = getenv("BENCH_REPS");
  int reps = 3;
  if (ms && atoi(ms) > 0) bench_ms = atoi(ms);
  if (rp && atoi(rp) > 0) reps = atoi(rp);
  if (argc > 1 && strcmp(argv[1], "--quick") == 0) bench_ms = 50, reps = 1;
  wr_arena_opts o = {.size = 128ull << 20};
  if (wr_arena_create(&o, &arena)) return 1;
  ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  nv = mmap(NULL, sizeof *nv, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  line = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (ctl == MAP_FAILED || nv == MAP_FAILED || line == MAP_FAILED) return 1;
  printf("bench_chan: %d ms a measurement, best of %d, processes forked, same-run baselines\n",
         bench_ms, reps);
  double v[M_COUNT] = {0};
  for (int r = 0; r < reps; r++)
    for (int m = 0; m < M_COUNT; m++) {
      double x = measure(m);
      if (x > 0 && (v[m] == 0 || (is_rtt[m] ? x < v[m] : x > v[m]))) v[m] = x;
    }

  printf("P1 64 B   pipe %.2f M/s  unix socket %.2f M/s  naive ring %.2f M/s\n",
         v[M_PIPE64] / 1e6, v[M_SOCK64] / 1e6, v[M_NAIVE64] / 1e6);
  printf("P1 64 B   chan %.2f M/s (one record a call)  %.2f M/s (batch 32)\n", v[M_CHAN64] / 1e6,
         v[M_CHAN64B] / 1e6);
  ratio("P1_chan/pipe", v[M_CHAN64] / v[M_PIPE64], ">= 40");
  ratio("P1_chan/unix_socket", v[M_CHAN64] / v[M_SOCK64], "-");
  ratio("P1_chan/naive_ring", v[M_CHAN64] / v[M_NAIVE64], ">= 0.6");
  ratio("P1_chan_batch32/pipe", v[M_CHAN64B] / v[M_PIPE64], "-");
  ratio("P1_chan_batch32/naive_ring", v[M_CHAN64B] / v[M_NAIVE64], "-");
  printf("P2 64 KiB pipe %.0f msg/s  chan zero-copy %.0f msg/s\n", v[M_PIPEZC], v[M_CHANZC]);
  ratio("P2_zero_copy/pipe", v[M_CHANZC] / v[M_PIPEZC], ">= 200");
  printf("P3 RTT    raw cache line %.0f ns  chan spinning %.0f ns\n", v[M_RAWRTT], v[M_SPINRTT]);
  printf("P3b RTT   pipe %.0f ns  chan blocking %.0f ns\n", v[M_PIPERTT], v[M_BLOCKRTT]);
  ratio("P3_spin_rtt/raw_line_rtt", v[M_SPINRTT] / v[M_RAWRTT], "<= 1.5");
  ratio("P3b_block_rtt/pipe_rtt", v[M_BLOCKRTT] / v[M_PIPERTT], "<= 1.1");
  printf("1 KiB     pipe %.2f M/s  chan %.2f M/s  chan batch 16 %.2f M/s\n", v[M_PIPE1K] / 1e6,
         v[M_CHAN1K] / 1e6, v[M_CHAN1KB] / 1e6);
  ratio("1KiB_chan/pipe", v[M_CHAN1K] / v[M_PIPE1K], "-");
  ratio("1KiB_chan_batch16/pipe", v[M_CHAN1KB] / v[M_PIPE1K], "-");
  static const int sizes[] = {1, 4, 16, 64};
  for (int i = 0; i < 4; i++) {
    char name[64];
    double x = v[M_B1 + i];
    snprintf(name, sizeof name, "batch%d_chan/naive_ring", sizes[i]);
    printf("batch %-3d 64 B chan %.2f M/s\n", sizes[i], x / 1e6);
    ratio(name, x / v[M_NAIVE64], "-");
  }
  wr_arena_detach(arena);
  return 0;
}
