/*
 * fuzz_config.c: libFuzzer harness for the config parser (config.c). Any
 * bytes go to cfg_parse as the text of a config; it must return 0 or -1
 * with its error list, never crash, leak or read out of bounds (ASan,
 * UBSan). Seeds: tests/configs/ and tests/configs/bad/. Built and run by
 * scripts/fuzz.sh (clang only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  struct cfg c;
  struct cfg_errors e;
  cfg_parse(text, "/nonexistent/fuzz.json", NULL, &c, &e);
  cfg_free(&c);
  cfg_errors_free(&e);
  free(text);
  return 0;
}
