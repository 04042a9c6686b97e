/*
 * Hot path of the bytecode engine: one linear decode of EVM code, a cheap
 * reachability analysis, and a one-permutation MinHash sketch of opcode
 * n-grams.  Python (normalize.py / sketch.py) owns every decision about what
 * the results mean; this file only does the per-byte loops that Python is too
 * slow for.  It never raises on hostile bytes: truncated PUSH data reads as
 * zero, undefined opcodes are halting instructions.
 *
 * Reachability (why not a full CFG): a block is reachable when it is the
 * entry, falls through from a reachable block, or starts with a JUMPDEST whose
 * offset is pushed (PUSH1..PUSH4) by a reachable block.  Compilers push jump
 * targets as constants (including return addresses and function pointers), so
 * this over-approximation keeps all real code while data sections and the
 * embedded creation code of child contracts, which nothing jumps into, drop
 * out.  It is linear in the code size; evmole's full CFG costs ~40x more.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint8_t HALTS[256];      /* 1 when the opcode ends execution (or is undefined) */
static uint8_t ENDS_BLOCK[256]; /* HALTS, JUMP and JUMPI: the next instruction starts a block */
static uint8_t SPECIAL[256];    /* PUSH20, PUSH32, LOG1..LOG4: what the output pass looks at */
static uint8_t BLOCK_FLAGS[256]; /* what an opcode contributes to its block's flags */
static int configured = 0;

#define OP_JUMP 0x56
#define OP_JUMPI 0x57
#define OP_JUMPDEST 0x5b
#define OP_PUSH0 0x5f
#define OP_PUSH1 0x60
#define OP_PUSH4 0x63
#define OP_PUSH20 0x73
#define OP_PUSH32 0x7f
#define OP_LOG1 0xa1
#define OP_LOG4 0xa4
#define MAX_PUSH20 8
#define BLOCK_LOGS 1    /* a block holds a LOG1..LOG4 */
#define BLOCK_SPECIAL 2 /* a block holds a PUSH20, PUSH32 or LOG: the output pass must look inside */

static PyObject *configure(PyObject *self, PyObject *args) {
    Py_buffer halts;
    if (!PyArg_ParseTuple(args, "y*", &halts)) return NULL;
    if (halts.len != 256) {
        PyBuffer_Release(&halts);
        PyErr_SetString(PyExc_ValueError, "halts table must be 256 bytes");
        return NULL;
    }
    memcpy(HALTS, halts.buf, 256);
    for (int op = 0; op < 256; op++) {
        ENDS_BLOCK[op] = HALTS[op] || op == OP_JUMP || op == OP_JUMPI;
        int is_log = op >= OP_LOG1 && op <= OP_LOG4;
        SPECIAL[op] = op == OP_PUSH20 || op == OP_PUSH32 || is_log;
        BLOCK_FLAGS[op] = (is_log ? BLOCK_LOGS : 0) | (SPECIAL[op] ? BLOCK_SPECIAL : 0);
    }
    PyBuffer_Release(&halts);
    configured = 1;
    Py_RETURN_NONE;
}

typedef struct {
    int32_t pos;      /* offset of the opcode byte */
    uint8_t arg_len;  /* immediate bytes actually present (truncated at skips/end) */
    uint8_t op;
} Instr;

typedef struct {
    int32_t first, last;  /* instruction index range [first, last] */
    int32_t push_first;   /* index of the block's first PUSH1..PUSH4 value in the workspace's push values */
    uint8_t flags;        /* BLOCK_LOGS | BLOCK_SPECIAL, from the opcodes it holds */
    int32_t bytes;        /* code bytes its instructions occupy (trailers inside it excluded) */
} Block;

/*
 * Per-call scratch arrays live in one grow-only workspace: allocating ~250 KB afresh for every contract made
 * the kernel fault in new pages each time, which cost more than the decode itself. Safe because every call
 * holds the GIL from start to end.
 */
typedef struct {
    Py_ssize_t capacity;
    Instr *ins;
    Block *blocks;
    int32_t *block_of_dest, *stack; /* block_of_dest[p] is valid only where is_dest marks p */
    uint32_t *push_vals;
    uint8_t *reach, *skel, *rops, *is_dest;
} Workspace;

/* A nested call (a garbage-collector callback that scans while a scan is running) gets a private workspace. */
static Workspace shared_ws;
static int shared_busy = 0;

static void release(Workspace *w) {
    PyMem_Free(w->ins);
    PyMem_Free(w->blocks);
    PyMem_Free(w->block_of_dest);
    PyMem_Free(w->stack);
    PyMem_Free(w->push_vals);
    PyMem_Free(w->reach);
    PyMem_Free(w->skel);
    PyMem_Free(w->rops);
    PyMem_Free(w->is_dest);
    memset(w, 0, sizeof(*w));
}

/* The block a pushed value jumps into, or -1: only JUMPDEST offsets are valid targets. */
static inline int32_t dest_block(const uint8_t *is_dest, const int32_t *block_of_dest, uint32_t v) {
    return (is_dest[v >> 3] >> (v & 7)) & 1 ? block_of_dest[v] : -1;
}

static int reserve(Workspace *w, Py_ssize_t n) {
    if (n + 1 <= w->capacity) return 0;
    Py_ssize_t cap = n + 1 > 2 * w->capacity ? n + 1 : 2 * w->capacity;
    Instr *ins = PyMem_Realloc(w->ins, sizeof(Instr) * cap);
    if (ins) w->ins = ins;
    Block *blocks = PyMem_Realloc(w->blocks, sizeof(Block) * cap);
    if (blocks) w->blocks = blocks;
    int32_t *dest = PyMem_Realloc(w->block_of_dest, sizeof(int32_t) * cap);
    if (dest) w->block_of_dest = dest;
    int32_t *stack = PyMem_Realloc(w->stack, sizeof(int32_t) * cap);
    if (stack) w->stack = stack;
    uint8_t *reach = PyMem_Realloc(w->reach, cap);
    if (reach) w->reach = reach;
    uint8_t *skel = PyMem_Realloc(w->skel, cap);
    if (skel) w->skel = skel;
    uint8_t *rops = PyMem_Realloc(w->rops, cap);
    if (rops) w->rops = rops;
    uint32_t *push_vals = PyMem_Realloc(w->push_vals, sizeof(uint32_t) * cap);
    if (push_vals) w->push_vals = push_vals;
    uint8_t *is_dest = PyMem_Realloc(w->is_dest, cap / 8 + 1);
    if (is_dest) w->is_dest = is_dest;
    if (!ins || !blocks || !dest || !stack || !reach || !skel || !rops || !push_vals || !is_dest) {
        PyErr_NoMemory();
        return -1;
    }
    w->capacity = cap;
    return 0;
}

static int emits_after_return(const Block *blocks, Py_ssize_t b, const uint32_t *push_vals, const uint8_t *is_dest,
                              const int32_t *block_of_dest, const uint8_t *reach, Py_ssize_t n) {
    for (int32_t p = blocks[b].push_first; p < blocks[b + 1].push_first; p++) {
        uint32_t v = push_vals[p];
        if (v >= (uint32_t)n) continue;
        int32_t t = dest_block(is_dest, block_of_dest, v);
        if (t >= 0 && reach[t] && (blocks[t].flags & BLOCK_LOGS)) return 1;
    }
    return 0;
}

static int plausible_topic(const uint8_t *code, const Instr *in) {
    const uint8_t *p = code + in->pos + 1;
    if (in->arg_len != 32) return 0;
    /* keccak outputs practically never start with four 0x00 or four 0xff bytes; masks and amounts do */
    if (p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0) return 0;
    if (p[0] == 0xff && p[1] == 0xff && p[2] == 0xff && p[3] == 0xff) return 0;
    return 1;
}

/*
 * scan(code, skip_starts, skip_ends) ->
 *   (reachable_ops, skeleton_ops, topics, opset, n_instructions, n_reachable, reachable_bytes, push20s)
 * skip ranges (sorted, disjoint) are metadata trailers: not decoded, not in the skeleton.
 */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *starts_obj, *ends_obj;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_scan.configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*OO", &buf, &starts_obj, &ends_obj)) return NULL;
    const uint8_t *code = (const uint8_t *)buf.buf;
    Py_ssize_t n = buf.len;
    PyObject *result = NULL;
    Instr *ins = NULL;
    Block *blocks = NULL;
    int32_t *stack = NULL, *block_of_dest = NULL;
    uint8_t *reach = NULL, *skel = NULL, *rops = NULL;
    Py_ssize_t *starts = NULL, *ends = NULL;
    PyObject *topics = NULL, *push20s = NULL;
    Workspace local;
    memset(&local, 0, sizeof(local));
    Workspace *w = shared_busy ? &local : &shared_ws;
    int owns_shared = !shared_busy;
    shared_busy = 1;

    Py_ssize_t nskip = PySequence_Size(starts_obj);
    if (nskip < 0 || PySequence_Size(ends_obj) != nskip) {
        PyErr_SetString(PyExc_ValueError, "skip_starts and skip_ends must be sequences of equal length");
        goto done;
    }
    starts = PyMem_Malloc(sizeof(Py_ssize_t) * (nskip + 1));
    ends = PyMem_Malloc(sizeof(Py_ssize_t) * (nskip + 1));
    if (!starts || !ends) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t s = 0; s < nskip; s++) {
        PyObject *a = PySequence_GetItem(starts_obj, s), *b = PySequence_GetItem(ends_obj, s);
        starts[s] = a ? PyLong_AsSsize_t(a) : -1;
        ends[s] = b ? PyLong_AsSsize_t(b) : -1;
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (PyErr_Occurred()) goto done;
    }

    /* 1. one linear decode that also splits basic blocks: before a JUMPDEST, after JUMP/JUMPI and halts */
    if (reserve(w, n) < 0) goto done;
    ins = w->ins;
    skel = w->skel;
    blocks = w->blocks;
    block_of_dest = w->block_of_dest;
    uint8_t *is_dest = w->is_dest;
    memset(is_dest, 0, (size_t)n / 8 + 1);
    uint32_t *push_vals = w->push_vals;
    Py_ssize_t ni = 0, nb = 0, npush = 0, cursor = 0, i = 0;
    Py_ssize_t next_skip = nskip > 0 ? starts[0] : n;
    int new_block = 1;
    while (i < n) {
        if (i >= next_skip) {
            /* inside (or at) a trailer: resume after it, resynchronising the decode */
            while (cursor < nskip && ends[cursor] <= i) cursor++;
            if (cursor < nskip && starts[cursor] <= i) {
                i = ends[cursor++];
                next_skip = cursor < nskip ? starts[cursor] : n;
                continue;
            }
            next_skip = cursor < nskip ? starts[cursor] : n;
        }
        uint8_t op = code[i];
        int32_t have = (op >= OP_PUSH1 && op <= OP_PUSH32) ? op - OP_PUSH0 : 0;
        Py_ssize_t limit = next_skip < n ? next_skip : n;
        if (i + 1 + have > limit) have = (int32_t)(limit - i - 1);
        if (new_block || op == OP_JUMPDEST) {
            if (nb > 0) blocks[nb - 1].last = (int32_t)(ni - 1);
            blocks[nb].first = (int32_t)ni;
            blocks[nb].push_first = (int32_t)npush;
            blocks[nb].flags = 0;
            blocks[nb].bytes = 0;
            if (op == OP_JUMPDEST) {
                block_of_dest[i] = (int32_t)nb;
                is_dest[i >> 3] |= (uint8_t)(1u << (i & 7));
            }
            nb++;
        }
        if (op >= OP_PUSH1 && op <= OP_PUSH4) {
            /* a candidate jump target; missing trailing bytes read as zero, as the EVM does */
            const uint8_t *a = code + i + 1;
            int32_t width = op - OP_PUSH0;
            uint32_t v;
            if (have == width) {
                switch (width) {
                case 1: v = a[0]; break;
                case 2: v = (uint32_t)a[0] << 8 | a[1]; break;
                case 3: v = (uint32_t)a[0] << 16 | (uint32_t)a[1] << 8 | a[2]; break;
                default: v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3]; break;
                }
            } else {
                v = 0;
                for (int32_t b = 0; b < width; b++) v = (v << 8) | (b < have ? a[b] : 0);
            }
            push_vals[npush++] = v;
        }
        new_block = ENDS_BLOCK[op];
        blocks[nb - 1].flags |= BLOCK_FLAGS[op];
        blocks[nb - 1].bytes += 1 + have;
        ins[ni].pos = (int32_t)i;
        ins[ni].arg_len = (uint8_t)have;
        ins[ni].op = op;
        skel[ni] = op;
        ni++;
        i += 1 + have;
    }
    if (nb > 0) blocks[nb - 1].last = (int32_t)(ni - 1);
    blocks[nb].push_first = (int32_t)npush; /* sentinel: where the last block's pushes end */

    /* 3. reachability fixpoint */
    reach = w->reach;
    stack = w->stack;
    memset(reach, 0, nb + 1);
    Py_ssize_t top = 0;
    if (nb > 0) { reach[0] = 1; stack[top++] = 0; }
    while (top > 0) {
        int32_t b = stack[--top];
        for (int32_t p = blocks[b].push_first; p < blocks[b + 1].push_first; p++) {
            uint32_t v = push_vals[p];
            if (v < (uint32_t)n) {
                int32_t t = dest_block(is_dest, block_of_dest, v);
                if (t >= 0 && !reach[t]) { reach[t] = 1; stack[top++] = t; }
            }
        }
        uint8_t last = ins[blocks[b].last].op;
        if (!HALTS[last] && last != OP_JUMP && b + 1 < nb && !reach[b + 1]) {
            reach[b + 1] = 1;
            stack[top++] = b + 1;
        }
    }

    /* 4. outputs from reachable blocks, in address order */
    rops = w->rops;
    uint8_t opset[32];
    memset(opset, 0, sizeof(opset));
    topics = PyList_New(0);
    push20s = PyList_New(0);
    if (!topics || !push20s) goto done;
    Py_ssize_t nr = 0, rbytes = 0;
    uint8_t seen[256];
    memset(seen, 0, sizeof(seen));
    for (Py_ssize_t b = 0; b < nb; b++) {
        if (!reach[b]) continue;
        int32_t first = blocks[b].first, last = blocks[b].last;
        memcpy(rops + nr, skel + first, (size_t)(last - first + 1));
        nr += last - first + 1;
        rbytes += blocks[b].bytes;
        if (!(blocks[b].flags & BLOCK_SPECIAL)) continue;
        int32_t first_push32 = -1;
        for (int32_t k = first; k <= last; k++) {
            uint8_t op = ins[k].op;
            if (!SPECIAL[op]) continue;
            if (op == OP_PUSH32 && first_push32 < 0) first_push32 = k;
            if (op == OP_PUSH20 && ins[k].arg_len == 20 && PyList_GET_SIZE(push20s) < MAX_PUSH20) {
                PyObject *v = PyBytes_FromStringAndSize((const char *)code + ins[k].pos + 1, 20);
                if (!v || PyList_Append(push20s, v) < 0) { Py_XDECREF(v); goto done; }
                Py_DECREF(v);
            }
            if (op >= OP_LOG1 && op <= OP_LOG4 && first_push32 >= 0) {
                /* every plausible PUSH32 earlier in this block feeds this LOG's topics or data */
                for (int32_t q = first_push32; q < k; q++) {
                    if (ins[q].op != OP_PUSH32 || !plausible_topic(code, &ins[q])) continue;
                    PyObject *v = PyBytes_FromStringAndSize((const char *)code + ins[q].pos + 1, 32);
                    if (!v || PyList_Append(topics, v) < 0) { Py_XDECREF(v); goto done; }
                    Py_DECREF(v);
                }
                first_push32 = -1;
            }
        }
        /* PUSH32s left after the block's last LOG still name an event when the block pushes the return
         * address of a block that logs: `PUSH32 topic, PUSH2 ret, …, JUMP encoder` and `ret: … LOGn`. */
        if (first_push32 >= 0 && emits_after_return(blocks, b, push_vals, is_dest, block_of_dest, reach, n)) {
            for (int32_t q = first_push32; q <= last; q++) {
                if (ins[q].op != OP_PUSH32 || !plausible_topic(code, &ins[q])) continue;
                PyObject *v = PyBytes_FromStringAndSize((const char *)code + ins[q].pos + 1, 32);
                if (!v || PyList_Append(topics, v) < 0) { Py_XDECREF(v); goto done; }
                Py_DECREF(v);
            }
        }
    }
    for (Py_ssize_t k = 0; k < nr; k++) seen[rops[k]] = 1;
    for (int op = 0; op < 256; op++)
        if (seen[op]) opset[op >> 3] |= (uint8_t)(1u << (op & 7));
    result = Py_BuildValue("(y#y#Oy#nnnO)", (const char *)rops, nr, (const char *)skel, ni, topics,
                           (const char *)opset, (Py_ssize_t)32, ni, nr, rbytes, push20s);

done:
    if (owns_shared) shared_busy = 0;
    else release(&local);
    Py_XDECREF(topics);
    Py_XDECREF(push20s);
    PyMem_Free(starts);
    PyMem_Free(ends);
    PyBuffer_Release(&buf);
    return result;
}

/* splitmix64's finaliser: a cheap, well-mixed 64-bit hash, identical on every platform */
static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint32_t bin_of(uint64_t h, uint32_t k) { return (uint32_t)(((h >> 32) * (uint64_t)k) >> 32); }

/*
 * sketch(ops, n, k, seed) -> bytes of k little-endian uint32 (one-permutation MinHash).
 * Every n-gram of `ops` is hashed once per occurrence (the minimum makes repeats harmless); its high half picks a bin, its low half competes for
 * the bin's minimum.  Empty bins are filled by "optimal densification" (Shrivastava, 2017): bin i
 * copies the first non-empty bin of a probe sequence that depends only on (seed, i), so two sets'
 * sketches still agree in a bin with probability equal to their Jaccard similarity.
 * Returns None when ops has fewer than n opcodes (no shingles).
 */
static PyObject *sketch(PyObject *self, PyObject *args) {
    Py_buffer buf;
    int n;
    unsigned int k;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "y*iIK", &buf, &n, &k, &seed)) return NULL;
    const uint8_t *ops = (const uint8_t *)buf.buf;
    Py_ssize_t len = buf.len;
    PyObject *out = NULL;
    if (n < 1 || n > 7 || k < 1 || k > 4096) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= n <= 7 and 1 <= k <= 4096");
        goto done;
    }
    if (len < n) { out = Py_None; Py_INCREF(out); goto done; }
    uint32_t *bins = PyMem_Malloc(sizeof(uint32_t) * k);
    uint8_t *filled = PyMem_Calloc(k, 1);
    uint32_t *dense = PyMem_Malloc(sizeof(uint32_t) * k);
    if (!bins || !filled || !dense) {
        PyMem_Free(bins); PyMem_Free(filled); PyMem_Free(dense);
        PyErr_NoMemory();
        goto done;
    }
    uint64_t salt = mix64(seed ^ 0x6b616d69796f0001ULL);
    uint64_t key = 0, mask = (1ULL << (8 * n)) - 1;
    for (Py_ssize_t i = 0; i < len; i++) {
        key = ((key << 8) | ops[i]) & mask;
        if (i + 1 < n) continue;
        uint64_t h = mix64(key ^ salt);
        uint32_t b = bin_of(h, k), v = (uint32_t)h;
        if (!filled[b] || v < bins[b]) { bins[b] = v; filled[b] = 1; }
    }
    for (uint32_t i = 0; i < k; i++) {
        if (filled[i]) { dense[i] = bins[i]; continue; }
        dense[i] = 0xffffffffu;
        for (uint64_t attempt = 1; attempt < 64ULL * k; attempt++) {
            uint32_t j = bin_of(mix64(salt ^ (((uint64_t)i << 32) | attempt)), k);
            if (filled[j]) { dense[i] = bins[j]; break; }
        }
    }
    unsigned char *le = PyMem_Malloc(4 * (size_t)k);
    if (!le) { PyMem_Free(bins); PyMem_Free(filled); PyMem_Free(dense); PyErr_NoMemory(); goto done; }
    for (uint32_t i = 0; i < k; i++) {
        le[4 * i] = dense[i] & 0xff;
        le[4 * i + 1] = (dense[i] >> 8) & 0xff;
        le[4 * i + 2] = (dense[i] >> 16) & 0xff;
        le[4 * i + 3] = (dense[i] >> 24) & 0xff;
    }
    out = PyBytes_FromStringAndSize((const char *)le, 4 * (Py_ssize_t)k);
    PyMem_Free(le);
    PyMem_Free(bins);
    PyMem_Free(filled);
    PyMem_Free(dense);
done:
    PyBuffer_Release(&buf);
    return out;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "configure(halts: bytes[256]) -> None"},
    {"scan", scan, METH_VARARGS, "scan(code, skip_starts, skip_ends) -> tuple"},
    {"sketch", sketch, METH_VARARGS, "sketch(ops, n, k, seed) -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", "Native hot path of kamiyo's bytecode engine.", -1, methods};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
