/*
 * test_config.c: the supervisor's config validation (src/supervisor/config.c)
 * as a table of configs, good and bad. Each bad config lists the JSON paths
 * its errors must name (every error at once, not only the first); the
 * last tests run the real `warren check` (argv[1]) on tests/configs/ (argv[2])
 * for its exit codes: 0 for a good config, 2 for a bad one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sup.h"

static const char *g_warren, *g_configs;

#define W(name, extra) "{\"name\":\"" name "\",\"exec\":[\"/bin/true\"]" extra "}"

struct row {
  const char *what;
  const char *json;
  const char *paths[8]; /* error paths expected, in any order; none = must be valid */
};

/* clang-format off */
static const struct row rows[] = {
    {"minimal", "{\"workers\":[" W("a", "") "]}", {NULL}},
    {"pipeline",
     "{\"name\":\"p\",\"heap\":{\"size\":\"8MiB\"},"
     "\"channels\":[{\"name\":\"lines\",\"capacity\":64,\"slot_size\":\"1KiB\"}],"
     "\"semaphores\":[{\"name\":\"disk\",\"value\":2}],"
     "\"workers\":[" W("src", ",\"out\":[\"lines\"]") "," W(
         "snk", ",\"in\":[\"lines\"],\"replicas\":2,\"depends_on\":[\"src\"],"
                "\"restart\":\"always\","
                "\"env\":{\"A\":\"1\"},\"cwd\":\"/\",\"ready\":\"exec\"") "],"
     "\"restart\":{\"strategy\":\"rest_for_one\",\"intensity\":3,\"period_s\":5,"
     "\"on_give_up\":\"exit\"},\"stats_interval_ms\":0}",
     {NULL}},
    {"not json", "{\"workers\": [", {""}},
    {"unknown keys", "{\"wokers\":[],\"workers\":[" W("a", ",\"restrt\":\"always\"") "]}",
     {"wokers", "workers[0].restrt"}},
    {"wrong types",
     "{\"name\":3,\"workers\":[{\"name\":\"a\",\"exec\":\"/bin/true\",\"replicas\":\"2\"}],"
     "\"stats_interval_ms\":\"5\"}",
     {"name", "workers[0].exec", "workers[0].replicas", "stats_interval_ms"}},
    {"sizes",
     "{\"heap\":{\"size\":\"12 parsecs\"},\"channels\":[{\"name\":\"c\",\"slot_size\":\"4\"}],"
     "\"workers\":[" W("a", ",\"out\":[\"c\"]") "," W("b", ",\"in\":[\"c\"]") "]}",
     {"heap.size", "channels[0].slot_size"}},
    {"names clash",
     "{\"channels\":[{\"name\":\"x\"}],\"semaphores\":[{\"name\":\"x\"}],"
     "\"workers\":[" W("a", ",\"out\":[\"x\"]") "," W("a", ",\"in\":[\"x\"]") "]}",
     {"semaphores[0].name", "workers[1].name"}},
    {"bad name", "{\"workers\":[" W("a b", "") "]}", {"workers[0].name"}},
    {"channel ends",
     "{\"channels\":[{\"name\":\"c\"},{\"name\":\"d\"}],"
     "\"workers\":[" W("a", ",\"out\":[\"c\",\"zz\"]") "," W("b", ",\"in\":[\"d\"]") "]}",
     {"workers[0].out[1]", "channels[0]", "channels[1]"}},
    {"deps", "{\"workers\":[" W("a", ",\"depends_on\":[\"nope\",\"a\"]") "]}",
     {"workers[0].depends_on[0]", "workers[0].depends_on[1]"}},
    {"cycle",
     "{\"workers\":[" W("a", ",\"depends_on\":[\"c\"]") "," W("b", ",\"depends_on\":[\"a\"]") "," W(
         "c", ",\"depends_on\":[\"b\"]") "]}",
     {"workers[0].depends_on"}},
    {"exec and cwd",
     "{\"workers\":[{\"name\":\"a\",\"exec\":[\"no-such-program-xyz\"],\"cwd\":\"/nonexistent\"},"
     "{\"name\":\"b\",\"exec\":[]}]}",
     {"workers[0].exec[0]", "workers[0].cwd", "workers[1].exec"}},
    {"enums and ranges",
     "{\"restart\":{\"strategy\":\"all_for_one\",\"intensity\":-1},"
     "\"workers\":[" W("a", ",\"restart\":\"sometimes\",\"replicas\":0,\"ready\":\"soon\"") "]}",
     {"restart.strategy", "restart.intensity", "workers[0].restart", "workers[0].replicas",
      "workers[0].ready"}},
    {"env", "{\"workers\":[" W("a", ",\"env\":{\"WARREN_SLOT\":\"1\",\"X\":2}") "]}",
     {"workers[0].env.WARREN_SLOT", "workers[0].env.X"}},
    {"no workers", "{\"name\":\"x\"}", {"workers"}},
    {"operations",
     "{\"log_dir\":\"logs\",\"log_max_bytes\":\"1MiB\",\"log_files\":3,"
     "\"metrics_listen\":\"127.0.0.1:9464\",\"workers\":[" W(
         "a", ",\"umask\":\"027\",\"nice\":5,\"on_exit\":[\"/bin/true\"],"
              "\"on_give_up\":[\"/bin/true\"],\"rlimits\":{\"nofile\":[64,128],"
              "\"as\":\"1GiB\",\"cpu\":\"unlimited\",\"core\":0}") "]}",
     {NULL}},
    {"bad operations",
     "{\"metrics_listen\":\"0.0.0.0:80\",\"log_files\":-1,\"workers\":[" W(
         "a", ",\"umask\":\"999\",\"nice\":40,\"on_exit\":[],\"user\":\"no-such-user-x\","
              "\"env_file\":\"/nonexistent/env\",\"rlimits\":{\"nofile\":[9,3]}") "]}",
     {"metrics_listen", "log_files", "workers[0].umask", "workers[0].nice", "workers[0].on_exit",
      "workers[0].user", "workers[0].env_file", "workers[0].rlimits.nofile"}},
    {"watchdog", "{\"workers\":[" W("a", ",\"watchdog_s\":1.5") "," W("b", ",\"watchdog_s\":0") "]}",
     {NULL}},
    {"bad watchdog",
     "{\"workers\":[" W("a", ",\"watchdog_s\":-1") "," W("b", ",\"watchdog_s\":\"1s\"") "," W(
         "c", ",\"watchdog_s\":0.01") "]}",
     {"workers[0].watchdog_s", "workers[1].watchdog_s", "workers[2].watchdog_s"}},
};
/* clang-format on */

static bool has_path(const struct cfg_errors *e, const char *path) {
  char want[128];
  snprintf(want, sizeof want, "%s: ", path[0] ? path : "(top)");
  for (int i = 0; i < e->n; i++)
    if (strncmp(e->msg[i], want, strlen(want)) == 0) return true;
  return false;
}

static void test_table(void **state) {
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    struct cfg c;
    struct cfg_errors e;
    int rc = cfg_parse(rows[r].json, "/tmp/t.json", NULL, &c, &e);
    int nwant = 0;
    while (nwant < 8 && rows[r].paths[nwant])
      nwant++;
    for (int i = 0; i < e.n; i++)
      printf("  [%s] %s\n", rows[r].what, e.msg[i]);
    if (nwant == 0) {
      assert_int_equal(rc, 0);
      assert_int_equal(e.n, 0);
    } else {
      assert_int_equal(rc, -1);
      for (int i = 0; i < nwant; i++) {
        if (!has_path(&e, rows[r].paths[i]))
          fail_msg("%s: no error at %s", rows[r].what, rows[r].paths[i]);
      }
      assert_int_equal(e.n, nwant); /* and nothing else */
    }
    cfg_errors_free(&e);
    cfg_free(&c);
  }
}

static void test_defaults(void **state) {
  struct cfg c;
  struct cfg_errors e;
  const char *j = "{\"channels\":[{\"name\":\"c\"}],\"workers\":[" W(
      "a", ",\"out\":[\"c\"],\"replicas\":2") "," W("b", ",\"in\":[\"c\"],\"replicas\":3") "]}";
  assert_int_equal(cfg_parse(j, "/etc/x/demo.json", NULL, &c, &e), 0);
  assert_string_equal(c.name, "demo");
  assert_string_equal(c.dir, "/etc/x");
  assert_int_equal(c.heap_size, 64ull << 20);
  assert_int_equal(c.strategy, STRAT_ONE_FOR_ONE);
  assert_int_equal(c.intensity, 5);
  assert_true(c.period_s == 10);
  assert_int_equal(c.backoff_initial_ms, 100);
  assert_int_equal(c.backoff_max_ms, 30000);
  assert_int_equal(c.stats_interval_ms, 5000);
  assert_true(c.workers[0].stop_timeout_s == 10 && c.workers[0].start_timeout_s == 30);
  assert_true(c.workers[0].watchdog_s == 0); /* off */
  assert_int_equal(c.workers[0].policy, POLICY_ON_FAILURE);
  assert_int_equal(c.workers[0].ready, READY_NOTIFY); /* has channels: a libwarren worker */
  assert_int_equal(c.chans[0].producers, 2);
  assert_int_equal(c.chans[0].consumers, 3);
  assert_int_equal(c.workers[1].in_idx[0], 0);
  assert_string_equal(c.workers[0].path, "/bin/true");
  cfg_free(&c);
  uint64_t v;
  assert_int_equal(cfg_parse_size("256MiB", &v), 0);
  assert_int_equal(v, 256ull << 20);
  assert_int_equal(cfg_parse_size("1.5KiB", &v), 0);
  assert_int_equal(v, 1536);
  assert_int_equal(cfg_parse_size("2 GB", &v), 0);
  assert_int_equal(v, 2000000000ull);
  assert_int_equal(cfg_parse_size("3 furlongs", &v), -1);
  assert_int_equal(cfg_parse_size("-1MiB", &v), -1);
}

static void test_start_order(void **state) {
  struct cfg c;
  struct cfg_errors e;
  const char *j = "{\"workers\":[" W("c", ",\"depends_on\":[\"b\"]") "," W(
      "b", ",\"depends_on\":[\"a\"]") "," W("a", "") "]}";
  assert_int_equal(cfg_parse(j, "x.json", NULL, &c, &e), 0);
  assert_int_equal(c.start_order[0], 2);
  assert_int_equal(c.start_order[1], 1);
  assert_int_equal(c.start_order[2], 0);
  cfg_free(&c);
}

static int run_check(const char *file) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", g_configs, file);
  pid_t p = fork();
  if (p == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(g_warren, "warren", "check", path, (char *)NULL);
    _exit(127);
  }
  int st;
  waitpid(p, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_exit_codes(void **state) {
  if (!g_warren) skip();
  assert_int_equal(run_check("bad.json"), 2);
  assert_int_equal(run_check("missing-file.json"), 2);
  assert_int_equal(run_check("sleepers.json"), 0);
}

int main(int argc, char **argv) {
  g_warren = argc > 1 ? argv[1] : NULL;
  g_configs = argc > 2 ? argv[2] : ".";
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_start_order),
      cmocka_unit_test(test_exit_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
