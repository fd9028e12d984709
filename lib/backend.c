/*
 * backend.c: where an arena's memory comes from, beside the default memfd.
 *
 * - POSIX: shm_open with O_EXCL under a given name or a unique
 *   "/warren.<pid>.<n>". The creator's pid is in the header; the creator's
 *   clean detach unlinks the name; wr_arena_clean_stale unlinks "/warren.*"
 *   segments whose creator is dead (the pid in the header, or in the name
 *   when the header was never finished).
 * - FILE: a regular file, mapped shared, flock'ed by the run that owns it.
 *   wr_arena_checkpoint and the owner's clean detach msync it. The next run
 *   takes it over with wr_arena_attach_path: it validates the header before
 *   trusting any offset, resets the robust process-shared locks (a lock word
 *   from a previous boot means nothing), and reclaims every worker slot of
 *   the previous run exactly as after a crash, so named objects and their
 *   contents survive while everything the dead processes held is returned.
 */
#include "sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static _Atomic uint32_t posix_seq;

static int posix_name_ok(const char *n) {
  size_t len = strnlen(n, 256);
  return n[0] == '/' && len > 1 && len < 256 && !strchr(n + 1, '/');
}

int wr__backend_create(int backend, const char *path, uint64_t size, char **out_path) {
  int fd;
  char name[256];
  *out_path = NULL;
  switch (backend) {
  case WR_BACKEND_MEMFD:
    fd = memfd_create("warren-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    return fd;
  case WR_BACKEND_POSIX:
    if (path) {
      if (!posix_name_ok(path)) return -WR_EINVAL;
      snprintf(name, sizeof name, "%s", path);
    } else {
      snprintf(name, sizeof name, "/warren.%d.%u", (int)getpid(),
               atomic_fetch_add(&posix_seq, 1) + 1);
    }
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    break;
  case WR_BACKEND_FILE:
    if (!path || !*path) return -WR_EINVAL;
    snprintf(name, sizeof name, "%s", path);
    fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    break;
  default:
    return -WR_EINVAL;
  }
  if (fd < 0) return -errno;
  int rc = 0;
  if (backend == WR_BACKEND_FILE && flock(fd, LOCK_EX | LOCK_NB) < 0) rc = -errno;
  if (!rc && ftruncate(fd, (off_t)size) < 0) rc = -errno;
  if (!rc && !(*out_path = strdup(name))) rc = -ENOMEM;
  if (rc) {
    wr__backend_remove(backend, name);
    close(fd);
    return rc;
  }
  return fd;
}

void wr__backend_remove(int backend, const char *path) {
  if (!path) return;
  if (backend == WR_BACKEND_POSIX) shm_unlink(path);
  if (backend == WR_BACKEND_FILE) unlink(path);
}

void wr__backend_detach(wr_arena *a) {
  if (a->backend == WR_BACKEND_FILE) msync(a->base, a->size, MS_SYNC);
  if (a->backend == WR_BACKEND_POSIX && a->path) shm_unlink(a->path);
}

int wr_arena_checkpoint(wr_arena *a) {
  if (a->backend != WR_BACKEND_FILE) return 0;
  return msync(a->base, a->size, MS_SYNC) < 0 ? -errno : 0;
}

/* The previous run's workers are all dead: reclaim each as after a crash. */
static void take_over(wr_arena *a) {
  struct wr__header *h = a->hdr;
  wr__robust_init(&h->page_lock.m);
  wr__robust_init(&h->dir_lock.m);
  wr__dir_repair(a);
  for (uint32_t s = 0; s < WR_MAX_SLOTS; s++) {
    struct wr__slot *sl = &a->slots[s];
    if (atomic_load(&sl->state) == WR_SLOT_FREE) continue;
    uint32_t inc = atomic_load(&sl->incarnation);
    atomic_store(&sl->state, WR_SLOT_DEAD);
    wr_sync_reclaim(a, s, inc, NULL);
    wr_heap_reclaim(a, s, inc, NULL);
    atomic_store(&sl->intent.op, WR__OP_NONE);
    atomic_store(&sl->pid, 0);
    atomic_store(&sl->state, WR_SLOT_FREE);
  }
  uint32_t inc = atomic_load(&a->slots[0].incarnation) + 1;
  if ((inc & WR__INC_MASK) == 0) inc++;
  atomic_store(&a->slots[0].incarnation, inc);
  atomic_store(&a->slots[0].pid, getpid());
  atomic_store(&a->slots[0].state, WR_SLOT_LIVE);
  h->creator_pid = getpid();
  a->slot = 0;
  a->incarnation = inc;
  a->tag = wr__tag_worker(0, inc);
}

int wr_arena_attach_path(int backend, const char *path, wr_arena **out) {
  if (!path) return -WR_EINVAL;
  int fd;
  if (backend == WR_BACKEND_POSIX) {
    if (!posix_name_ok(path)) return -WR_EINVAL;
    fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = wr_arena_attach_fd(fd, out);
    close(fd);
    return rc;
  }
  if (backend != WR_BACKEND_FILE) return -WR_EINVAL;
  fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = 0;
  struct stat st;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0)
    rc = errno == EWOULDBLOCK ? -WR_EAGAIN : -errno;
  else if (fstat(fd, &st) < 0)
    rc = -errno;
  else if ((uint64_t)st.st_size < sizeof(struct wr__header))
    rc = -WR_EBADARENA;
  else if ((uint64_t)st.st_size > WR__MAX_ARENA)
    rc = -WR_ESIZE;
  wr_arena *a = NULL;
  if (!rc) rc = wr__handle_new(fd, (uint64_t)st.st_size, 1, &a);
  if (rc) {
    close(fd);
    return rc;
  }
  rc = wr__arena_validate(a->hdr, a->size);
  if (!rc && a->hdr->backend != WR_BACKEND_FILE) rc = -WR_EBADARENA;
  if (!rc && !(a->path = strdup(path))) rc = -ENOMEM;
  if (rc) {
    a->creator = 0;
    wr_arena_detach(a);
    return rc;
  }
  a->backend = WR_BACKEND_FILE;
  wr__handle_map(a);
  take_over(a);
  *out = a;
  return 0;
}

/* Creator pid of a "/warren.*" segment: from its header, else its name. */
static int stale_pid(const char *name) {
  int pid = 0;
  unsigned n;
  if (sscanf(name, "warren.%d.%u", &pid, &n) != 2) pid = 0;
  char path[300];
  snprintf(path, sizeof path, "/%s", name);
  int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return pid;
  struct stat st;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(struct wr__header)) {
    struct wr__header *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
    if (h != MAP_FAILED) {
      if (atomic_load(&h->magic) == WR__MAGIC && h->creator_pid > 0) pid = h->creator_pid;
      munmap(h, sizeof *h);
    }
  }
  close(fd);
  return pid;
}

int wr_arena_clean_stale(unsigned *removed) {
  unsigned n = 0;
  DIR *d = opendir("/dev/shm");
  if (!d) return -errno;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "warren.", 7) != 0) continue;
    int pid = stale_pid(e->d_name);
    if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
      char path[300];
      snprintf(path, sizeof path, "/%s", e->d_name);
      if (shm_unlink(path) == 0) n++;
    }
  }
  closedir(d);
  if (removed) *removed = n;
  return 0;
}
