/*
 * arena.c: creating, attaching and validating the shared mapping.
 *
 * The creator (the supervisor, or a test) builds the layout described in
 * internal.h inside a sealed memfd, initialises every region, and stores
 * the magic last with release order: a process that attaches and sees the
 * magic (acquire) sees a complete arena. Attaching checks magic, version,
 * header size and that every region lies inside the mapping, so a wrong or
 * truncated fd gives a clear error instead of a crash.
 */
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define WR__DEFAULT_SIZE (64ull << 20)

/* Handles of this process get a small id so that each thread can keep one
 * heap cache per attached arena (heap.c). */
static pthread_mutex_t ids_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t ids_used;
#define WR__MAX_HANDLES 16

static int handle_id_get(void) {
  pthread_mutex_lock(&ids_lock);
  int id = -1;
  for (int i = 0; i < WR__MAX_HANDLES; i++)
    if (!(ids_used & (1u << i))) {
      ids_used |= 1u << i;
      id = i;
      break;
    }
  pthread_mutex_unlock(&ids_lock);
  return id;
}

static void handle_id_put(int id) {
  pthread_mutex_lock(&ids_lock);
  ids_used &= ~(1u << id);
  pthread_mutex_unlock(&ids_lock);
}

int wr__robust_init(pthread_mutex_t *m) {
  pthread_mutexattr_t at;
  pthread_mutexattr_init(&at);
  pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(m, &at);
  pthread_mutexattr_destroy(&at);
  return -rc;
}

int wr__robust_lock(pthread_mutex_t *m) {
  int rc = pthread_mutex_lock(m);
  return rc == EOWNERDEAD ? 1 : 0;
}

/* glibc's kind word of a mutex wr__robust_init made (robust, shared). */
static int robust_kind(void) {
  static _Atomic int kind = -1;
  int k = atomic_load(&kind);
  if (k < 0) {
    pthread_mutex_t t;
    wr__robust_init(&t);
    k = t.__data.__kind;
    pthread_mutex_destroy(&t);
    atomic_store(&kind, k);
  }
  return k;
}

int wr__robust_lock_bounded(pthread_mutex_t *m, int64_t patience_ns) {
  /* A scribbled kind (priority-protected, say) makes glibc assert inside
   * the lock call (fuzzer): such a lock is broken before any wait. */
  if (m->__data.__kind != robust_kind()) {
    wr__robust_init(m);
    pthread_mutex_lock(m);
    return 1;
  }
  /* timedlock (CLOCK_REALTIME; a clock step only shortens or stretches the
   * patience) rather than clocklock, which ThreadSanitizer does not know */
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += patience_ns / 1000000000;
  dl.tv_nsec += patience_ns % 1000000000;
  if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
  int rc = pthread_mutex_timedlock(m, &dl);
  if (rc == 0) return 0;
  if (rc == EOWNERDEAD) return 1;
  /* Timed out, or a word so scribbled that the lock refuses it (EDEADLK,
   * ENOTRECOVERABLE, EINVAL): declare it broken, take a fresh one, and wake
   * whoever sleeps on the old word so that they queue on the new one. */
  wr__robust_init(m);
  pthread_mutex_lock(m);
  wr__futex_wake((_Atomic uint32_t *)(void *)m, INT32_MAX);
  return 1;
}

void wr__robust_unlock(pthread_mutex_t *m, bool repaired) {
  if (repaired) pthread_mutex_consistent(m);
  pthread_mutex_unlock(m);
}

void wr__arena_lock(wr_arena *a, pthread_mutex_t *m, void (*repair)(wr_arena *a)) {
  while (a->slot == 0 ? wr__robust_lock_bounded(m, WR__LOCK_PATIENCE_NS) : wr__robust_lock(m)) {
    repair(a);
    wr__robust_unlock(m, true);
  }
}

/* Fill the handle's region pointers from a validated header. */
void wr__handle_map(wr_arena *a) {
  struct wr__header *h = a->hdr;
  a->slots = (struct wr__slot *)(a->base + h->slots_off);
  a->dir = (struct wr__dir_entry *)(a->base + h->dir_off);
  a->lanes = (_Atomic uint64_t *)(a->base + h->lanes_off);
  a->spans = (struct wr__span *)(a->base + h->spans_off);
  a->heap = a->base + h->heap_off;
  a->npages = h->npages;
}

/* Compute the region offsets for an arena of `size` bytes. */
static int layout(struct wr__header *h, uint64_t size) {
  uint64_t off = WR__OSPAGE;
  h->slots_off = off;
  off += WR__ALIGN_UP((uint64_t)WR_MAX_SLOTS * sizeof(struct wr__slot), WR__OSPAGE);
  h->dir_off = off;
  off += WR__ALIGN_UP((uint64_t)WR__DIR_ENTRIES * sizeof(struct wr__dir_entry), WR__OSPAGE);
  h->lanes_off = off;
  off += WR__ALIGN_UP((uint64_t)WR__MAX_LANES * sizeof(uint64_t), WR__OSPAGE);
  h->spans_off = off;
  if (size <= off + WR__PAGE_SIZE) return -WR_EINVAL;
  uint64_t npages = (size - off) / (WR__PAGE_SIZE + sizeof(struct wr__span));
  while (npages > 0 &&
         WR__ALIGN_UP(off + npages * sizeof(struct wr__span), WR__PAGE_SIZE) +
                 npages * WR__PAGE_SIZE >
             size)
    npages--;
  if (npages == 0 || npages > UINT32_MAX / 2) return -WR_EINVAL;
  h->heap_off = WR__ALIGN_UP(off + npages * sizeof(struct wr__span), WR__PAGE_SIZE);
  h->npages = (uint32_t)npages;
  h->max_slots = WR_MAX_SLOTS;
  h->dir_entries = WR__DIR_ENTRIES;
  h->max_lanes = WR__MAX_LANES;
  return 0;
}

int wr__handle_new(int fd, uint64_t size, int prot_creator, wr_arena **out) {
  wr_arena *a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  a->local_id = handle_id_get();
  if (a->local_id < 0) {
    free(a);
    return -WR_EAGAIN;
  }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    handle_id_put(a->local_id);
    free(a);
    return -e;
  }
  a->base = p;
  a->size = size;
  a->fd = fd;
  a->creator = prot_creator;
  a->hdr = p;
  *out = a;
  return 0;
}

int wr_arena_create(const wr_arena_opts *opts, wr_arena **out) {
  uint64_t size = opts && opts->size ? opts->size : WR__DEFAULT_SIZE;
  int backend = opts ? opts->backend : WR_BACKEND_MEMFD;
  if (size < WR__MIN_ARENA || size > WR__MAX_ARENA) return -WR_EINVAL;
  size = WR__ALIGN_UP(size, WR__OSPAGE);
  struct wr__header tmp;
  memset(&tmp, 0, sizeof tmp);
  int rc = layout(&tmp, size);
  if (rc) return rc;

  char *path = NULL;
  int fd = wr__backend_create(backend, opts ? opts->path : NULL, size, &path);
  if (fd < 0) return fd;
  wr_arena *a;
  rc = wr__handle_new(fd, size, 1, &a);
  if (rc) {
    wr__backend_remove(backend, path);
    free(path);
    close(fd);
    return rc;
  }
  a->backend = backend;
  a->path = path;
  struct wr__header *h = a->hdr;
  memcpy(h, &tmp, sizeof tmp);
  h->version = WR__LAYOUT_VERSION;
  h->header_size = sizeof(struct wr__header);
  h->size = size;
  h->creator_pid = getpid();
  h->backend = (uint32_t)backend;
  wr__robust_init(&h->page_lock.m);
  wr__robust_init(&h->dir_lock.m);
  wr__handle_map(a);
  wr__heap_init(a);
  /* The creator is slot 0, incarnation 1. */
  atomic_store(&a->slots[0].incarnation, 1);
  atomic_store(&a->slots[0].pid, getpid());
  atomic_store(&a->slots[0].state, WR_SLOT_LIVE);
  a->slot = 0;
  a->incarnation = 1;
  a->tag = wr__tag_worker(0, 1);
  /* Last: the magic. Pairs with the acquire load in validate(). */
  atomic_store_explicit(&h->magic, WR__MAGIC, memory_order_release);
  *out = a;
  return 0;
}

/* Check a mapped header before trusting any of its offsets. */
int wr__arena_validate(const struct wr__header *h, uint64_t size) {
  if (atomic_load_explicit(&h->magic, memory_order_acquire) != WR__MAGIC) return -WR_EBADARENA;
  if (h->version != WR__LAYOUT_VERSION || h->header_size != sizeof(struct wr__header))
    return -WR_EVERSION;
  if (h->size != size) return -WR_ESIZE;
  struct wr__header want;
  memset(&want, 0, sizeof want);
  if (layout(&want, size) != 0) return -WR_ESIZE;
  if (h->slots_off != want.slots_off || h->dir_off != want.dir_off ||
      h->lanes_off != want.lanes_off || h->spans_off != want.spans_off ||
      h->heap_off != want.heap_off || h->npages != want.npages ||
      h->max_slots != WR_MAX_SLOTS || h->dir_entries != WR__DIR_ENTRIES ||
      h->max_lanes != WR__MAX_LANES)
    return -WR_ECORRUPT;
  return 0;
}

int wr_arena_attach_fd(int fd, wr_arena **out) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if ((uint64_t)st.st_size < sizeof(struct wr__header)) return -WR_EBADARENA;
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dup < 0) return -errno;
  wr_arena *a;
  int rc = wr__handle_new(dup, (uint64_t)st.st_size, 0, &a);
  if (rc) {
    close(dup);
    return rc;
  }
  rc = wr__arena_validate(a->hdr, a->size);
  if (rc) {
    a->tag = 0;
    wr_arena_detach(a);
    return rc;
  }
  wr__handle_map(a);
  a->slot = 0;
  a->tag = 0;
  *out = a;
  return 0;
}

static int env_u32(const char *name, uint32_t *v) {
  const char *s = getenv(name);
  if (!s || !*s) return -WR_ENOENV;
  char *end;
  unsigned long x = strtoul(s, &end, 10);
  if (*end || x > UINT32_MAX) return -WR_EINVAL;
  *v = (uint32_t)x;
  return 0;
}

int wr_arena_attach_env(wr_arena **out) {
  uint32_t fd, slot, inc;
  int rc = env_u32("WARREN_ARENA_FD", &fd);
  if (rc) return rc;
  if ((rc = env_u32("WARREN_SLOT", &slot)) || (rc = env_u32("WARREN_INCARNATION", &inc)))
    return rc == -WR_ENOENV ? -WR_EINVAL : rc;
  wr_arena *a;
  rc = wr_arena_attach_fd((int)fd, &a);
  if (rc) return rc;
  /* The inherited fd is not close-on-exec (uv_spawn placed it); our dup is. */
  close((int)fd);
  /* Die with the supervisor (DESIGN.md "Known traps"): arm first, then check
   * that the supervisor did not die before we armed it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  pid_t sup = a->hdr->creator_pid, parent = getppid();
  /* Parent 1 means orphaned, unless the supervisor itself is PID 1 (a
   * container's init); a parent other than the supervisor is a wrapper. */
  if ((parent == 1 && sup != 1) || (parent != sup && kill(sup, 0) < 0 && errno == ESRCH)) {
    wr_arena_detach(a);
    return -ESRCH;
  }
  rc = wr_slot_enter(a, slot, inc);
  if (rc) {
    wr_arena_detach(a);
    return rc;
  }
  *out = a;
  return 0;
}

void wr_arena_detach(wr_arena *a) {
  if (!a) return;
  if (a->tag) wr__heap_detach(a);
  if (a->creator) wr__backend_detach(a); /* msync a file, unlink a POSIX name */
  free(a->path);
  munmap(a->base, a->size);
  close(a->fd);
  handle_id_put(a->local_id);
  free(a);
}

int wr_arena_fd(const wr_arena *a) { return a->fd; }
uint64_t wr_arena_size(const wr_arena *a) { return a->size; }

void *wr_ptr(const wr_arena *a, wr_off_t off) {
  if (off == 0 || off >= a->size) return NULL;
  return a->base + off;
}

wr_off_t wr_off(const wr_arena *a, const void *ptr) {
  const uint8_t *p = ptr;
  if (!p || p < a->base || p >= a->base + a->size) return 0;
  return (wr_off_t)(p - a->base);
}
