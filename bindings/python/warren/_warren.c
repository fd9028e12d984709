/*
 * _warren.c: the per-record path of the Python binding, as a C extension.
 *
 * The package (warren/__init__.py) does everything through ctypes except
 * what runs once per record: a ctypes call costs 130-190 ns, as much as a
 * pure-Python shared-memory ring spends on a whole record, so send, recv,
 * their batch forms and the zero-copy peek live here. Each function takes
 * the wr_chan handle as an integer (the address ctypes got from
 * wr_chan_open / wr_worker_in) and raises what the package's error factory
 * (set_error_factory) builds from a -WR_E code, so both paths raise the same
 * exception classes.
 *
 * Waits: each call first tries without waiting, holding the GIL; when it
 * would block it releases the GIL, polls for up to 50 us (set_spin_ns: a
 * Python peer answers in microseconds, not nanoseconds), then sleeps on the
 * channel's futex in slices of 50 ms, checking for Python signals
 * (KeyboardInterrupt) between slices. An idle worker sleeps.
 *
 * Zero-copy: peek() and peek_batch() return memoryviews over the record in
 * the ring (or its heap block). release() releases the views first, so a
 * view used after its record was released raises ValueError instead of
 * reading a slot the producer is rewriting.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <time.h>
#include <warren.h>

#define SLICE_NS 50000000LL /* longest wait without looking at Python signals */
#define BATCH_MAX 1024      /* records per recv_batch/peek_batch/send_batch call */

static PyObject *error_factory; /* callable(code) -> exception instance */

static PyObject *raise_wr(int rc) {
  if (error_factory) {
    PyObject *e = PyObject_CallFunction(error_factory, "i", rc);
    if (e) {
      PyErr_SetObject((PyObject *)Py_TYPE(e), e);
      Py_DECREF(e);
    }
  } else {
    PyErr_SetString(PyExc_OSError, wr_strerror(rc));
  }
  return NULL;
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Run op(c, arg, timeout) as the contract of the package says: try with the
 * GIL held, then wait with it released, in slices. Returns op's result, or
 * -WR_EINTR with a Python exception set when a signal handler raised. */
typedef int (*wait_op)(wr_chan *c, void *arg, int64_t timeout_ns);

static int64_t spin_ns = 50000; /* set_spin_ns(): poll this long before sleeping */

static int run_wait(wait_op op, wr_chan *c, void *arg, int64_t timeout_ns) {
  int rc = op(c, arg, 0);
  if (rc != -WR_EAGAIN || timeout_ns == 0) return rc;
  int64_t start = now_ns(), deadline = timeout_ns > 0 ? start + timeout_ns : 0;
  if (spin_ns > 0) {
    /* A peer that answers within a couple of microseconds is cheaper to
     * wait for with the GIL held (saving its release and re-take). */
    for (int i = 0; i < 64; i++) {
      rc = op(c, arg, 0);
      if (rc != -WR_EAGAIN) return rc;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    /* The library's own spin adapts to C peers (4-64 us, halved on each
     * miss); a Python peer takes a few microseconds to answer, so it would
     * shrink to its minimum and sleep on every record. Poll here, without
     * the GIL, for up to spin_ns (bounded by the timeout), then sleep. */
    int64_t end = start + spin_ns;
    if (deadline && deadline < end) end = deadline;
    Py_BEGIN_ALLOW_THREADS for (int i = 1;; i++) {
      rc = op(c, arg, 0);
      if (rc != -WR_EAGAIN || (i % 16 == 0 && now_ns() >= end)) break;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    Py_END_ALLOW_THREADS if (rc != -WR_EAGAIN) return rc;
  }
  for (;;) {
    int64_t slice = SLICE_NS;
    if (deadline) {
      int64_t left = deadline - now_ns();
      if (left <= 0) return -WR_ETIMEDOUT;
      if (left < slice) slice = left;
    }
    Py_BEGIN_ALLOW_THREADS rc = op(c, arg, slice);
    Py_END_ALLOW_THREADS if (rc != -WR_ETIMEDOUT && rc != -WR_EINTR) return rc;
    if (PyErr_CheckSignals() < 0) return -WR_EINTR;
  }
}

static int get_chan(PyObject *o, wr_chan **c) {
  *c = PyLong_AsVoidPtr(o);
  if (!*c) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "channel handle is closed");
    return -1;
  }
  return 0;
}

static int get_timeout(PyObject *o, int64_t *t) {
  *t = PyLong_AsLongLong(o);
  return *t == -1 && PyErr_Occurred() ? -1 : 0;
}

static int check_args(Py_ssize_t n, Py_ssize_t want, const char *fn) {
  if (n == want) return 0;
  PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", fn, want, n);
  return -1;
}

/* ------------------------------------------------------------ send */

struct send_arg {
  const void *p;
  size_t len;
};
static int op_send(wr_chan *c, void *arg, int64_t t) {
  struct send_arg *s = arg;
  return wr_chan_send(c, s->p, s->len, t);
}

/* send(chan, data, timeout_ns): data is any contiguous buffer. */
static PyObject *py_send(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  wr_chan *c;
  int64_t t;
  if (check_args(n, 3, "send") || get_chan(args[0], &c) || get_timeout(args[2], &t)) return NULL;
  int rc;
  if (PyBytes_CheckExact(args[1])) {
    struct send_arg s = {PyBytes_AS_STRING(args[1]), (size_t)PyBytes_GET_SIZE(args[1])};
    rc = wr_chan_send(c, s.p, s.len, 0);
    if (rc == -WR_EAGAIN && t != 0) rc = run_wait(op_send, c, &s, t);
  } else {
    Py_buffer b;
    if (PyObject_GetBuffer(args[1], &b, PyBUF_SIMPLE) < 0) return NULL;
    struct send_arg s = {b.buf, (size_t)b.len};
    rc = run_wait(op_send, c, &s, t);
    PyBuffer_Release(&b);
  }
  if (rc < 0) return PyErr_Occurred() ? NULL : raise_wr(rc);
  Py_RETURN_NONE;
}

struct batch_arg {
  wr_msg *msgs;
  size_t n;
};
static int op_send_batch(wr_chan *c, void *arg, int64_t t) {
  struct batch_arg *b = arg;
  return wr_chan_send_batch(c, b->msgs, b->n, t);
}

/* send_batch(chan, seq_of_bytes, timeout_ns) -> records sent (all of them
 * unless a wait ended; then the exception says why). */
static PyObject *py_send_batch(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  wr_chan *c;
  int64_t t;
  if (check_args(n, 3, "send_batch") || get_chan(args[0], &c) || get_timeout(args[2], &t))
    return NULL;
  PyObject *seq = PySequence_Fast(args[1], "send_batch() wants a sequence of bytes");
  if (!seq) return NULL;
  Py_ssize_t total = PySequence_Fast_GET_SIZE(seq), sent = 0;
  PyObject **items = PySequence_Fast_ITEMS(seq);
  wr_msg msgs[64];
  int rc = 0;
  while (sent < total) {
    size_t k = 0;
    for (; k < 64 && sent + (Py_ssize_t)k < total; k++) {
      PyObject *it = items[sent + (Py_ssize_t)k];
      if (!PyBytes_Check(it)) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_TypeError, "send_batch(): item %zd is %s, not bytes",
                            sent + (Py_ssize_t)k, Py_TYPE(it)->tp_name);
      }
      msgs[k] = (wr_msg){PyBytes_AS_STRING(it), (uint32_t)PyBytes_GET_SIZE(it), 0, 0};
      if ((size_t)PyBytes_GET_SIZE(it) > UINT32_MAX) msgs[k].len = UINT32_MAX;
    }
    size_t done = 0;
    while (done < k) {
      struct batch_arg b = {msgs + done, k - done};
      rc = run_wait(op_send_batch, c, &b, t);
      if (rc < 0) break;
      done += (size_t)rc;
    }
    sent += (Py_ssize_t)done;
    if (rc < 0) break;
  }
  Py_DECREF(seq);
  if (rc < 0) return PyErr_Occurred() ? NULL : raise_wr(rc);
  return PyLong_FromSsize_t(sent);
}

/* ------------------------------------------------------------ receive */

struct peek_arg {
  wr_rec *recs;
  size_t max;
};
static int op_peek(wr_chan *c, void *arg, int64_t t) {
  struct peek_arg *p = arg;
  return wr_chan_peek_batch(c, p->recs, p->max, t);
}

/* recv(chan, timeout_ns) -> bytes (a copy; the record is released). */
static PyObject *py_recv(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  wr_chan *c;
  int64_t t;
  if (check_args(n, 2, "recv") || get_chan(args[0], &c) || get_timeout(args[1], &t)) return NULL;
  wr_rec r;
  int rc = wr_chan_peek_batch(c, &r, 1, 0);
  if (rc == -WR_EAGAIN && t != 0) rc = run_wait(op_peek, c, &(struct peek_arg){&r, 1}, t);
  if (rc < 0) return PyErr_Occurred() ? NULL : raise_wr(rc);
  PyObject *b = PyBytes_FromStringAndSize(r.data, r.len);
  rc = wr_chan_release(c, &r);
  if (rc < 0) {
    Py_XDECREF(b);
    return raise_wr(rc);
  }
  return b;
}

/* recv_batch(chan, max, timeout_ns) -> list of 1..max bytes, from one lane. */
static PyObject *py_recv_batch(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  wr_chan *c;
  int64_t t;
  if (check_args(n, 3, "recv_batch") || get_chan(args[0], &c) || get_timeout(args[2], &t))
    return NULL;
  Py_ssize_t max = PyLong_AsSsize_t(args[1]);
  if (max == -1 && PyErr_Occurred()) return NULL;
  if (max < 1) return PyErr_Format(PyExc_ValueError, "recv_batch(): max must be >= 1");
  if (max > BATCH_MAX) max = BATCH_MAX;
  wr_rec recs[BATCH_MAX];
  struct peek_arg p = {recs, (size_t)max};
  int rc = run_wait(op_peek, c, &p, t);
  if (rc < 0) return PyErr_Occurred() ? NULL : raise_wr(rc);
  PyObject *list = PyList_New(rc);
  for (int i = 0; list && i < rc; i++) {
    PyObject *b = PyBytes_FromStringAndSize(recs[i].data, recs[i].len);
    if (!b) Py_CLEAR(list);
    else PyList_SET_ITEM(list, i, b);
  }
  if (!list) return NULL; /* the records stay peeked: the next holder gets them */
  int rr = wr_chan_release(c, &recs[rc - 1]);
  if (rr < 0) {
    Py_DECREF(list);
    return raise_wr(rr);
  }
  return list;
}

/* A peeked batch: memoryviews over records in shared memory, valid until
 * release(). Releasing the batch releases its last record, and with it
 * every earlier record of the lane. */
typedef struct {
  PyObject_HEAD wr_chan *c;
  PyObject *chan_ref; /* keeps the channel handle's Python owner alive */
  PyObject *views;    /* list of memoryview, made on first access */
  wr_rec *recs;       /* PyMem; NULL once released */
  wr_rec last;
  int n;
} Batch;

static void batch_drop_views(Batch *b) {
  PyMem_Free(b->recs);
  b->recs = NULL;
  if (!b->views) return;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(b->views); i++) {
    PyObject *r = PyObject_CallMethod(PyList_GET_ITEM(b->views, i), "release", NULL);
    if (r) Py_DECREF(r);
    else PyErr_Clear();
  }
  Py_CLEAR(b->views);
}

/* The channel's Python owner keeps its handle in `_h` (None once detached):
 * a batch outliving its handle must not touch the freed wr_chan. */
static int batch_chan_alive(Batch *b) {
  PyObject *h = PyObject_GetAttrString(b->chan_ref, "_h");
  void *p = h && h != Py_None ? PyLong_AsVoidPtr(h) : NULL;
  Py_XDECREF(h);
  PyErr_Clear();
  return p == (void *)b->c;
}

static PyObject *batch_release(Batch *b, PyObject *unused) {
  if (!b->recs) Py_RETURN_NONE; /* idempotent */
  if (!batch_chan_alive(b)) {
    batch_drop_views(b); /* the records went back with the detached side */
    PyErr_SetString(PyExc_ValueError, "the batch's channel was detached before its release");
    return NULL;
  }
  batch_drop_views(b);
  int rc = wr_chan_release(b->c, &b->last);
  if (rc < 0) return raise_wr(rc);
  Py_RETURN_NONE;
}

static PyObject *batch_enter(PyObject *self, PyObject *unused) {
  Py_INCREF(self);
  return self;
}

static PyObject *batch_exit(Batch *b, PyObject *args) {
  /* On an exception the records are released too: not releasing would leave
   * them peeked by a live handle, neither redelivered nor consumed. */
  return batch_release(b, NULL);
}

static void batch_dealloc(Batch *b) {
  batch_drop_views(b); /* not released: they stay peeked (redelivered later) */
  Py_XDECREF(b->chan_ref);
  Py_TYPE(b)->tp_free((PyObject *)b);
}

static Py_ssize_t batch_len(Batch *b) { return b->recs ? b->n : 0; }

/* Views are made when first asked for: a consumer that only counts or
 * forwards a batch pays no Python object per record. */
static int batch_make_views(Batch *b) {
  b->views = PyList_New(b->n);
  for (int i = 0; b->views && i < b->n; i++) {
    PyObject *v = PyMemoryView_FromMemory((char *)b->recs[i].data, b->recs[i].len, PyBUF_READ);
    if (!v) Py_CLEAR(b->views);
    else PyList_SET_ITEM(b->views, i, v);
  }
  return b->views ? 0 : -1;
}

static PyObject *batch_item(Batch *b, Py_ssize_t i) {
  if (!b->recs) {
    PyErr_SetString(PyExc_ValueError, "the batch was released");
    return NULL;
  }
  if (!b->views && batch_make_views(b) < 0) return NULL;
  if (i < 0 || i >= b->n) {
    PyErr_SetString(PyExc_IndexError, "batch index out of range");
    return NULL;
  }
  PyObject *v = PyList_GET_ITEM(b->views, i);
  Py_INCREF(v);
  return v;
}

static PyObject *batch_get_key(Batch *b, void *unused) {
  return PyLong_FromUnsignedLongLong(b->last.key);
}
static PyObject *batch_get_seq(Batch *b, void *unused) {
  return PyLong_FromUnsignedLongLong(b->last.seq);
}

static PyMethodDef batch_methods[] = {
    {"release", (PyCFunction)batch_release, METH_NOARGS,
     "Done with every record of the batch: the views become invalid."},
    {"__enter__", batch_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)batch_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static PyGetSetDef batch_getset[] = {
    {"key", (getter)batch_get_key, NULL, "key of the last record", NULL},
    {"seq", (getter)batch_get_seq, NULL, "lane sequence number of the last record", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
static PySequenceMethods batch_seq = {.sq_length = (lenfunc)batch_len,
                                      .sq_item = (ssizeargfunc)batch_item};
static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "warren._warren.Batch",
    .tp_basicsize = sizeof(Batch),
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_as_sequence = &batch_seq,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Records peeked from one lane, as memoryviews valid until release().",
    .tp_methods = batch_methods,
    .tp_getset = batch_getset,
};

/* peek_batch(chan, owner, max, timeout_ns) -> Batch of 1..max records. */
static PyObject *py_peek_batch(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  wr_chan *c;
  int64_t t;
  if (check_args(n, 4, "peek_batch") || get_chan(args[0], &c) || get_timeout(args[3], &t))
    return NULL;
  Py_ssize_t max = PyLong_AsSsize_t(args[2]);
  if (max == -1 && PyErr_Occurred()) return NULL;
  if (max < 1) return PyErr_Format(PyExc_ValueError, "peek_batch(): max must be >= 1");
  if (max > BATCH_MAX) max = BATCH_MAX;
  wr_rec recs[BATCH_MAX];
  struct peek_arg p = {recs, (size_t)max};
  int rc = run_wait(op_peek, c, &p, t);
  if (rc < 0) return PyErr_Occurred() ? NULL : raise_wr(rc);
  Batch *b = PyObject_New(Batch, &BatchType);
  if (!b) return NULL;
  b->c = c;
  b->chan_ref = Py_NewRef(args[1]);
  b->views = NULL;
  b->last = recs[rc - 1];
  b->n = rc;
  b->recs = PyMem_Malloc((size_t)rc * sizeof(wr_rec));
  if (!b->recs) {
    Py_DECREF(b);
    return PyErr_NoMemory();
  }
  memcpy(b->recs, recs, (size_t)rc * sizeof(wr_rec));
  return (PyObject *)b;
}

/* ------------------------------------------------------------ GC pause timer
 * gc_callback(phase, info) for gc.callbacks, in C: a callback written in
 * Python runs bytecode, where the interpreter may hand the GIL to another
 * thread between "start" and the collection, so the pause it measured would
 * include other threads' work. This one cannot be preempted. gc_pauses()
 * returns and clears [(t_start, t_stop, generation)] (CLOCK_MONOTONIC s). */
static double gc_t0;
static PyObject *gc_log;

static double mono(void) { return (double)now_ns() / 1e9; }

static PyObject *py_gc_callback(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  if (check_args(n, 2, "gc_callback")) return NULL;
  if (PyUnicode_CompareWithASCIIString(args[0], "start") == 0) {
    gc_t0 = mono();
    Py_RETURN_NONE;
  }
  double t1 = mono();
  PyObject *g = PyDict_GetItemString(args[1], "generation"); /* borrowed */
  if (!gc_log && !(gc_log = PyList_New(0))) return NULL;
  PyObject *rec = Py_BuildValue("(ddO)", gc_t0, t1, g ? g : Py_None);
  if (!rec || PyList_Append(gc_log, rec) < 0) {
    Py_XDECREF(rec);
    return NULL;
  }
  Py_DECREF(rec);
  Py_RETURN_NONE;
}

static PyObject *py_gc_pauses(PyObject *m, PyObject *unused) {
  PyObject *l = gc_log ? gc_log : PyList_New(0);
  gc_log = NULL;
  return l;
}

/* ------------------------------------------------------------ module */

static PyObject *py_set_spin_ns(PyObject *m, PyObject *arg) {
  long long v = PyLong_AsLongLong(arg);
  if (v == -1 && PyErr_Occurred()) return NULL;
  int64_t old = spin_ns;
  spin_ns = v < 0 ? 0 : v;
  return PyLong_FromLongLong(old);
}

static PyObject *py_set_error_factory(PyObject *m, PyObject *f) {
  Py_XSETREF(error_factory, Py_NewRef(f));
  Py_RETURN_NONE;
}

/* The path of the libwarren this module is linked with, for ctypes to load
 * the same copy. */
static PyObject *py_lib_path(PyObject *m, PyObject *unused) {
  Dl_info info;
  if (!dladdr((void *)wr_version, &info) || !info.dli_fname) Py_RETURN_NONE;
  return PyUnicode_DecodeFSDefault(info.dli_fname);
}

static PyMethodDef methods[] = {
    {"send", (PyCFunction)(void (*)(void))py_send, METH_FASTCALL, "send(chan, data, timeout_ns)"},
    {"send_batch", (PyCFunction)(void (*)(void))py_send_batch, METH_FASTCALL,
     "send_batch(chan, records, timeout_ns) -> count"},
    {"recv", (PyCFunction)(void (*)(void))py_recv, METH_FASTCALL,
     "recv(chan, timeout_ns) -> bytes"},
    {"recv_batch", (PyCFunction)(void (*)(void))py_recv_batch, METH_FASTCALL,
     "recv_batch(chan, max, timeout_ns) -> list of bytes"},
    {"peek_batch", (PyCFunction)(void (*)(void))py_peek_batch, METH_FASTCALL,
     "peek_batch(chan, owner, max, timeout_ns) -> Batch"},
    {"gc_callback", (PyCFunction)(void (*)(void))py_gc_callback, METH_FASTCALL,
     "for gc.callbacks: times each collection without running bytecode"},
    {"gc_pauses", py_gc_pauses, METH_NOARGS, "[(t_start, t_stop, generation)] since last call"},
    {"set_error_factory", py_set_error_factory, METH_O, NULL},
    {"set_spin_ns", py_set_spin_ns, METH_O, "set_spin_ns(ns) -> previous: poll before sleeping"},
    {"lib_path", py_lib_path, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_warren",
                                    "The per-record path of the warren binding.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__warren(void) {
  if (PyType_Ready(&BatchType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  Py_INCREF(&BatchType);
  if (PyModule_AddObject(m, "Batch", (PyObject *)&BatchType) < 0) {
    Py_DECREF(&BatchType);
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
