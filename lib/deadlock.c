/*
 * deadlock.c: wr_deadlock_check, a wait-for graph built from the slot
 * table. A live worker that is blocked has recorded the object it waits on
 * in its sync record (wr__wait_mark); the object's holders come from the
 * object itself (mutex and rwlock words, the MVar's holder) or from the
 * slots' held-permit records (semaphores). An edge goes from the waiter to
 * every live holder; a depth-first search returns the first cycle.
 *
 * The graph is a snapshot of a running system: a cycle reported is one
 * that existed (or was forming) while it was read; a real deadlock stays,
 * so a caller that wants certainty checks twice.
 */
#include "sync.h"

#include <stdlib.h>
#include <string.h>

#define MAX_OUT 8

struct node {
  wr_off_t obj;
  int kind;
  uint32_t nout;
  uint16_t out[MAX_OUT];
  uint8_t color; /* 0 white, 1 on the stack, 2 done */
};

static bool slot_live(const wr_arena *a, uint32_t s) {
  return s < WR_MAX_SLOTS && atomic_load(&a->slots[s].state) == WR_SLOT_LIVE;
}

static bool dfs(struct node *g, uint32_t v, uint32_t *stack, uint32_t depth, wr_deadlock *cyc) {
  g[v].color = 1;
  stack[depth] = v;
  for (uint32_t k = 0; k < g[v].nout; k++) {
    uint32_t u = g[v].out[k];
    if (g[u].color == 1) { /* back edge: the cycle is stack[from..depth] */
      uint32_t from = depth;
      while (stack[from] != u)
        from--;
      cyc->n = 0;
      for (uint32_t i = from; i <= depth && cyc->n < WR_DEADLOCK_MAX; i++) {
        uint32_t s = stack[i];
        cyc->slots[cyc->n] = s;
        cyc->objs[cyc->n] = g[s].obj;
        cyc->kinds[cyc->n] = g[s].kind;
        cyc->n++;
      }
      return true;
    }
    if (g[u].color == 0 && dfs(g, u, stack, depth + 1, cyc)) return true;
  }
  g[v].color = 2;
  return false;
}

int wr_deadlock_check(wr_arena *a, wr_deadlock *cyc) {
  struct node *g = calloc(WR_MAX_SLOTS, sizeof *g);
  uint32_t *stack = calloc(WR_MAX_SLOTS, sizeof *stack);
  int found = 0;
  if (!g || !stack) {
    found = -ENOMEM;
    goto out;
  }
  for (uint32_t s = 0; s < WR_MAX_SLOTS; s++) {
    if (!slot_live(a, s)) continue;
    const struct wr__sync_rec *r = wr__sync_rec(a, s);
    wr_off_t obj = atomic_load(&r->wait_obj);
    int kind = (int)atomic_load(&r->wait_kind);
    if (!obj) continue;
    uint32_t h[MAX_OUT], n = 0;
    switch (kind) {
    case WR_KIND_SEM:
      n = wr__sem_holders(a, obj, h, MAX_OUT);
      break;
    case WR_KIND_MUTEX:
    case WR_KIND_RWLOCK:
      n = wr__mutex_holders(a, kind, obj, h, MAX_OUT);
      break;
    case WR_KIND_MVAR:
      n = wr__mvar_holders(a, obj, h, MAX_OUT);
      break;
    default:
      break;
    }
    g[s].obj = obj;
    g[s].kind = kind;
    for (uint32_t i = 0; i < n; i++)
      if (h[i] != s && slot_live(a, h[i])) g[s].out[g[s].nout++] = (uint16_t)h[i];
  }
  for (uint32_t s = 0; s < WR_MAX_SLOTS && !found; s++)
    if (g[s].nout && g[s].color == 0 && dfs(g, s, stack, 0, cyc)) found = 1;
out:
  free(g);
  free(stack);
  return found;
}
