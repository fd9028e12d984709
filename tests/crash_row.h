/*
 * crash_row.h: the one row format every crash matrix prints, so that
 * tests/crash_matrix.py can gather the matrices of all modules into the
 * lib-wide table (point, kills, leaked bytes, lost permits, lost records).
 * A matrix prints its row with the values it measured, then asserts them:
 * a non-zero cell shows in the table even when the binary fails.
 */
#ifndef WR_TEST_CRASH_ROW_H
#define WR_TEST_CRASH_ROW_H

#include <stdint.h>
#include <stdio.h>

#include "internal.h"

static inline void crash_row(const char *point, int kills, uint64_t leaked_bytes,
                             uint64_t lost_permits, uint64_t lost_records) {
  printf("crash-row %s %d %llu %llu %llu\n", point, kills, (unsigned long long)leaked_bytes,
         (unsigned long long)lost_permits, (unsigned long long)lost_records);
  fflush(stdout);
}

/* Heap bytes a dead worker still owns after its reclaim (must be 0). */
#define tl_dead_bytes(a, c) wr_heap_bytes_owned((a), wr__tag_worker((c)->slot, (c)->inc))

/* Every crash point the library knows, so that the runner can name the
 * ones no matrix covers. */
static inline void crash_points_list(void) {
  for (const char *const *p = wr_crash_points(); *p; p++) printf("crash-point %s\n", *p);
  fflush(stdout);
}

#endif
