/*
 * warren-test-worker: the worker the supervisor tests start.
 *
 *   warren-test-worker MODE [ARGS]
 *   ready                 attach, announce ready, run until SIGTERM (exit 0)
 *   plain                 no library: run until SIGTERM (exit 0)
 *   exit CODE [MS]        no library: exit with CODE after MS milliseconds
 *   alloc-crash BYTES MARKER
 *                         attach, allocate BYTES in 1 KiB blocks, ready; the
 *                         first incarnation (MARKER absent: it creates it)
 *                         then SIGKILLs itself; later ones run until SIGTERM
 *   fork-child PIDFILE    attach, fork a child that sleeps (its pid goes to
 *                         PIDFILE), ready, run until SIGTERM
 *   ignore-term           attach, ready, ignore SIGTERM forever
 *   say TEXT              print TEXT on stdout and stderr, ready, run until SIGTERM
 *   produce               send numbered records to output 0 until SIGTERM, then close
 *                         it and append the count to produced.REPLICA
 *   sem-crash MARKER      attach, take 2 permits of semaphore "disk", ready; the first
 *                         incarnation then SIGKILLs itself; later ones take every
 *                         permit (proving they came back), print it, run until SIGTERM
 *   consume               receive from input 0 until end of stream (or SIGTERM) and
 *                         append the count to consumed.REPLICA; while a file "pause"
 *                         exists it receives nothing
 *   scribble SEED         hostile: attach, allocate, send on output 0 if any, ready,
 *                         then write random bytes over its slot, the lock words, the
 *                         page map, tag arrays, the directory and the lanes, and
 *                         SIGKILL itself (a new seed every incarnation)
 *   exec-child OUT        attach, ready, run `ls -l /proc/self/fd > OUT` (a child that
 *                         must see no arena fd), run until SIGTERM
 *   stall MS MARKER       attach, allocate 64 KiB, ready, then beat (wr_worker_alive)
 *                         every 20 ms; the first incarnation (MARKER absent: it creates
 *                         it) stops beating after MS ms and spins forever (stuck)
 *   sem-wait SEM          attach, ready, then block on semaphore SEM until SIGTERM
 */
#include "../scribble.h" /* scribble: the arena's metadata */
#include "warren.h"

#include <sys/wait.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_term;
static void on_term(int sig) {
  g_term = 1;
  wr_interrupt();
}

static void write_count(wr_worker *w, const char *what, long n) {
  char path[64];
  snprintf(path, sizeof path, "%s.%u", what, wr_worker_replica(w));
  FILE *f = fopen(path, "a"); /* one line per incarnation */
  fprintf(f, "%ld\n", n);
  fclose(f);
}

static wr_worker *attach(void) {
  wr_worker *w;
  int rc = wr_worker_attach(&w);
  if (rc) {
    fprintf(stderr, "attach: %s\n", wr_strerror(rc));
    exit(3);
  }
  return w;
}

static void ready(wr_worker *w) {
  int rc = wr_worker_ready(w);
  if (rc) fprintf(stderr, "ready: %s\n", wr_strerror(rc));
}

static int wait_term(wr_worker *w) {
  while (!g_term)
    pause();
  wr_worker_detach(w);
  return 0;
}

int main(int argc, char **argv) {
  struct sigaction sa = {.sa_handler = on_term};
  sigaction(SIGTERM, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "plain") == 0) {
    while (!g_term)
      pause();
    return 0;
  }
  if (strcmp(mode, "exit") == 0 && argc > 2) {
    if (argc > 3) {
      long ms = atol(argv[3]);
      struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
      nanosleep(&ts, NULL);
    }
    return atoi(argv[2]);
  }
  if (strcmp(mode, "ready") == 0) {
    wr_worker *w = attach();
    ready(w);
    return wait_term(w);
  }
  if (strcmp(mode, "say") == 0 && argc > 2) {
    wr_worker *w = attach();
    printf("%s\n", argv[2]);
    fprintf(stderr, "%s\n", argv[2]);
    ready(w);
    return wait_term(w);
  }
  if (strcmp(mode, "alloc-crash") == 0 && argc > 3) {
    wr_worker *w = attach();
    wr_arena *a = wr_worker_arena(w);
    int first = open(argv[3], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (first >= 0) {
      close(first);
      long bytes = atol(argv[2]);
      for (long done = 0; done < bytes; done += 1024) {
        void *p;
        if (wr_alloc(a, 1024, &p)) return 4;
        memset(p, 0xab, 1024);
      }
      wr_heap_flush(a);
      ready(w);
      printf("allocated %ld bytes; crashing\n", bytes);
      raise(SIGKILL);
    }
    ready(w);
    return wait_term(w);
  }
  if (strcmp(mode, "fork-child") == 0 && argc > 2) {
    wr_worker *w = attach();
    pid_t c = fork();
    if (c == 0) {
      for (;;)
        pause();
    }
    FILE *f = fopen(argv[2], "w");
    fprintf(f, "%d\n", (int)c);
    fclose(f);
    ready(w);
    return wait_term(w);
  }
  if (strcmp(mode, "produce") == 0) {
    wr_worker *w = attach();
    wr_chan *c;
    int rc = wr_worker_out(w, 0, &c);
    if (rc) return fprintf(stderr, "out: %s\n", wr_strerror(rc)), 5;
    ready(w);
    long n = 0;
    while (!g_term) {
      char rec[32];
      int len = snprintf(rec, sizeof rec, "%ld", n);
      rc = wr_chan_send(c, rec, (size_t)len, 100000000);
      if (rc == 0)
        n++;
      else if (rc != -WR_EINTR && rc != -WR_ETIMEDOUT)
        return 6;
    }
    wr_chan_close(c);
    write_count(w, "produced", n);
    wr_worker_detach(w);
    return 0;
  }
  if (strcmp(mode, "consume") == 0) {
    wr_worker *w = attach();
    wr_chan *c;
    int rc = wr_worker_in_named(w, wr_worker_nin(w) ? "nums" : "", &c);
    if (rc) rc = wr_worker_in(w, 0, &c);
    if (rc) return fprintf(stderr, "in: %s\n", wr_strerror(rc)), 5;
    ready(w);
    long n = 0;
    char buf[256];
    for (;;) {
      while (!g_term && access("pause", F_OK) == 0) { /* the test holds the consumer back */
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
      }
      if (g_term && access("pause", F_OK) == 0) break;
      rc = wr_chan_recv(c, buf, sizeof buf, -1);
      if (rc >= 0)
        n++;
      else if (rc == -WR_EOF || (rc == -WR_EINTR && g_term))
        break;
      else if (rc != -WR_EINTR)
        return 6;
    }
    write_count(w, "consumed", n);
    printf("consumed %ld records (%s)\n", n, rc == -WR_EOF ? "end of stream" : "stopped");
    wr_worker_detach(w);
    return 0;
  }
  if (strcmp(mode, "sem-crash") == 0 && argc > 2) {
    wr_worker *w = attach();
    wr_sem *sem;
    int rc = wr_sem_open(wr_worker_arena(w), "disk", &sem);
    if (rc) return fprintf(stderr, "sem: %s\n", wr_strerror(rc)), 5;
    int first = open(argv[2], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (first >= 0) {
      if (wr_sem_acquire(sem, 2, -1)) return 6;
      ready(w);
      raise(SIGKILL);
    }
    rc = wr_sem_try(sem, 2);
    printf("took every permit: %s\n", rc ? wr_strerror(rc) : "yes");
    ready(w);
    wait_term(w);
    return 0;
  }
  if (strcmp(mode, "scribble") == 0 && argc > 2) {
    wr_worker *w = attach();
    wr_arena *a = wr_worker_arena(w);
    uint64_t rng = strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ull + a->incarnation;
    for (int i = 0; i < 20; i++) {
      void *p;
      if (wr_alloc(a, 64 + 3000 * (size_t)i, &p) == 0) memset(p, i, 64);
    }
    wr_chan *c;
    if (wr_worker_nout(w) && wr_worker_out(w, 0, &c) == 0)
      for (int i = 0; i < 4; i++) wr_chan_send(c, "scribble", 8, 0);
    wr_heap_flush(a);
    ready(w);
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    int n = 1 + (int)(rng % 8);
    for (int i = 0; i < n; i++) {
      rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
      uint64_t r = rng * 0x2545F4914F6CDD1Dull;
      size_t room;
      uint8_t *t = scribble_target(a, r, 16, &room);
      if (!t) continue;
      size_t at = (size_t)((r >> 24) % room), len = 1 + (r >> 40) % 16;
      for (size_t k = 0; k < len && at + k < room; k++) t[at + k] = (uint8_t)(r >> (k % 8 * 8));
    }
    printf("scribbled %d times; crashing\n", n);
    raise(SIGKILL);
  }
  if (strcmp(mode, "exec-child") == 0 && argc > 2) {
    wr_worker *w = attach();
    ready(w);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -l /proc/self/fd > '%s'", argv[2]);
    pid_t c = fork();
    if (c == 0) {
      execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
      _exit(127);
    }
    int st;
    if (c > 0) waitpid(c, &st, 0);
    return wait_term(w);
  }
  if (strcmp(mode, "stall") == 0 && argc > 3) {
    wr_worker *w = attach();
    for (int i = 0; i < 64; i++) {
      void *p;
      if (wr_alloc(wr_worker_arena(w), 1024, &p)) return 4;
    }
    wr_heap_flush(wr_worker_arena(w));
    int first = open(argv[3], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (first >= 0) close(first);
    ready(w);
    long ms = atol(argv[2]);
    for (long t = 0; !g_term && (first < 0 || t < ms); t += 20) {
      wr_worker_alive(w);
      struct timespec ts = {0, 20000000};
      nanosleep(&ts, NULL);
    }
    if (g_term) return wait_term(w);
    printf("stalling\n");
    for (volatile unsigned long spin = 0;; spin++) /* stuck: no heartbeat, ever */
      ;
  }
  if (strcmp(mode, "sem-wait") == 0 && argc > 2) {
    wr_worker *w = attach();
    wr_sem *sem;
    int rc = wr_sem_open(wr_worker_arena(w), argv[2], &sem);
    if (rc) return fprintf(stderr, "sem: %s\n", wr_strerror(rc)), 5;
    ready(w);
    while (!g_term) {
      rc = wr_sem_acquire(sem, 1, -1);
      if (rc == 0) wr_sem_release(sem, 1);
      if (rc && rc != -WR_EINTR) return 6;
    }
    wr_sem_close(sem);
    wr_worker_detach(w);
    return 0;
  }
  if (strcmp(mode, "ignore-term") == 0) {
    signal(SIGTERM, SIG_IGN);
    wr_worker *w = attach();
    ready(w);
    for (;;)
      pause();
  }
  fprintf(stderr, "usage: warren-test-worker ready|plain|exit|alloc-crash|fork-child|"
                  "ignore-term|say ...\n");
  return 2;
}
