/*
 * Hot loops of the similarity index (index.py, similarity.py): scoring LSH candidates against the matrix of
 * sketches, counting shared interface features over posting lists, and summing idf weights of interned
 * features. Python decides what the scores mean; this file
 * only replaces per-candidate Python and numpy call overhead, which dominated the index's time.
 * Every function holds the GIL throughout, so the grow-only scratch counter below is safe.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t count;
    Py_ssize_t row;
} Match;

static int by_count_then_row(const void *a, const void *b) {
    const Match *x = a, *y = b;
    if (x->count != y->count) return y->count - x->count;
    return (x->row > y->row) - (x->row < y->row);
}

/*
 * best_matches(matrix, rows, sketch, min_count, limit) -> list[(count, row)]
 * matrix: C-contiguous uint32 buffer of shape (n, k); sketch: k uint32; rows: any iterable of ints.
 * Returns the `limit` rows whose sketches agree with `sketch` in the most positions (at least min_count),
 * best first, ties by row number, so results never depend on set iteration order.
 */
static PyObject *best_matches(PyObject *self, PyObject *args) {
    Py_buffer mat, sk;
    PyObject *rows_obj;
    Py_ssize_t min_count, limit;
    if (!PyArg_ParseTuple(args, "y*Oy*nn", &mat, &rows_obj, &sk, &min_count, &limit)) return NULL;
    PyObject *out = NULL, *iter = NULL;
    Match *found = NULL;
    Py_ssize_t k = sk.len / 4, nrows = k ? mat.len / (4 * k) : 0, nfound = 0, cap = 64;
    if (k == 0 || sk.len % 4 || mat.len % (4 * k)) {
        PyErr_SetString(PyExc_ValueError, "matrix and sketch must be uint32 buffers of a common width");
        goto done;
    }
    const uint32_t *m = mat.buf, *q = sk.buf;
    found = PyMem_Malloc(sizeof(Match) * cap);
    iter = PyObject_GetIter(rows_obj);
    if (!found || !iter) { if (!found) PyErr_NoMemory(); goto done; }
    PyObject *item;
    while ((item = PyIter_Next(iter)) != NULL) {
        Py_ssize_t row = PyLong_AsSsize_t(item);
        Py_DECREF(item);
        if (row == -1 && PyErr_Occurred()) goto done;
        if (row < 0 || row >= nrows) { PyErr_SetString(PyExc_IndexError, "row out of range"); goto done; }
        const uint32_t *r = m + row * k;
        int32_t count = 0;
        for (Py_ssize_t j = 0; j < k; j++) count += r[j] == q[j];
        if (count < min_count) continue;
        if (nfound == cap) {
            Match *grown = PyMem_Realloc(found, sizeof(Match) * cap * 2);
            if (!grown) { PyErr_NoMemory(); goto done; }
            found = grown;
            cap *= 2;
        }
        found[nfound].count = count;
        found[nfound].row = row;
        nfound++;
    }
    if (PyErr_Occurred()) goto done;
    qsort(found, nfound, sizeof(Match), by_count_then_row);
    if (nfound > limit) nfound = limit < 0 ? 0 : limit;
    out = PyList_New(nfound);
    if (!out) goto done;
    for (Py_ssize_t i = 0; i < nfound; i++) {
        PyObject *pair = Py_BuildValue("(in)", found[i].count, found[i].row);
        if (!pair) { Py_CLEAR(out); goto done; }
        PyList_SET_ITEM(out, i, pair);
    }
done:
    Py_XDECREF(iter);
    PyMem_Free(found);
    PyBuffer_Release(&mat);
    PyBuffer_Release(&sk);
    return out;
}

static uint8_t *counter = NULL;
static Py_ssize_t counter_cap = 0;

/*
 * shared_rows(postings, need, n_rows) -> list[int]
 * postings: int32 buffers of row numbers (array('i')); returns, in ascending order, the rows that occur in
 * at least `need` of them.
 */
static PyObject *shared_rows(PyObject *self, PyObject *args) {
    PyObject *postings;
    Py_ssize_t need, n_rows;
    if (!PyArg_ParseTuple(args, "O!nn", &PyList_Type, &postings, &need, &n_rows)) return NULL;
    if (n_rows > counter_cap) {
        uint8_t *grown = PyMem_Realloc(counter, n_rows);
        if (!grown) return PyErr_NoMemory();
        memset(grown + counter_cap, 0, n_rows - counter_cap);
        counter = grown;
        counter_cap = n_rows;
    }
    Py_ssize_t np = PyList_GET_SIZE(postings);
    Py_buffer *bufs = PyMem_Calloc(np ? np : 1, sizeof(Py_buffer));
    PyObject *out = NULL;
    Py_ssize_t got = 0;
    if (!bufs) return PyErr_NoMemory();
    for (; got < np; got++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(postings, got), &bufs[got], PyBUF_SIMPLE) < 0) goto done;
    }
    out = PyList_New(0);
    if (!out) goto done;
    for (Py_ssize_t p = 0; p < np; p++) {
        const int32_t *rows = bufs[p].buf;
        for (Py_ssize_t i = 0; i < bufs[p].len / 4; i++) {
            int32_t r = rows[i];
            if (r < 0 || r >= n_rows) continue;
            if (counter[r] < 255) counter[r]++;
            if (counter[r] == need) {
                PyObject *v = PyLong_FromLong(r);
                if (!v || PyList_Append(out, v) < 0) { Py_XDECREF(v); Py_CLEAR(out); break; }
                Py_DECREF(v);
            }
        }
        if (!out) break;
    }
    /* reset only what was touched, so a query costs its postings, not the index size */
    for (Py_ssize_t p = 0; p < np; p++) {
        const int32_t *rows = bufs[p].buf;
        for (Py_ssize_t i = 0; i < bufs[p].len / 4; i++)
            if (rows[i] >= 0 && rows[i] < n_rows) counter[rows[i]] = 0;
    }
    if (out && PyList_Sort(out) < 0) Py_CLEAR(out);
done:
    for (Py_ssize_t p = 0; p < got; p++) PyBuffer_Release(&bufs[p]);
    PyMem_Free(bufs);
    return out;
}

#define FLAG_STANDARD 1
#define FLAG_TOPIC 2

/* weight_sums(ids, weights, flags) -> (all, selectors, topics): interface weight totals of one class */
static PyObject *weight_sums(PyObject *self, PyObject *args) {
    Py_buffer ids, w, flags;
    if (!PyArg_ParseTuple(args, "y*y*y*", &ids, &w, &flags)) return NULL;
    const int32_t *id = ids.buf;
    const double *weight = w.buf;
    const uint8_t *flag = flags.buf;
    Py_ssize_t n = ids.len / 4, nw = w.len / 8;
    double sel = 0, top = 0;
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (id[i] < 0 || id[i] >= nw || id[i] >= flags.len) {
            PyErr_SetString(PyExc_IndexError, "feature id out of range");
            goto done;
        }
        if (flag[id[i]] & FLAG_TOPIC) top += weight[id[i]];
        else sel += weight[id[i]];
    }
    out = Py_BuildValue("(ddd)", sel + top, sel, top);
done:
    PyBuffer_Release(&ids);
    PyBuffer_Release(&w);
    PyBuffer_Release(&flags);
    return out;
}

/*
 * shared_weights(ids_a, ids_b, weights, flags) -> (selectors, topics, distinctive, n_distinctive)
 * ids_a and ids_b are sorted int32 buffers; the sums run over their intersection, "distinctive" over the
 * shared features that are not in a standard interface.
 */
static PyObject *shared_weights(PyObject *self, PyObject *args) {
    Py_buffer a, b, w, flags;
    if (!PyArg_ParseTuple(args, "y*y*y*y*", &a, &b, &w, &flags)) return NULL;
    const int32_t *x = a.buf, *y = b.buf;
    const double *weight = w.buf;
    const uint8_t *flag = flags.buf;
    Py_ssize_t na = a.len / 4, nb = b.len / 4, nw = w.len / 8, i = 0, j = 0;
    double sel = 0, top = 0, distinctive = 0;
    long n_distinctive = 0;
    PyObject *out = NULL;
    while (i < na && j < nb) {
        if (x[i] < y[j]) { i++; continue; }
        if (x[i] > y[j]) { j++; continue; }
        int32_t f = x[i];
        if (f < 0 || f >= nw || f >= flags.len) {
            PyErr_SetString(PyExc_IndexError, "feature id out of range");
            goto done;
        }
        if (flag[f] & FLAG_TOPIC) top += weight[f];
        else sel += weight[f];
        if (!(flag[f] & FLAG_STANDARD)) { distinctive += weight[f]; n_distinctive++; }
        i++;
        j++;
    }
    out = Py_BuildValue("(dddl)", sel, top, distinctive, n_distinctive);
done:
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&w);
    PyBuffer_Release(&flags);
    return out;
}

static PyMethodDef methods[] = {
    {"weight_sums", weight_sums, METH_VARARGS, "weight_sums(ids, weights, flags) -> (all, selectors, topics)"},
    {"shared_weights", shared_weights, METH_VARARGS, "shared_weights(ids_a, ids_b, weights, flags) -> tuple"},
    {"best_matches", best_matches, METH_VARARGS, "best_matches(matrix, rows, sketch, min_count, limit) -> list"},
    {"shared_rows", shared_rows, METH_VARARGS, "shared_rows(postings, need, n_rows) -> list[int]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_match", "Native hot loops of kamiyo's similarity index.", -1, methods};

PyMODINIT_FUNC PyInit__match(void) { return PyModule_Create(&module); }
