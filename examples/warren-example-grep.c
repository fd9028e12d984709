/*
 * warren-example-grep: a custom worker written against warren.h, the
 * example of examples/README.md.
 *
 *   warren-example-grep WORD
 *
 * Passes on the records of its input that contain WORD (bytes, case
 * sensitive) and drops the others; at end of stream it closes its output,
 * so the next stage sees end of stream too, and prints what it did.
 */
#include <warren.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) {
  (void)sig;
  stop = 1;
  wr_interrupt(); /* a blocked wr_chan_peek returns -WR_EINTR */
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: warren-example-grep WORD\n");
    return 2;
  }
  const char *word = argv[1];
  size_t wlen = strlen(word);

  /* 1. Attach as the worker the supervisor started (WARREN_* environment). */
  wr_worker *w;
  int rc = wr_worker_attach(&w);
  if (rc) {
    fprintf(stderr, "attach: %s\n", wr_strerror(rc));
    return 1;
  }
  /* 2. Our channels: "in" and "out" of this worker in the config. */
  wr_chan *in, *out;
  if ((rc = wr_worker_in(w, 0, &in)) || (rc = wr_worker_out(w, 0, &out))) {
    fprintf(stderr, "channels: %s\n", wr_strerror(rc));
    return 1;
  }
  signal(SIGTERM, on_term);
  /* 3. Ready: the supervisor starts the workers that depend on this one. */
  wr_worker_ready(w);

  unsigned long seen = 0, kept = 0;
  wr_rec rec;
  while (!stop) {
    /* 4. Two-phase receive: the record stays in the channel (and comes back
     * after a crash) until we release it. */
    rc = wr_chan_peek(in, &rec, -1);
    if (rc == -WR_EINTR) continue;
    if (rc == -WR_EOF) break; /* every producer closed and we drained */
    if (rc) {
      fprintf(stderr, "peek: %s\n", wr_strerror(rc));
      return 1;
    }
    seen++;
    if (memmem(rec.data, rec.len, word, wlen)) {
      /* Records up to the channel's slot size are copied; larger ones would
       * go zero-copy with wr_alloc + wr_chan_send_block. */
      rc = wr_chan_send(out, rec.data, rec.len, -1);
      if (rc == -WR_EINTR) continue; /* not released: we will see it again */
      if (rc) {
        fprintf(stderr, "send: %s\n", wr_strerror(rc));
        return 1;
      }
      kept++;
    }
    wr_chan_release(in, &rec); /* 5. done with it */
  }
  /* 6. End of stream goes downstream. */
  wr_chan_close(out);
  printf("kept %lu of %lu records containing \"%s\"\n", kept, seen, word);
  wr_worker_detach(w);
  return 0;
}
