/*
 * worker.c: the worker side of a supervised run.
 *
 * The supervisor describes each process it starts in the environment:
 * WARREN_ARENA_FD / WARREN_SLOT / WARREN_INCARNATION (the arena and this
 * incarnation, see wr_arena_attach_env), WARREN_WORKER and WARREN_REPLICA
 * (who it is), WARREN_IN / WARREN_OUT ("chan@index,chan@index": its
 * channels and its lane index in each) and WARREN_NOTIFY (the abstract
 * unix datagram socket where readiness is announced, sd_notify style).
 * wr_worker_attach reads it all once; the channel handles are opened on
 * first use and closed with the worker handle. wr_worker_alive is the
 * explicit watchdog heartbeat (the slot's counter, internal.h wr__beat).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WR__WORKER_CHANS 32

struct wr__wchan {
  char name[WR_NAME_MAX];
  uint32_t index;
  wr_chan *h;
};

struct wr_worker {
  wr_arena *arena;
  char name[WR_NAME_MAX];
  uint32_t replica;
  uint32_t nin, nout;
  struct wr__wchan in[WR__WORKER_CHANS], out[WR__WORKER_CHANS];
};

/* Parse "a@0,b@3" into v; -WR_EINVAL on a malformed list. */
static int parse_chans(const char *s, struct wr__wchan *v, uint32_t *n) {
  *n = 0;
  while (s && *s) {
    size_t len = strcspn(s, ",");
    const char *at = memchr(s, '@', len);
    if (!at || at == s || (size_t)(at - s) >= WR_NAME_MAX || *n >= WR__WORKER_CHANS)
      return -WR_EINVAL;
    memcpy(v[*n].name, s, (size_t)(at - s));
    v[*n].name[at - s] = 0;
    char *end;
    unsigned long i = strtoul(at + 1, &end, 10);
    if (end != s + len || i > UINT32_MAX) return -WR_EINVAL;
    v[(*n)++].index = (uint32_t)i;
    s += len + (s[len] == ',');
  }
  return 0;
}

int wr_worker_attach(wr_worker **out) {
  wr_worker *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  const char *name = getenv("WARREN_WORKER");
  const char *rep = getenv("WARREN_REPLICA");
  int rc = 0;
  if (!name || !rep) rc = -WR_ENOENV;
  if (!rc && strlen(name) >= WR_NAME_MAX) rc = -WR_ENAMETOOLONG;
  if (!rc) {
    snprintf(w->name, sizeof w->name, "%s", name);
    w->replica = (uint32_t)strtoul(rep, NULL, 10);
    rc = parse_chans(getenv("WARREN_IN"), w->in, &w->nin);
  }
  if (!rc) rc = parse_chans(getenv("WARREN_OUT"), w->out, &w->nout);
  if (!rc) rc = wr_arena_attach_env(&w->arena);
  if (rc) {
    free(w);
    return rc;
  }
  *out = w;
  return 0;
}

wr_arena *wr_worker_arena(const wr_worker *w) { return w->arena; }
const char *wr_worker_name(const wr_worker *w) { return w->name; }
uint32_t wr_worker_replica(const wr_worker *w) { return w->replica; }
uint32_t wr_worker_nin(const wr_worker *w) { return w->nin; }
uint32_t wr_worker_nout(const wr_worker *w) { return w->nout; }

static int chan_get(wr_worker *w, struct wr__wchan *c, int role, wr_chan **out) {
  if (!c->h) {
    int rc = wr_chan_open(w->arena, c->name, role, c->index, &c->h);
    if (rc) return rc;
  }
  *out = c->h;
  return 0;
}

int wr_worker_in(wr_worker *w, uint32_t i, wr_chan **out) {
  if (i >= w->nin) return -WR_EINVAL;
  return chan_get(w, &w->in[i], WR_CONSUMER, out);
}

int wr_worker_out(wr_worker *w, uint32_t i, wr_chan **out) {
  if (i >= w->nout) return -WR_EINVAL;
  return chan_get(w, &w->out[i], WR_PRODUCER, out);
}

int wr_worker_in_named(wr_worker *w, const char *name, wr_chan **out) {
  for (uint32_t i = 0; i < w->nin; i++)
    if (strcmp(w->in[i].name, name) == 0) return chan_get(w, &w->in[i], WR_CONSUMER, out);
  return -WR_ENOENT;
}

int wr_worker_out_named(wr_worker *w, const char *name, wr_chan **out) {
  for (uint32_t i = 0; i < w->nout; i++)
    if (strcmp(w->out[i].name, name) == 0) return chan_get(w, &w->out[i], WR_PRODUCER, out);
  return -WR_ENOENT;
}

int wr_worker_ready(wr_worker *w) {
  const char *n = getenv("WARREN_NOTIFY");
  if (!n || !*n) return -WR_ENOENV;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len = strlen(n);
  if (len >= sizeof sa.sun_path) return -WR_ENAMETOOLONG;
  memcpy(sa.sun_path, n, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0; /* abstract namespace */
  char msg[96];
  int m = snprintf(msg, sizeof msg, "READY=1\nWARREN_SLOT=%u\nWARREN_INCARNATION=%u\n",
                   w->arena->slot, w->arena->incarnation);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = 0;
  if (sendto(fd, msg, (size_t)m, 0, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
    rc = -errno;
  close(fd);
  return rc;
}

void wr_worker_alive(wr_worker *w) { wr__beat(&w->arena->slots[w->arena->slot].heartbeat); }

void wr_worker_detach(wr_worker *w) {
  if (!w) return;
  for (uint32_t i = 0; i < w->nin; i++)
    if (w->in[i].h) wr_chan_detach(w->in[i].h);
  for (uint32_t i = 0; i < w->nout; i++)
    if (w->out[i].h) wr_chan_detach(w->out[i].h);
  wr_arena_detach(w->arena);
  free(w);
}
