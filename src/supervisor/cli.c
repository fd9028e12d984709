/*
 * cli.c: `warren`'s command line: run, check, status, stats, stop, restart,
 * reload, events, top.
 *
 * Exit codes (DESIGN.md): 0 clean stop / success, 1 runtime failure (and
 * `status` while a worker is not ready), 2 bad config or usage. The client
 * commands pick a run by --socket PATH, or --name NAME (the socket
 * NAME.sock in the run directory), or the only socket there.
 */
#include "sup.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: warren [--log-format text|json] COMMAND [ARGS]\n"
    "\n"
    "  run CONFIG          start the pipeline CONFIG describes and supervise it\n"
    "  check CONFIG        validate CONFIG; print every error with its JSON path\n"
    "  status [--json]     state of each worker (exit 1 while any is not ready)\n"
    "  stats [--json|--prometheus]  heap and channel statistics\n"
    "  stop                stop the run gracefully\n"
    "  restart WORKER      restart WORKER now (resets its backoff and crashloop)\n"
    "  reload              re-read the config; restart only what changed (also SIGHUP)\n"
    "  events [--json]     stream the run's events until it ends\n"
    "  top                 live view of workers and channels (q quits)\n"
    "\n"
    "options: --log-format text|json (run), --name NAME or --socket PATH (client\n"
    "commands), --json, --help, --version\n"
    "  --chaos SEED[:RATE] (run): SIGKILL a random worker RATE times a second\n"
    "exit codes: 0 clean stop, 1 runtime failure, 2 bad config or usage\n";

static int usage(int code) {
  fputs(usage_text, code ? stderr : stdout);
  return code;
}

static void self_dir(char *buf, size_t len) {
  ssize_t n = readlink("/proc/self/exe", buf, len - 1);
  buf[n > 0 ? n : 0] = 0;
  char *slash = strrchr(buf, '/');
  if (slash) *slash = 0;
}

static int load(const char *file, struct cfg *c) {
  char dir[4096];
  self_dir(dir, sizeof dir);
  struct cfg_errors e;
  if (cfg_load(file, dir, c, &e) == 0) return 0;
  for (int i = 0; i < e.n; i++)
    fprintf(stderr, "%s: %s\n", file, e.msg[i]);
  fprintf(stderr, "%s: %d error%s\n", file, e.n, e.n == 1 ? "" : "s");
  cfg_errors_free(&e);
  cfg_free(c);
  return SUP_EXIT_USAGE;
}

/* The socket of the run to talk to. */
static int pick_socket(const char *name, const char *sock, char *buf, size_t len) {
  if (sock) {
    snprintf(buf, len, "%s", sock);
    return 0;
  }
  if (name) return ctl_default_path(name, buf, len);
  char dir[256];
  int rc = ctl_default_path(NULL, dir, sizeof dir);
  if (rc) return rc;
  DIR *d = opendir(dir);
  int found = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n > 5 && strcmp(e->d_name + n - 5, ".sock") == 0) {
      if (found++ == 0 && snprintf(buf, len, "%s/%s", dir, e->d_name) >= (int)len) found = 2;
    }
  }
  if (d) closedir(d);
  if (found == 1) return 0;
  fprintf(stderr, "warren: %s in %s; pick one with --name or --socket\n",
          found ? "several runs" : "no run", dir);
  return -ENOENT;
}

/* The HEARTBEAT column ("0.3s/1s": since the last heartbeat / watchdog_s)
 * only when some worker has a watchdog. */
static void print_status(const cJSON *r) {
  const cJSON *ws = cJSON_GetObjectItem(r, "workers");
  bool wd = false;
  for (const cJSON *w = ws ? ws->child : NULL; w; w = w->next)
    wd = wd || cJSON_GetObjectItem(w, "watchdog_s");
  printf("%s (pid %d): %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(r, "name")),
         (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "pid")),
         cJSON_GetStringValue(cJSON_GetObjectItem(r, "state")));
  printf("  %-24s %-10s %8s %9s%s\n", "WORKER", "STATE", "PID", "RESTARTS",
         wd ? "  HEARTBEAT" : "");
  for (const cJSON *w = ws ? ws->child : NULL; w; w = w->next) {
    char hb[48] = "";
    const cJSON *age = cJSON_GetObjectItem(w, "heartbeat_age_s");
    if (wd && cJSON_IsNumber(age))
      snprintf(hb, sizeof hb, "  %.1fs/%gs", age->valuedouble,
               cJSON_GetNumberValue(cJSON_GetObjectItem(w, "watchdog_s")));
    else if (wd)
      snprintf(hb, sizeof hb, "  -");
    printf("  %-24s %-10s %8d %9d%s\n", cJSON_GetStringValue(cJSON_GetObjectItem(w, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItem(w, "state")),
           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(w, "pid")),
           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(w, "restarts")), hb);
  }
}

static void print_stats(const cJSON *r) {
  const cJSON *h = cJSON_GetObjectItem(r, "heap");
  printf("heap: %.0f bytes in %.0f blocks (baseline %.0f), workers %.0f, lanes %.0f, "
         "names %.0f; pages %.0f in use (hwm %.0f); reclaimed %.0f blocks / %.0f bytes; "
         "check %s\n",
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "bytes")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "blocks")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "baseline_bytes")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "worker_bytes")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "lane_bytes")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "name_bytes")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "pages_in_use")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "pages_hwm")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "reclaimed_blocks")),
         cJSON_GetNumberValue(cJSON_GetObjectItem(h, "reclaimed_bytes")),
         cJSON_GetStringValue(cJSON_GetObjectItem(h, "check")));
  const cJSON *ch = cJSON_GetObjectItem(r, "channels");
  for (const cJSON *l = ch ? ch->child : NULL; l; l = l->next) {
    char *s = cJSON_PrintUnformatted(l);
    printf("channel: %s\n", s);
    free(s);
  }
}

static int client(const char *cmd, const char *worker, const char *name, const char *sock,
                  bool json) {
  char path[256];
  if (pick_socket(name, sock, path, sizeof path)) return SUP_EXIT_FAIL;
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "cmd", cmd);
  if (worker) cJSON_AddStringToObject(req, "worker", worker);
  int err = 0;
  cJSON *r = ctl_request(path, req, &err);
  if (!r) {
    fprintf(stderr, "warren: %s: %s\n", path, strerror(-err));
    return SUP_EXIT_FAIL;
  }
  int code = SUP_EXIT_OK;
  if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
    fprintf(stderr, "warren: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")));
    code = SUP_EXIT_FAIL;
  } else if (json) {
    char *s = cJSON_PrintUnformatted(r);
    puts(s);
    free(s);
  } else if (strcmp(cmd, "status") == 0) {
    print_status(r);
  } else if (strcmp(cmd, "stats") == 0) {
    print_status(r);
    print_stats(r);
  } else if (strcmp(cmd, "metrics") == 0) {
    fputs(cJSON_GetStringValue(cJSON_GetObjectItem(r, "text")), stdout);
  } else if (strcmp(cmd, "reload") == 0) {
    static const char *const parts[] = {"restart", "add", "remove", "rebuild"};
    printf("reload:");
    for (int i = 0; i < 4; i++) {
      char *v = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, parts[i]));
      printf(" %s %s", parts[i], v);
      free(v);
    }
    printf(" unchanged %d\n", (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "unchanged")));
  }
  if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
    const cJSON *errs = cJSON_GetObjectItem(r, "errors");
    for (const cJSON *e = errs ? errs->child : NULL; e; e = e->next)
      fprintf(stderr, "  %s\n", e->valuestring);
    if (errs) code = SUP_EXIT_USAGE; /* a bad config, as `warren check` */
  }
  if (code == 0 && strcmp(cmd, "status") == 0 && !cJSON_IsTrue(cJSON_GetObjectItem(r, "all_ready")))
    code = SUP_EXIT_FAIL;
  cJSON_Delete(r);
  return code;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {"log-format", required_argument, NULL, 'l'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"name", required_argument, NULL, 'n'},
                                       {"socket", required_argument, NULL, 's'},
                                       {"prometheus", no_argument, NULL, 'P'},
                                       {"chaos", required_argument, NULL, 'C'},
                                       {NULL, 0, NULL, 0}};
  bool json = false, log_json_fmt = false, prom = false;
  const char *name = NULL, *sock = NULL, *chaos = NULL;
  int c;
  /* Options may come before or after the command ("+" is not used). */
  while ((c = getopt_long(argc, argv, "hVjn:s:", opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      return usage(0);
    case 'V':
      printf("warren %s (libwarren %s)\n", WARREN_VERSION, wr_version());
      return 0;
    case 'l':
      if (strcmp(optarg, "json") == 0)
        log_json_fmt = true;
      else if (strcmp(optarg, "text") != 0)
        return fprintf(stderr, "warren: --log-format must be text or json\n"), SUP_EXIT_USAGE;
      break;
    case 'j':
      json = true;
      break;
    case 'n':
      name = optarg;
      break;
    case 's':
      sock = optarg;
      break;
    case 'P':
      prom = true;
      break;
    case 'C':
      chaos = optarg;
      break;
    default:
      return usage(SUP_EXIT_USAGE);
    }
  }
  if (optind >= argc) return usage(SUP_EXIT_USAGE);
  const char *cmd = argv[optind];
  int nargs = argc - optind - 1;
  char **args = argv + optind + 1;
  log_init(log_json_fmt);
  setvbuf(stdout, NULL, _IOLBF, 0);

  if (strcmp(cmd, "check") == 0 || strcmp(cmd, "run") == 0) {
    if (nargs != 1) return usage(SUP_EXIT_USAGE);
    struct cfg cf;
    int rc = load(args[0], &cf);
    if (rc) return rc;
    if (strcmp(cmd, "check") == 0) {
      int n = 0;
      for (int i = 0; i < cf.nworkers; i++)
        n += cf.workers[i].replicas;
      printf("%s: ok (%d workers, %d processes, %d channels, %d semaphores)\n", args[0],
             cf.nworkers, n, cf.nchans, cf.nsems);
    } else if (chaos && chaos_parse(chaos, &cf.chaos_seed, &cf.chaos_rate)) {
      fprintf(stderr, "warren: --chaos SEED[:RATE] (kills a second, 0 < RATE <= 1000)\n");
      rc = SUP_EXIT_USAGE;
    } else {
      sdnotify_init();
      rc = sup_run(&cf, sock);
    }
    cfg_free(&cf);
    return rc;
  }
  if (strcmp(cmd, "status") == 0 || strcmp(cmd, "stats") == 0 || strcmp(cmd, "stop") == 0 ||
      strcmp(cmd, "reload") == 0) {
    if (nargs != 0) return usage(SUP_EXIT_USAGE);
    if (prom && strcmp(cmd, "stats") == 0) return client("metrics", NULL, name, sock, false);
    return client(cmd, NULL, name, sock, json);
  }
  if (strcmp(cmd, "events") == 0 || strcmp(cmd, "top") == 0) {
    if (nargs != 0) return usage(SUP_EXIT_USAGE);
    char path[256];
    if (pick_socket(name, sock, path, sizeof path)) return SUP_EXIT_FAIL;
    return cmd[0] == 'e' ? events_client(path, json) : top_client(path);
  }
  if (strcmp(cmd, "restart") == 0) {
    if (nargs != 1) return usage(SUP_EXIT_USAGE);
    return client(cmd, args[0], name, sock, json);
  }
  fprintf(stderr, "warren: unknown command \"%s\"\n", cmd);
  return usage(SUP_EXIT_USAGE);
}
