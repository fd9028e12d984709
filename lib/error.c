/*
 * error.c: names and texts of error codes. The table is WR_ERRNO_MAP in
 * warren.h; system errno values fall through to libc's own descriptions.
 */
#include "internal.h"

#include <string.h>

const char *wr_version(void) { return "0.1.0"; }

const char *wr_strerror(int err) {
  if (err < 0) err = -err;
  switch (err) {
#define WR__ERR_TEXT(name, value, text) \
  case (value):                         \
    return text;
    WR_ERRNO_MAP(WR__ERR_TEXT)
#undef WR__ERR_TEXT
  default:
    break;
  }
  const char *s = strerrordesc_np(err);
  return s ? s : "unknown error";
}

const char *wr_err_name(int err) {
  if (err < 0) err = -err;
  switch (err) {
#define WR__ERR_NAME(name, value, text) \
  case (value):                         \
    return "WR_" #name;
    WR_ERRNO_MAP(WR__ERR_NAME)
#undef WR__ERR_NAME
  default:
    break;
  }
  const char *s = strerrorname_np(err);
  return s ? s : "unknown";
}
