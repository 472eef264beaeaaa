/* GGUF reader. See include/dspex/infer/gguf.h for the format limits it enforces.
 *
 * The parser walks the header with a bounds-checked cursor; every read first proves
 * that the bytes exist. Counts from the file are never trusted for allocation: each
 * index array is sized by a count already proven to fit in the remaining bytes (every
 * record occupies at least 8 bytes of file), so memory stays proportional to the file. */
#include "dspex/infer/gguf.h"
#include "dspex/errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dspex/infer/quant.h"

struct dspex_gguf {
    const uint8_t *buf;          /* the whole file */
    size_t len;                  /* its size */
    void *map;                   /* our mmap (dspex_gguf_open), or NULL */
    uint32_t version;            /* 2 or 3 */
    size_t n_kv;                 /* metadata pairs */
    dspex_gguf_kv *kv;           /* [n_kv] */
    size_t n_tensors;            /* tensor infos */
    dspex_gguf_tensor *tensors;  /* [n_tensors] */
    dspex_str *strs;             /* views for all string-array elements, shared */
    uint32_t *kv_hash;           /* open-addressing index of kv (index+1, 0 = empty) */
    uint32_t *t_hash;            /* same for tensors */
    size_t kv_cap, t_cap;        /* hash capacities (powers of two) */
    uint32_t alignment;          /* general.alignment or 32 */
    uint64_t data_start;         /* offset of the tensor data section */
};

/* ------------------------------------------------------------------------- errors */

/* Printable copy of a key or name for messages: at most 80 bytes, controls escaped. */
static const char *show(dspex_str s, char out[96]) {
    size_t o = 0;
    for (size_t i = 0; i < s.n && o < 80; i++) {
        unsigned char c = (unsigned char)s.p[i];
        out[o++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (s.n > 80) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
    return out;
}

/* ------------------------------------------------------------------------- cursor */

typedef struct {
    const uint8_t *p; /* file start */
    size_t len;       /* file size */
    size_t pos;       /* read position */
} cursor;

static int need(const cursor *c, uint64_t n) { return n <= c->len - c->pos; }

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int get_u32(cursor *c, uint32_t *v) {
    if (!need(c, 4)) return -1;
    *v = (uint32_t)rd_le(c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int get_u64(cursor *c, uint64_t *v) {
    if (!need(c, 8)) return -1;
    *v = rd_le(c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int get_str(cursor *c, dspex_str *s) {
    uint64_t n;
    if (get_u64(c, &n) != 0 || !need(c, n)) return -1;
    s->p = (const char *)(c->p + c->pos);
    s->n = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

/* Size in bytes of one scalar value of type t; 0 for STRING/ARRAY/unknown. */
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case DSPEX_GGUF_U8:
    case DSPEX_GGUF_I8:
    case DSPEX_GGUF_BOOL: return 1;
    case DSPEX_GGUF_U16:
    case DSPEX_GGUF_I16: return 2;
    case DSPEX_GGUF_U32:
    case DSPEX_GGUF_I32:
    case DSPEX_GGUF_F32: return 4;
    case DSPEX_GGUF_U64:
    case DSPEX_GGUF_I64:
    case DSPEX_GGUF_F64: return 8;
    default: return 0;
    }
}

static const char *k_vtype_names[DSPEX_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

const char *dspex_gguf_vtype_name(dspex_gguf_vtype t) {
    return (unsigned)t < DSPEX_GGUF_TYPE_COUNT ? k_vtype_names[t] : "invalid";
}

/* Decodes a scalar at p (size already checked) into kv->v. */
static int decode_scalar(uint32_t t, const uint8_t *p, dspex_gguf_kv *kv) {
    switch (t) {
    case DSPEX_GGUF_U8:
    case DSPEX_GGUF_U16:
    case DSPEX_GGUF_U32:
    case DSPEX_GGUF_U64: kv->v.u = rd_le(p, (int)scalar_size(t)); return 0;
    case DSPEX_GGUF_BOOL:
        if (p[0] > 1) return -1;
        kv->v.u = p[0];
        return 0;
    case DSPEX_GGUF_I8: kv->v.i = (int8_t)p[0]; return 0;
    case DSPEX_GGUF_I16: kv->v.i = (int16_t)rd_le(p, 2); return 0;
    case DSPEX_GGUF_I32: kv->v.i = (int32_t)rd_le(p, 4); return 0;
    case DSPEX_GGUF_I64: kv->v.i = (int64_t)rd_le(p, 8); return 0;
    case DSPEX_GGUF_F32: {
        uint32_t u = (uint32_t)rd_le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        kv->v.f = f;
        return 0;
    }
    case DSPEX_GGUF_F64: {
        uint64_t u = rd_le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        kv->v.f = d;
        return 0;
    }
    default: return -1;
    }
}

/* ------------------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
}

/* Inserts entry idx (named s) into table; returns the index of an existing entry with
 * the same name, or -1 when it was inserted. */
static long hash_insert(uint32_t *tab, size_t cap, dspex_str s, size_t idx, const dspex_str *(*name_of)(const dspex_gguf *, size_t),
                        const dspex_gguf *g) {
    size_t m = cap - 1, h = (size_t)hash_bytes(s.p, s.n) & m;
    while (tab[h] != 0) {
        const dspex_str *o = name_of(g, tab[h] - 1);
        if (o->n == s.n && memcmp(o->p, s.p, s.n) == 0) return (long)(tab[h] - 1);
        h = (h + 1) & m;
    }
    tab[h] = (uint32_t)(idx + 1);
    return -1;
}

static const dspex_str *kv_name(const dspex_gguf *g, size_t i) { return &g->kv[i].key; }
static const dspex_str *t_name(const dspex_gguf *g, size_t i) { return &g->tensors[i].name; }

static long hash_find(const uint32_t *tab, size_t cap, const char *z, const dspex_str *(*name_of)(const dspex_gguf *, size_t),
                      const dspex_gguf *g) {
    if (tab == NULL) return -1;
    size_t n = strlen(z), m = cap - 1, h = (size_t)hash_bytes(z, n) & m;
    while (tab[h] != 0) {
        const dspex_str *o = name_of(g, tab[h] - 1);
        if (o->n == n && memcmp(o->p, z, n) == 0) return (long)(tab[h] - 1);
        h = (h + 1) & m;
    }
    return -1;
}

/* ------------------------------------------------------------------------- parsing */

void dspex_gguf_free(dspex_gguf *g) {
    if (g == NULL) return;
    free(g->kv);
    free(g->tensors);
    free(g->strs);
    free(g->kv_hash);
    free(g->t_hash);
    if (g->map) munmap(g->map, g->len);
    free(g);
}

/* First pass over one value: checks it and counts string-array elements. */
static int parse_value(cursor *c, uint32_t type, dspex_gguf_kv *kv, size_t *n_strs, const char *key, char *err,
                       size_t errlen) {
    if (type >= DSPEX_GGUF_TYPE_COUNT) {
        dspex_errmsg(err, errlen, "metadata key '%s' has unknown value type %u", key, type);
        return -1;
    }
    kv->type = (dspex_gguf_vtype)type;
    if (type == DSPEX_GGUF_STRING) {
        if (get_str(c, &kv->v.s) != 0) {
            dspex_errmsg(err, errlen, "metadata key '%s': string runs past the end of the file", key);
            return -1;
        }
        return 0;
    }
    if (type != DSPEX_GGUF_ARRAY) {
        size_t sz = scalar_size(type);
        if (!need(c, sz)) {
            dspex_errmsg(err, errlen, "metadata key '%s': value runs past the end of the file", key);
            return -1;
        }
        if (decode_scalar(type, c->p + c->pos, kv) != 0) {
            dspex_errmsg(err, errlen, "metadata key '%s': bool value %u is not 0 or 1", key, c->p[c->pos]);
            return -1;
        }
        c->pos += sz;
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (get_u32(c, &et) != 0 || get_u64(c, &n) != 0) {
        dspex_errmsg(err, errlen, "metadata key '%s': array header runs past the end of the file", key);
        return -1;
    }
    if (et == DSPEX_GGUF_ARRAY) {
        dspex_errmsg(err, errlen, "metadata key '%s' is a nested array (arrays of arrays are not supported)", key);
        return -1;
    }
    if (et >= DSPEX_GGUF_TYPE_COUNT) {
        dspex_errmsg(err, errlen, "metadata key '%s' is an array of unknown type %u", key, et);
        return -1;
    }
    kv->arr_type = (dspex_gguf_vtype)et;
    kv->arr_n = n;
    if (et == DSPEX_GGUF_STRING) {
        /* each element is at least its 8-byte length */
        if (n > (c->len - c->pos) / 8) {
            dspex_errmsg(err, errlen, "metadata key '%s': array of %llu strings does not fit in the file", key,
                   (unsigned long long)n);
            return -1;
        }
        kv->arr_data = c->p + c->pos;
        for (uint64_t i = 0; i < n; i++) {
            dspex_str s;
            if (get_str(c, &s) != 0) {
                dspex_errmsg(err, errlen, "metadata key '%s': string %llu runs past the end of the file", key,
                       (unsigned long long)i);
                return -1;
            }
        }
        *n_strs += (size_t)n;
        return 0;
    }
    size_t sz = scalar_size(et);
    if (n > (c->len - c->pos) / sz) {
        dspex_errmsg(err, errlen, "metadata key '%s': array of %llu %s values does not fit in the file", key,
               (unsigned long long)n, k_vtype_names[et]);
        return -1;
    }
    kv->arr_data = c->p + c->pos;
    if (et == DSPEX_GGUF_BOOL) {
        for (uint64_t i = 0; i < n; i++)
            if (kv->arr_data[i] > 1) {
                dspex_errmsg(err, errlen, "metadata key '%s': bool element %llu is not 0 or 1", key, (unsigned long long)i);
                return -1;
            }
    }
    c->pos += (size_t)(n * sz);
    return 0;
}

static int parse_kvs(dspex_gguf *g, cursor *c, char *err, size_t errlen) {
    size_t n_strs = 0;
    g->kv_cap = pow2_at_least(g->n_kv);
    g->kv_hash = calloc(g->kv_cap, sizeof(uint32_t));
    if (g->n_kv) g->kv = calloc(g->n_kv, sizeof(dspex_gguf_kv));
    if (g->kv_hash == NULL || (g->n_kv && g->kv == NULL)) {
        dspex_errmsg(err, errlen, "out of memory reading %zu metadata keys", g->n_kv);
        return -1;
    }
    char nb[96];
    for (size_t i = 0; i < g->n_kv; i++) {
        dspex_gguf_kv *kv = &g->kv[i];
        if (get_str(c, &kv->key) != 0) {
            dspex_errmsg(err, errlen, "metadata key %zu runs past the end of the file", i);
            return -1;
        }
        if (kv->key.n == 0) {
            dspex_errmsg(err, errlen, "metadata key %zu is empty", i);
            return -1;
        }
        if (kv->key.n > DSPEX_GGUF_MAX_KEY) {
            dspex_errmsg(err, errlen, "metadata key %zu is %zu bytes long (limit %d)", i, kv->key.n, DSPEX_GGUF_MAX_KEY);
            return -1;
        }
        show(kv->key, nb);
        if (hash_insert(g->kv_hash, g->kv_cap, kv->key, i, kv_name, g) >= 0) {
            dspex_errmsg(err, errlen, "duplicate metadata key '%s'", nb);
            return -1;
        }
        uint32_t type;
        if (get_u32(c, &type) != 0) {
            dspex_errmsg(err, errlen, "metadata key '%s': value type runs past the end of the file", nb);
            return -1;
        }
        if (parse_value(c, type, kv, &n_strs, nb, err, errlen) != 0) return -1;
    }
    /* second pass: views for string-array elements (already bounds-checked) */
    if (n_strs) {
        g->strs = calloc(n_strs, sizeof(dspex_str));
        if (g->strs == NULL) {
            dspex_errmsg(err, errlen, "out of memory indexing %zu metadata strings", n_strs);
            return -1;
        }
        size_t at = 0;
        for (size_t i = 0; i < g->n_kv; i++) {
            dspex_gguf_kv *kv = &g->kv[i];
            if (kv->type != DSPEX_GGUF_ARRAY || kv->arr_type != DSPEX_GGUF_STRING) continue;
            cursor sc = {c->p, c->len, (size_t)(kv->arr_data - c->p)};
            kv->arr_str = g->strs + at;
            for (uint64_t j = 0; j < kv->arr_n; j++) (void)get_str(&sc, &g->strs[at++]);
        }
    }
    return 0;
}

static int parse_alignment(dspex_gguf *g, char *err, size_t errlen) {
    g->alignment = 32;
    const dspex_gguf_kv *a = dspex_gguf_find(g, "general.alignment");
    if (a == NULL) return 0;
    if (a->type != DSPEX_GGUF_U32) {
        dspex_errmsg(err, errlen, "general.alignment has type %s, expected u32", dspex_gguf_vtype_name(a->type));
        return -1;
    }
    if (a->v.u == 0 || (a->v.u & (a->v.u - 1)) != 0 || a->v.u > DSPEX_GGUF_MAX_ALIGN) {
        dspex_errmsg(err, errlen, "general.alignment = %llu is not a power of two in 1..%u", (unsigned long long)a->v.u,
               DSPEX_GGUF_MAX_ALIGN);
        return -1;
    }
    g->alignment = (uint32_t)a->v.u;
    return 0;
}

static int parse_tensors(dspex_gguf *g, cursor *c, char *err, size_t errlen) {
    g->t_cap = pow2_at_least(g->n_tensors);
    g->t_hash = calloc(g->t_cap, sizeof(uint32_t));
    if (g->n_tensors) g->tensors = calloc(g->n_tensors, sizeof(dspex_gguf_tensor));
    if (g->t_hash == NULL || (g->n_tensors && g->tensors == NULL)) {
        dspex_errmsg(err, errlen, "out of memory reading %zu tensor infos", g->n_tensors);
        return -1;
    }
    char nb[96], tb[16];
    for (size_t i = 0; i < g->n_tensors; i++) {
        dspex_gguf_tensor *t = &g->tensors[i];
        if (get_str(c, &t->name) != 0) {
            dspex_errmsg(err, errlen, "tensor %zu: name runs past the end of the file", i);
            return -1;
        }
        show(t->name, nb);
        if (t->name.n == 0 || t->name.n >= DSPEX_GGUF_MAX_NAME) {
            dspex_errmsg(err, errlen, "tensor %zu: name '%s' is %zu bytes (must be 1..%d)", i, nb, t->name.n,
                   DSPEX_GGUF_MAX_NAME - 1);
            return -1;
        }
        if (hash_insert(g->t_hash, g->t_cap, t->name, i, t_name, g) >= 0) {
            dspex_errmsg(err, errlen, "duplicate tensor name '%s'", nb);
            return -1;
        }
        uint32_t nd;
        if (get_u32(c, &nd) != 0) {
            dspex_errmsg(err, errlen, "tensor '%s': header runs past the end of the file", nb);
            return -1;
        }
        if (nd < 1 || nd > DSPEX_GGUF_MAX_DIMS) {
            dspex_errmsg(err, errlen, "tensor '%s' has %u dimensions (must be 1..%d)", nb, nd, DSPEX_GGUF_MAX_DIMS);
            return -1;
        }
        t->n_dims = (int)nd;
        uint64_t count = 1;
        for (int d = 0; d < DSPEX_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if (get_u64(c, &ne) != 0) {
                dspex_errmsg(err, errlen, "tensor '%s': dimensions run past the end of the file", nb);
                return -1;
            }
            if (ne == 0 || ne > (uint64_t)INT64_MAX) {
                dspex_errmsg(err, errlen, "tensor '%s': dimension %u is %llu (must be 1..2^63-1)", nb, d,
                       (unsigned long long)ne);
                return -1;
            }
            if (count > (uint64_t)INT64_MAX / ne) {
                dspex_errmsg(err, errlen, "tensor '%s': element count overflows (shape product > 2^63)", nb);
                return -1;
            }
            count *= ne;
            t->ne[d] = (int64_t)ne;
        }
        uint32_t type;
        if (get_u32(c, &type) != 0 || get_u64(c, &t->offset) != 0) {
            dspex_errmsg(err, errlen, "tensor '%s': header runs past the end of the file", nb);
            return -1;
        }
        const dspex_type_info *ti = dspex_type((int)type);
        if (ti == NULL) {
            dspex_errmsg(err, errlen, "tensor '%s' has unknown ggml type %u", nb, type);
            return -1;
        }
        t->type = (int)type;
        if (t->ne[0] % ti->block != 0) {
            dspex_errmsg(err, errlen, "tensor '%s': row length %lld is not a multiple of the %s block size %d", nb,
                   (long long)t->ne[0], dspex_ggml_type_name(t->type, tb), ti->block);
            return -1;
        }
        uint64_t blocks = count / (uint64_t)ti->block;
        if (blocks > (uint64_t)INT64_MAX / (uint64_t)ti->bytes) {
            dspex_errmsg(err, errlen, "tensor '%s': byte size overflows", nb);
            return -1;
        }
        t->nbytes = blocks * (uint64_t)ti->bytes;
        if (t->offset % g->alignment != 0) {
            dspex_errmsg(err, errlen, "tensor '%s': offset %llu is not a multiple of the alignment %u", nb,
                   (unsigned long long)t->offset, g->alignment);
            return -1;
        }
    }
    return 0;
}

static int place_tensors(dspex_gguf *g, size_t header_end, char *err, size_t errlen) {
    uint64_t a = g->alignment;
    uint64_t start = ((uint64_t)header_end + a - 1) / a * a;
    if (g->n_tensors == 0) {
        g->data_start = start;
        return 0;
    }
    if (start > g->len) {
        dspex_errmsg(err, errlen, "tensor data section starts at %llu, past the end of the %zu-byte file",
               (unsigned long long)start, g->len);
        return -1;
    }
    g->data_start = start;
    uint64_t avail = g->len - start;
    char nb[96];
    for (size_t i = 0; i < g->n_tensors; i++) {
        dspex_gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            dspex_errmsg(err, errlen,
                   "tensor '%s': data [%llu, +%llu) lies outside the %llu-byte data section (file truncated?)",
                   show(t->name, nb), (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                   (unsigned long long)avail);
            return -1;
        }
        t->data = g->buf + start + t->offset;
    }
    return 0;
}

dspex_gguf *dspex_gguf_parse(const uint8_t *buf, size_t len, char *err, size_t errlen) {
    cursor c = {buf, len, 0};
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    if (get_u32(&c, &magic) != 0 || get_u32(&c, &version) != 0 || get_u64(&c, &n_tensors) != 0 ||
        get_u64(&c, &n_kv) != 0) {
        dspex_errmsg(err, errlen, "file too short for a GGUF header (%zu bytes, need 24)", len);
        return NULL;
    }
    if (magic != 0x46554747u) {
        dspex_errmsg(err, errlen, "not a GGUF file (bad magic)");
        return NULL;
    }
    if ((version & 0xFFFF) == 0 && version != 0) {
        dspex_errmsg(err, errlen, "GGUF version 0x%08x looks byte-swapped (big-endian files are not supported)", version);
        return NULL;
    }
    if (version < 2 || version > 3) {
        dspex_errmsg(err, errlen, "unsupported GGUF version %u (supported: 2, 3)", version);
        return NULL;
    }
    /* every kv is >= 8 (key length) + 4 (type) + 1 bytes; every tensor info >= 8+4+8+4+8 */
    if (n_kv > (len - c.pos) / 13) {
        dspex_errmsg(err, errlen, "metadata key count %llu cannot fit in a %zu-byte file", (unsigned long long)n_kv, len);
        return NULL;
    }
    if (n_tensors > (len - c.pos) / 32) {
        dspex_errmsg(err, errlen, "tensor count %llu cannot fit in a %zu-byte file", (unsigned long long)n_tensors, len);
        return NULL;
    }
    if (n_kv >= UINT32_MAX || n_tensors >= UINT32_MAX) { /* the name indexes hold 32-bit slots */
        dspex_errmsg(err, errlen, "too many keys or tensors");
        return NULL;
    }
    dspex_gguf *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        dspex_errmsg(err, errlen, "out of memory");
        return NULL;
    }
    g->buf = buf;
    g->len = len;
    g->version = version;
    g->n_kv = (size_t)n_kv;
    g->n_tensors = (size_t)n_tensors;
    if (parse_kvs(g, &c, err, errlen) != 0 || parse_alignment(g, err, errlen) != 0 ||
        parse_tensors(g, &c, err, errlen) != 0 || place_tensors(g, c.pos, err, errlen) != 0) {
        dspex_gguf_free(g);
        return NULL;
    }
    return g;
}

dspex_gguf *dspex_gguf_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dspex_errmsg(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dspex_errmsg(err, errlen, "%s is not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    if (len < 24) {
        close(fd);
        dspex_errmsg(err, errlen, "file too short for a GGUF header (%zu bytes, need 24)", len);
        return NULL;
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        dspex_errmsg(err, errlen, "cannot map %s: %s", path, strerror(errno));
        return NULL;
    }
    dspex_gguf *g = dspex_gguf_parse(map, len, err, errlen);
    if (g == NULL) {
        munmap(map, len);
        return NULL;
    }
    g->map = map;
    return g;
}

/* ------------------------------------------------------------------------- access */

uint32_t dspex_gguf_version(const dspex_gguf *g) { return g->version; }
size_t dspex_gguf_file_size(const dspex_gguf *g) { return g->len; }
size_t dspex_gguf_n_kv(const dspex_gguf *g) { return g->n_kv; }
const dspex_gguf_kv *dspex_gguf_kv_at(const dspex_gguf *g, size_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }
size_t dspex_gguf_n_tensors(const dspex_gguf *g) { return g->n_tensors; }
const dspex_gguf_tensor *dspex_gguf_tensor_at(const dspex_gguf *g, size_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const dspex_gguf_kv *dspex_gguf_find(const dspex_gguf *g, const char *key) {
    long i = hash_find(g->kv_hash, g->kv_cap, key, kv_name, g);
    return i < 0 ? NULL : &g->kv[i];
}

const dspex_gguf_tensor *dspex_gguf_find_tensor(const dspex_gguf *g, const char *name) {
    long i = hash_find(g->t_hash, g->t_cap, name, t_name, g);
    return i < 0 ? NULL : &g->tensors[i];
}

int dspex_str_eq(dspex_str s, const char *z) {
    size_t n = strlen(z);
    return s.n == n && memcmp(s.p, z, n) == 0;
}

static int wrong_type(const dspex_gguf_kv *kv, const char *key, const char *want, char *err, size_t errlen) {
    const char *got = dspex_gguf_vtype_name(kv->type);
    if (kv->type == DSPEX_GGUF_ARRAY)
        dspex_errmsg(err, errlen, "key %s has type array of %s, expected %s", key, dspex_gguf_vtype_name(kv->arr_type),
               want);
    else
        dspex_errmsg(err, errlen, "key %s has type %s, expected %s", key, got, want);
    return -1;
}

int dspex_gguf_get_u32(const dspex_gguf *g, const char *key, uint32_t *out, char *err, size_t errlen) {
    const dspex_gguf_kv *kv = dspex_gguf_find(g, key);
    if (kv == NULL) return 1;
    if (kv->type != DSPEX_GGUF_U32) return wrong_type(kv, key, "u32", err, errlen);
    *out = (uint32_t)kv->v.u;
    return 0;
}

int dspex_gguf_get_f32(const dspex_gguf *g, const char *key, float *out, char *err, size_t errlen) {
    const dspex_gguf_kv *kv = dspex_gguf_find(g, key);
    if (kv == NULL) return 1;
    if (kv->type != DSPEX_GGUF_F32) return wrong_type(kv, key, "f32", err, errlen);
    *out = (float)kv->v.f;
    return 0;
}

int dspex_gguf_get_bool(const dspex_gguf *g, const char *key, int *out, char *err, size_t errlen) {
    const dspex_gguf_kv *kv = dspex_gguf_find(g, key);
    if (kv == NULL) return 1;
    if (kv->type != DSPEX_GGUF_BOOL) return wrong_type(kv, key, "bool", err, errlen);
    *out = (int)kv->v.u;
    return 0;
}

int dspex_gguf_get_str(const dspex_gguf *g, const char *key, dspex_str *out, char *err, size_t errlen) {
    const dspex_gguf_kv *kv = dspex_gguf_find(g, key);
    if (kv == NULL) return 1;
    if (kv->type != DSPEX_GGUF_STRING) return wrong_type(kv, key, "string", err, errlen);
    *out = kv->v.s;
    return 0;
}

uint32_t dspex_gguf_arr_u32(const dspex_gguf_kv *kv, uint64_t i) { return (uint32_t)rd_le(kv->arr_data + 4 * i, 4); }
int32_t dspex_gguf_arr_i32(const dspex_gguf_kv *kv, uint64_t i) { return (int32_t)rd_le(kv->arr_data + 4 * i, 4); }
float dspex_gguf_arr_f32(const dspex_gguf_kv *kv, uint64_t i) {
    uint32_t u = (uint32_t)rd_le(kv->arr_data + 4 * i, 4);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
