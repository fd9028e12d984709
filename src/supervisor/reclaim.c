/*
 * reclaim.c: what the supervisor does on every worker exit, before the
 * replacement may start (DESIGN.md "The heap", "Supervisor"):
 *
 *   mark dead -> channels (half-done sends/receives rolled forward or back,
 *   unreleased records redelivered, ring contents re-tagged to their lane)
 *   -> semaphores, mutexes, MVars -> heap (every block still tagged with
 *   the incarnation) -> release the slot -> one heap.reclaim event.
 *
 * Channels come first so that "ring contents win": a block published into
 * a ring is the lane's before the heap frees the dead worker's blocks.
 * Every step is idempotent, so a failed step is logged and the rest run.
 */
#include "sup.h"

#include <cjson/cJSON.h>

void reclaim_inst(struct sup *s, struct inst *in) {
  wr_arena *a = s->arena;
  uint64_t redelivered = 0, permits = 0;
  wr_reclaim_report rep = {0};
  int rc_dead = wr_slot_mark_dead(a, in->slot, in->incarnation);
  int rc_chan = objects_chan_reclaim(a, in->slot, in->incarnation, &redelivered);
  int rc_sync = objects_sync_reclaim(a, in->slot, in->incarnation, &permits);
  int rc_heap = wr_heap_reclaim(a, in->slot, in->incarnation, &rep);
  int rc_rel = wr_slot_release(a, in->slot, in->incarnation);
  in->reclaimed_bytes += rep.bytes;
  in->reclaimed_blocks += rep.blocks;
  in->redelivered += redelivered;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "worker", in->label);
  cJSON_AddNumberToObject(o, "slot", in->slot);
  cJSON_AddNumberToObject(o, "incarnation", in->incarnation);
  cJSON_AddNumberToObject(o, "blocks", (double)rep.blocks);
  cJSON_AddNumberToObject(o, "bytes", (double)rep.bytes);
  cJSON_AddNumberToObject(o, "permits", (double)permits);
  cJSON_AddNumberToObject(o, "redelivered", (double)redelivered);
  int rc = rc_dead ? rc_dead : rc_chan ? rc_chan : rc_sync ? rc_sync : rc_heap ? rc_heap : rc_rel;
  if (rc) cJSON_AddStringToObject(o, "error", wr_strerror(rc));
  log_event(rc ? LOG_ERROR : LOG_INFO, "heap.reclaim", o);
  integrity_check(s, in->label);
}
