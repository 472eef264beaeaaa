/* NIF bindings: the JSON codec (DSPex.JSON.decode/encode).
 *
 * json_decode(Binary, {Flags, MaxDepth}) -> {ok, Term} | {error, {json_decode, Msg, Offset}}
 *   Flags bit 0: object keys as existing atoms; bit 4: objects as {ordered, [{Key, Value}]}
 *   in the text's order (a repeated key keeps its first place and its last value, as
 *   Python's json.loads; used by DSPex.Program.load to keep dict order).
 * json_encode(Term, {Flags, MaxDepth}) -> {ok, Binary} | {error, {json_encode, Msg, nil | {term, T}}}
 *   Flags bit 0: pretty, bit 1: sort_keys, bit 2: escape non-ASCII as \uXXXX.
 *
 * Both start on a normal scheduler and move to a dirty CPU scheduler by the one rule of
 * nif_util.h: decode by its input size, encode by an estimate over the whole term (walked
 * up to the bound). A decode also restarts on a dirty scheduler when it meets an integer
 * literal over 1000 digits (quadratic to convert), which its size alone does not show.
 * Neither recurses on the C stack: nesting uses heap stacks bounded by MaxDepth. */
#include "nif_util.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/json.h"

#define DEC_KEYS_EXISTING_ATOMS 1
#define DEC_OBJECTS_ORDERED 16
#define ENC_PRETTY 1
#define ENC_SORT_KEYS 2
#define ENC_ESCAPE_UNICODE 4
/* Integer literals longer than this move the decode to a dirty scheduler. */
#define BIGINT_NORMAL_DIGITS 1000
/* Strings longer than this that needed no unescaping become sub-binaries of the input. */
#define SUB_BINARY_MIN 64

static int get_opts(ErlNifEnv *env, ERL_NIF_TERM t, int *flags, unsigned *max_depth) {
    const ERL_NIF_TERM *el;
    int arity;
    if (!enif_get_tuple(env, t, &arity, &el) || arity != 2) return 0;
    if (!enif_get_int(env, el[0], flags)) return 0;
    if (!enif_get_uint(env, el[1], max_depth) || *max_depth == 0) return 0;
    return 1;
}

/* ==================================================================================== */
/* Decode                                                                               */

typedef struct {
    size_t vstart, kstart;
    int is_obj;
} DecFrame;

/* Object keys repeat (arrays of similar objects): a small direct-mapped cache of key
 * terms for short keys read straight from the input, so equal keys share one term. */
#define KEY_CACHE_SIZE 256
#define KEY_CACHE_MAX_LEN 32

typedef struct {
    const char *str; /* points into the input */
    size_t len;
    ERL_NIF_TERM term;
} KeyCacheEnt;

typedef struct {
    ErlNifEnv *env;
    ERL_NIF_TERM input;
    const DspexAtoms *a;
    int flags;
    KeyCacheEnt *kcache; /* allocated on the first object key */
    ERL_NIF_TERM *vals, *keys;
    size_t nv, cv, nk, ck;
    DecFrame *frames;
    size_t nf, cf;
} Dec;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 32;
    while (c < need) c *= 2;
    void *q = enif_realloc(*p, c * elem);
    if (q == NULL) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static ERL_NIF_TERM make_string(Dec *d, const dspex_json_event *ev) {
    if (ev->in_input && ev->len > SUB_BINARY_MIN) return enif_make_sub_binary(d->env, d->input, ev->offset, ev->len);
    ERL_NIF_TERM t;
    unsigned char *dst = enif_make_new_binary(d->env, ev->len, &t);
    if (dst == NULL) return 0;
    if (ev->len) memcpy(dst, ev->str, ev->len);
    return t;
}

/* Key as an existing atom. Returns 0 (and writes a message) when it is not one. */
static int existing_atom(Dec *d, const dspex_json_event *ev, ERL_NIF_TERM *out, char *msg, size_t cap) {
    int ascii = 1;
    for (size_t k = 0; k < ev->len; k++)
        if ((unsigned char)ev->str[k] >= 0x80) {
            ascii = 0;
            break;
        }
    if (ascii && ev->len <= 255) {
        if (enif_make_existing_atom_len(d->env, ev->str, ev->len, out, ERL_NIF_LATIN1)) return 1;
    } else if (!ascii && ev->len <= 1020) {
        /* OTP 25's NIF API only looks up Latin-1 atoms; go through the external term
         * format (ATOM_UTF8_EXT) with the safe flag, which refuses to create atoms. */
        unsigned char buf[1024 + 4];
        buf[0] = 131;
        buf[1] = 118;
        buf[2] = (unsigned char)(ev->len >> 8);
        buf[3] = (unsigned char)ev->len;
        memcpy(buf + 4, ev->str, ev->len);
        if (enif_binary_to_term(d->env, buf, ev->len + 4, out, ERL_NIF_BIN2TERM_SAFE) == ev->len + 4) return 1;
    }
    size_t shown = ev->len > 60 ? 60 : ev->len;
    while (shown > 0 && shown < ev->len && ((unsigned char)ev->str[shown] & 0xC0) == 0x80) shown--;
    snprintf(msg, cap, "object key \"%.*s%s\" at byte %zu is not an existing atom (keys: :atoms_existing)",
             (int)shown, ev->str, shown < ev->len ? "..." : "", ev->offset ? ev->offset - 1 : 0);
    return 0;
}

static ERL_NIF_TERM make_bigint(Dec *d, const dspex_json_event *ev) {
    const char *s = ev->str;
    size_t n = ev->len;
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        s++;
        n--;
    }
    size_t cap = n / 2 + 16;
    unsigned char *buf = enif_alloc(cap + 8);
    if (buf == NULL) return 0;
    /* external term format: 131, SMALL_BIG_EXT (110) n:8 or LARGE_BIG_EXT (111) n:32,
     * sign:8, little-endian magnitude. The magnitude is written at buf + 8. */
    size_t nb = dspex_json_decimal_to_bytes(s, n, buf + 8, cap);
    ERL_NIF_TERM t = 0;
    if (nb > 0) {
        size_t off;
        buf[7] = (unsigned char)neg;
        if (nb <= 255) {
            off = 4;
            buf[4] = 131;
            buf[5] = 110;
            buf[6] = (unsigned char)nb;
        } else {
            off = 1;
            buf[1] = 131;
            buf[2] = 111;
            buf[3] = (unsigned char)(nb >> 24);
            buf[4] = (unsigned char)(nb >> 16);
            buf[5] = (unsigned char)(nb >> 8);
            buf[6] = (unsigned char)nb;
        }
        size_t total = 8 + nb - off;
        if (enif_binary_to_term(d->env, buf + off, total, &t, 0) != total) t = 0;
    }
    enif_free(buf);
    return t;
}

static ERL_NIF_TERM decode_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    int flags;
    unsigned max_depth;
    const DspexAtoms *a = dspex_atoms(env);
    if (argc != 2 || !enif_inspect_binary(env, argv[0], &bin))
        return dspex_raise_badarg(env, "DSPex.JSON.decode expects a binary");
    if (!get_opts(env, argv[1], &flags, &max_depth))
        return dspex_raise_badarg(env, "json_decode: options must be {flags, max_depth > 0}");

    Dec d;
    memset(&d, 0, sizeof(d));
    d.env = env;
    d.input = argv[0];
    d.a = a;
    d.flags = flags;

    dspex_json_parser p;
    dspex_json_parser_init(&p, bin.data, bin.size, max_depth);
    dspex_json_event ev;
    ERL_NIF_TERM result = 0;
    char msg[256];
    const char *errmsg = NULL;
    size_t erroff = 0;
    int resched = 0;

    for (;;) {
        int t = dspex_json_next(&p, &ev);
        ERL_NIF_TERM v;
        switch (t) {
        case DSPEX_JSON_EV_ERROR:
            errmsg = p.err_msg;
            erroff = p.err_offset;
            goto done;
        case DSPEX_JSON_EV_END:
            result = d.nv == 1 ? d.vals[0] : a->nil;
            goto done;
        case DSPEX_JSON_EV_NULL: v = a->nil; break;
        case DSPEX_JSON_EV_TRUE: v = a->true_; break;
        case DSPEX_JSON_EV_FALSE: v = a->false_; break;
        case DSPEX_JSON_EV_INT: v = enif_make_int64(env, ev.i); break;
        case DSPEX_JSON_EV_FLOAT: v = enif_make_double(env, ev.d); break;
        case DSPEX_JSON_EV_BIGINT:
            if (ev.len > BIGINT_NORMAL_DIGITS && dspex_on_normal_scheduler()) {
                resched = 1; /* quadratic conversion: redo the whole decode on a dirty scheduler */
                goto done;
            }
            v = make_bigint(&d, &ev);
            if (v == 0) goto nomem;
            break;
        case DSPEX_JSON_EV_STRING:
            v = make_string(&d, &ev);
            if (v == 0) goto nomem;
            break;
        case DSPEX_JSON_EV_KEY: {
            KeyCacheEnt *ce = NULL;
            if (ev.in_input && ev.len <= KEY_CACHE_MAX_LEN) {
                if (d.kcache == NULL) {
                    d.kcache = enif_alloc(KEY_CACHE_SIZE * sizeof(KeyCacheEnt));
                    if (d.kcache == NULL) goto nomem;
                    memset(d.kcache, 0, KEY_CACHE_SIZE * sizeof(KeyCacheEnt));
                }
                uint32_t h = 2166136261u ^ (uint32_t)ev.len;
                for (size_t k = 0; k < ev.len; k++) h = (h ^ (unsigned char)ev.str[k]) * 16777619u;
                ce = &d.kcache[(h ^ (h >> 16)) & (KEY_CACHE_SIZE - 1)];
                if (ce->str != NULL && ce->len == ev.len && memcmp(ce->str, ev.str, ev.len) == 0) {
                    v = ce->term;
                    goto push_key;
                }
            }
            if (flags & DEC_KEYS_EXISTING_ATOMS) {
                if (!existing_atom(&d, &ev, &v, msg, sizeof(msg))) {
                    errmsg = msg;
                    erroff = ev.offset ? ev.offset - 1 : 0;
                    goto done;
                }
            } else {
                v = make_string(&d, &ev);
                if (v == 0) goto nomem;
            }
            if (ce != NULL) {
                ce->str = ev.str;
                ce->len = ev.len;
                ce->term = v;
            }
        push_key:
            if (!grow((void **)&d.keys, &d.ck, d.nk + 1, sizeof(ERL_NIF_TERM))) goto nomem;
            d.keys[d.nk++] = v;
            continue;
        }
        case DSPEX_JSON_EV_OBJECT_START:
        case DSPEX_JSON_EV_ARRAY_START:
            if (!grow((void **)&d.frames, &d.cf, d.nf + 1, sizeof(DecFrame))) goto nomem;
            d.frames[d.nf].vstart = d.nv;
            d.frames[d.nf].kstart = d.nk;
            d.frames[d.nf].is_obj = t == DSPEX_JSON_EV_OBJECT_START;
            d.nf++;
            continue;
        case DSPEX_JSON_EV_ARRAY_END: {
            DecFrame *f = &d.frames[--d.nf];
            size_t n = d.nv - f->vstart;
            v = enif_make_list_from_array(env, d.vals + f->vstart, (unsigned)n);
            d.nv = f->vstart;
            break;
        }
        case DSPEX_JSON_EV_OBJECT_END: {
            DecFrame *f = &d.frames[--d.nf];
            size_t n = d.nv - f->vstart;
            ERL_NIF_TERM *ks = d.keys + f->kstart, *vs = d.vals + f->vstart;
            int dup = !enif_make_map_from_arrays(env, ks, vs, n, &v);
            if (dup) {
                /* duplicate keys: the last occurrence wins */
                v = enif_make_new_map(env);
                for (size_t k = 0; k < n; k++) enif_make_map_put(env, v, ks[k], vs[k], &v);
            }
            if (flags & DEC_OBJECTS_ORDERED) {
                if (dup) {
                    /* each key once, at its first place, with its last value (compacted in
                     * place: the write index never passes the read index) */
                    ERL_NIF_TERM left = v, val;
                    size_t j = 0;
                    for (size_t k = 0; k < n; k++) {
                        if (!enif_get_map_value(env, left, ks[k], &val)) continue;
                        enif_make_map_remove(env, left, ks[k], &left);
                        ks[j] = ks[k];
                        vs[j++] = val;
                    }
                    n = j;
                }
                ERL_NIF_TERM pairs = enif_make_list(env, 0);
                for (size_t k = n; k-- > 0;)
                    pairs = enif_make_list_cell(env, enif_make_tuple2(env, ks[k], vs[k]), pairs);
                v = enif_make_tuple2(env, a->json_ordered, pairs);
            }
            d.nv = f->vstart;
            d.nk = f->kstart;
            break;
        }
        default:
            continue;
        }
        if (!grow((void **)&d.vals, &d.cv, d.nv + 1, sizeof(ERL_NIF_TERM))) goto nomem;
        d.vals[d.nv++] = v;
    }
nomem:
    errmsg = "out of memory while decoding";
    erroff = ev.offset;
done:;
    ERL_NIF_TERM ret = resched ? 0
                       : errmsg ? dspex_error(env, a->json_decode, errmsg, (long)erroff)
                                : dspex_ok(env, result);
    dspex_json_parser_free(&p);
    if (d.vals) enif_free(d.vals);
    if (d.keys) enif_free(d.keys);
    if (d.frames) enif_free(d.frames);
    if (d.kcache) enif_free(d.kcache);
    if (resched) return enif_schedule_nif(env, "json_decode", ERL_NIF_DIRTY_JOB_CPU_BOUND, decode_impl, argc, argv);
    return ret;
}

ERL_NIF_TERM dspex_nif_json_decode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    dspex_work w = {0};
    if (argc == 2 && enif_inspect_binary(env, argv[0], &bin)) dspex_work_add(&w, bin.size * DSPEX_COST_SCAN_BYTE);
    return dspex_run(env, &w, "json_decode", decode_impl, argc, argv);
}

/* ==================================================================================== */
/* Encode                                                                               */

typedef struct {
    ERL_NIF_TERM key, val;
    const unsigned char *kptr; /* binary key bytes, or NULL: key text is in the arena */
    size_t koff, klen;
    const unsigned char *sp;   /* resolved key pointer, only while sorting */
    int katom;
} Ent;

typedef struct {
    int is_obj;
    int first;
    ERL_NIF_TERM tail;         /* arrays */
    size_t estart, n, idx;     /* objects: entries [estart, estart + n) */
    size_t arena_start;
} EncFrame;

enum { ENC_OK = 0, ENC_ERR = 1, ENC_NOMEM = 2 };

typedef struct {
    ErlNifEnv *env;
    const DspexAtoms *a;
    int flags;
    unsigned max_depth;
    /* output: local buffer first, then a growable ErlNifBinary */
    char *buf;
    size_t len, cap;
    ErlNifBinary bin;
    int have_bin;
    /* stacks */
    EncFrame *frames;
    size_t nf, cf;
    Ent *ents;
    size_t ne, ce;
    char *arena;
    size_t na, ca;
    /* error */
    char msg[256];
    ERL_NIF_TERM err_term;
    int has_err_term;
    char local[2048]; /* last: not cleared */
} Enc;

static int enc_error(Enc *e, ERL_NIF_TERM term, int with_term, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int enc_error(Enc *e, ERL_NIF_TERM term, int with_term, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->err_term = term;
    e->has_err_term = with_term;
    return ENC_ERR;
}

static int reserve_slow(Enc *e, size_t extra) {
    size_t cap = e->cap * 2;
    while (cap < e->len + extra) {
        if (cap > SIZE_MAX / 4) return ENC_NOMEM;
        cap *= 2;
    }
    if (!e->have_bin) {
        if (!enif_alloc_binary(cap, &e->bin)) return ENC_NOMEM;
        memcpy(e->bin.data, e->buf, e->len);
        e->have_bin = 1;
    } else if (!enif_realloc_binary(&e->bin, cap)) {
        return ENC_NOMEM;
    }
    e->buf = (char *)e->bin.data;
    e->cap = cap;
    return ENC_OK;
}

static inline int reserve(Enc *e, size_t extra) {
    if (e->len + extra <= e->cap) return ENC_OK;
    return reserve_slow(e, extra);
}

#define PUT(e, s, n)                                 \
    do {                                             \
        int r_ = reserve((e), (n));                  \
        if (r_) return r_;                           \
        memcpy((e)->buf + (e)->len, (s), (n));       \
        (e)->len += (n);                             \
    } while (0)

#define PUTC(e, c)                                   \
    do {                                             \
        int r_ = reserve((e), 1);                    \
        if (r_) return r_;                           \
        (e)->buf[(e)->len++] = (char)(c);            \
    } while (0)

static int newline_indent(Enc *e, size_t level) {
    size_t n = 1 + 2 * level;
    int r = reserve(e, n);
    if (r) return r;
    e->buf[e->len] = '\n';
    memset(e->buf + e->len + 1, ' ', n - 1);
    e->len += n;
    return ENC_OK;
}

#define ESC_CHUNK 4096

static int write_string(Enc *e, const unsigned char *s, size_t n, ERL_NIF_TERM term, int is_key) {
    int ef = (e->flags & ENC_ESCAPE_UNICODE) ? DSPEX_JSON_ESCAPE_UNICODE : 0;
    size_t bad = 0, done = 0;
    int r;
    if ((r = reserve(e, 1))) return r;
    e->buf[e->len++] = '"';
    /* One pass, in chunks of at most ESC_CHUNK input bytes (ending before a UTF-8 lead or
     * ASCII byte, so no character is split), each with room for its worst case (6x). */
    while (done < n) {
        size_t end = n - done <= ESC_CHUNK ? n : done + ESC_CHUNK;
        for (int k = 0; k < 3 && end < n && end > done + 1 && (s[end] & 0xC0) == 0x80; k++) end--;
        size_t len = end - done;
        if ((r = reserve(e, 6 * len + 1))) return r;
        size_t el = dspex_json_escape(e->buf + e->len, s + done, len, ef, &bad);
        if (el == SIZE_MAX) {
            bad += done;
            return enc_error(e, term, 1, "invalid UTF-8 at byte %zu of a %s (JSON text must be UTF-8)", bad,
                             is_key ? "map key" : "string");
        }
        e->len += el;
        done = end;
    }
    if ((r = reserve(e, 1))) return r;
    e->buf[e->len++] = '"';
    return ENC_OK;
}

/* Appends the UTF-8 text of an atom to the arena; returns its length via *len. */
static int atom_text(Enc *e, ERL_NIF_TERM atom, size_t *off, size_t *len) {
    unsigned alen;
    *off = e->na;
    if (enif_get_atom_length(e->env, atom, &alen, ERL_NIF_LATIN1)) {
        /* Latin-1 -> UTF-8 takes at most 2 bytes per character. */
        if (!grow((void **)&e->arena, &e->ca, e->na + 2 * (size_t)alen + 1, 1)) return ENC_NOMEM;
        char *tmp = e->arena + e->na + alen; /* scratch after the worst-case region start */
        /* get the Latin-1 text into the tail, then expand in place from the front */
        if (enif_get_atom(e->env, atom, tmp, alen + 1, ERL_NIF_LATIN1) <= 0) return ENC_NOMEM;
        size_t o = e->na;
        for (unsigned k = 0; k < alen; k++) {
            unsigned char c = (unsigned char)tmp[k];
            if (c < 0x80) {
                e->arena[o++] = (char)c;
            } else {
                e->arena[o++] = (char)(0xC0 | (c >> 6));
                e->arena[o++] = (char)(0x80 | (c & 0x3F));
            }
        }
        *len = o - e->na;
        e->na = o;
        return ENC_OK;
    }
    /* Atom with characters beyond Latin-1: read its UTF-8 name from the external format. */
    ErlNifBinary b;
    if (!enif_term_to_binary(e->env, atom, &b)) return ENC_NOMEM;
    size_t hdr, n = 0;
    if (b.size >= 4 && b.data[1] == 118) {
        n = ((size_t)b.data[2] << 8) | b.data[3];
        hdr = 4;
    } else if (b.size >= 3 && b.data[1] == 119) {
        n = b.data[2];
        hdr = 3;
    } else {
        enif_release_binary(&b);
        return enc_error(e, atom, 1, "cannot read the name of atom");
    }
    if (hdr + n > b.size || !grow((void **)&e->arena, &e->ca, e->na + n + 1, 1)) {
        enif_release_binary(&b);
        return ENC_NOMEM;
    }
    memcpy(e->arena + e->na, b.data + hdr, n);
    e->na += n;
    *len = n;
    enif_release_binary(&b);
    return ENC_OK;
}

static int write_bigint(Enc *e, ERL_NIF_TERM t) {
    ErlNifBinary b;
    if (!enif_term_to_binary(e->env, t, &b)) return ENC_NOMEM;
    const unsigned char *mag;
    size_t nb;
    int neg;
    if (b.size >= 4 && b.data[1] == 110) {
        nb = b.data[2];
        neg = b.data[3];
        mag = b.data + 4;
    } else if (b.size >= 7 && b.data[1] == 111) {
        nb = ((size_t)b.data[2] << 24) | ((size_t)b.data[3] << 16) | ((size_t)b.data[4] << 8) | b.data[5];
        neg = b.data[6];
        mag = b.data + 7;
    } else {
        enif_release_binary(&b);
        return enc_error(e, t, 1, "cannot read integer");
    }
    size_t cap = nb * 25 / 10 + 4;
    int r = reserve(e, cap + 1);
    if (r) {
        enif_release_binary(&b);
        return r;
    }
    if (neg) e->buf[e->len++] = '-';
    size_t w = dspex_json_bytes_to_decimal(mag, nb, e->buf + e->len, cap);
    enif_release_binary(&b);
    if (w == 0) return ENC_NOMEM;
    e->len += w;
    return ENC_OK;
}

static int cmp_ent(const void *x, const void *y) {
    const Ent *a = x, *b = y;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = n ? memcmp(a->sp, b->sp, n) : 0;
    if (c) return c;
    if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
    if (a->katom != b->katom) return a->katom ? -1 : 1;
    return enif_compare(a->val, b->val);
}

/* Adds one object entry with key k (atom or binary). */
static int add_ent(Enc *e, ERL_NIF_TERM k, ERL_NIF_TERM v) {
    if (!grow((void **)&e->ents, &e->ce, e->ne + 1, sizeof(Ent))) return ENC_NOMEM;
    Ent *en = &e->ents[e->ne];
    en->key = k;
    en->val = v;
    en->sp = NULL;
    ErlNifBinary kb;
    if (enif_inspect_binary(e->env, k, &kb)) {
        en->kptr = kb.data;
        en->klen = kb.size;
        en->koff = 0;
        en->katom = 0;
    } else if (enif_is_atom(e->env, k)) {
        int r = atom_text(e, k, &en->koff, &en->klen);
        if (r) return r;
        en->kptr = NULL;
        en->katom = 1;
    } else {
        return enc_error(e, k, 1, "cannot encode map key (JSON object keys must be strings; use atom or binary keys)");
    }
    e->ne++;
    return ENC_OK;
}

static int push_frame(Enc *e, int is_obj, ERL_NIF_TERM tail, size_t estart, size_t arena_start, ERL_NIF_TERM t) {
    if (e->nf >= e->max_depth)
        return enc_error(e, t, 0, "nesting depth exceeds max_depth (%u)", e->max_depth);
    if (!grow((void **)&e->frames, &e->cf, e->nf + 1, sizeof(EncFrame))) return ENC_NOMEM;
    EncFrame *f = &e->frames[e->nf++];
    f->is_obj = is_obj;
    f->first = 1;
    f->tail = tail;
    f->estart = estart;
    f->n = e->ne - estart;
    f->idx = 0;
    f->arena_start = arena_start;
    if (is_obj && (e->flags & ENC_SORT_KEYS) && f->n > 1 && t != 0) {
        for (size_t k = estart; k < e->ne; k++)
            e->ents[k].sp = e->ents[k].kptr ? e->ents[k].kptr : (const unsigned char *)e->arena + e->ents[k].koff;
        qsort(e->ents + estart, f->n, sizeof(Ent), cmp_ent);
    }
    return ENC_OK;
}

static int is_kw_pair(Enc *e, ERL_NIF_TERM h, ERL_NIF_TERM *k, ERL_NIF_TERM *v) {
    const ERL_NIF_TERM *el;
    int arity;
    if (!enif_get_tuple(e->env, h, &arity, &el) || arity != 2 || !enif_is_atom(e->env, el[0])) return 0;
    *k = el[0];
    *v = el[1];
    return 1;
}

/* A keyword list: a proper list of {atom, value} pairs, none of which is an
 * {:ordered, list} object (a list holding one of those is an array). */
static int is_keyword_list(Enc *e, ERL_NIF_TERM t) {
    ERL_NIF_TERM h, tl, k, v;
    while (enif_get_list_cell(e->env, t, &h, &tl)) {
        if (!is_kw_pair(e, h, &k, &v)) return 0;
        if (k == e->a->json_ordered && enif_is_list(e->env, v)) return 0;
        t = tl;
    }
    return enif_is_empty_list(e->env, t);
}

/* Writes a scalar, or opens a container (writes its bracket and pushes a frame). */
static int encode_value(Enc *e, ERL_NIF_TERM t) {
    ErlNifEnv *env = e->env;
    const DspexAtoms *a = e->a;
    switch (enif_term_type(env, t)) {
    case ERL_NIF_TERM_TYPE_ATOM: {
        if (t == a->nil) {
            PUT(e, "null", 4);
            return ENC_OK;
        }
        if (t == a->true_) {
            PUT(e, "true", 4);
            return ENC_OK;
        }
        if (t == a->false_) {
            PUT(e, "false", 5);
            return ENC_OK;
        }
        size_t off, len, save = e->na;
        int r = atom_text(e, t, &off, &len);
        if (r) return r;
        r = write_string(e, (const unsigned char *)e->arena + off, len, t, 0);
        e->na = save;
        return r;
    }
    case ERL_NIF_TERM_TYPE_BITSTRING: {
        ErlNifBinary b;
        if (!enif_inspect_binary(env, t, &b))
            return enc_error(e, t, 1, "cannot encode a bitstring that is not a whole number of bytes");
        return write_string(e, b.data, b.size, t, 0);
    }
    case ERL_NIF_TERM_TYPE_INTEGER: {
        ErlNifSInt64 i;
        if (enif_get_int64(env, t, &i)) {
            int r = reserve(e, 24);
            if (r) return r;
            e->len += (size_t)dspex_json_format_int64(e->buf + e->len, (int64_t)i);
            return ENC_OK;
        }
        return write_bigint(e, t);
    }
    case ERL_NIF_TERM_TYPE_FLOAT: {
        double d;
        enif_get_double(env, t, &d);
        int r = reserve(e, 40);
        if (r) return r;
        int n = dspex_json_format_double(e->buf + e->len, d);
        if (n < 0) return enc_error(e, t, 1, "cannot encode a non-finite float");
        e->len += (size_t)n;
        return ENC_OK;
    }
    case ERL_NIF_TERM_TYPE_LIST: {
        ERL_NIF_TERM h, tl, k, v;
        if (!enif_get_list_cell(env, t, &h, &tl)) {
            PUT(e, "[]", 2);
            return ENC_OK;
        }
        int kw = is_kw_pair(e, h, &k, &v) ? is_keyword_list(e, t) : 0;
        if (kw) {
            /* keyword list: an object keeping the list's order */
            size_t estart = e->ne, astart = e->na;
            ERL_NIF_TERM cur = t;
            while (enif_get_list_cell(env, cur, &h, &tl)) {
                is_kw_pair(e, h, &k, &v);
                int r = add_ent(e, k, v);
                if (r) return r;
                cur = tl;
            }
            PUTC(e, '{');
            return push_frame(e, 1, 0, estart, astart, 0);
        }
        PUTC(e, '[');
        return push_frame(e, 0, t, e->ne, e->na, 0);
    }
    case ERL_NIF_TERM_TYPE_MAP: {
        size_t size;
        ERL_NIF_TERM sv;
        enif_get_map_size(env, t, &size);
        if (size > 0 && enif_get_map_value(env, t, a->json_struct, &sv))
            return enc_error(e, t, 1, "cannot encode a struct; convert it to a map first (e.g. Map.from_struct/1)");
        if (size == 0) {
            PUT(e, "{}", 2);
            return ENC_OK;
        }
        if (!grow((void **)&e->ents, &e->ce, e->ne + size, sizeof(Ent))) return ENC_NOMEM;
        size_t estart = e->ne, astart = e->na;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return ENC_NOMEM;
        ERL_NIF_TERM k, v;
        int r = ENC_OK;
        while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
            r = add_ent(e, k, v);
            if (r) break;
            enif_map_iterator_next(env, &it);
        }
        enif_map_iterator_destroy(env, &it);
        if (r) return r;
        PUTC(e, '{');
        return push_frame(e, 1, 0, estart, astart, t);
    }
    case ERL_NIF_TERM_TYPE_TUPLE: {
        const ERL_NIF_TERM *el;
        int arity;
        enif_get_tuple(env, t, &arity, &el);
        if (arity == 2 && el[0] == a->json_ordered && enif_is_list(env, el[1])) {
            size_t estart = e->ne, astart = e->na;
            ERL_NIF_TERM cur = el[1], h, tl;
            while (enif_get_list_cell(env, cur, &h, &tl)) {
                const ERL_NIF_TERM *pe;
                int pa;
                if (!enif_get_tuple(env, h, &pa, &pe) || pa != 2)
                    return enc_error(e, h, 1, "cannot encode {:ordered, pairs}: every element must be a {key, value} tuple, found");
                int r = add_ent(e, pe[0], pe[1]);
                if (r) return r;
                cur = tl;
            }
            if (!enif_is_empty_list(env, cur)) return enc_error(e, t, 1, "cannot encode an improper list");
            PUTC(e, '{');
            return push_frame(e, 1, 0, estart, astart, 0);
        }
        return enc_error(e, t, 1, "cannot encode tuple (JSON objects are maps, keyword lists whose elements are all {atom, value} "
                         "pairs, and {:ordered, [{key, value}]} tuples)");
    }
    case ERL_NIF_TERM_TYPE_PID:
        return enc_error(e, t, 1, "cannot encode a pid");
    case ERL_NIF_TERM_TYPE_PORT:
        return enc_error(e, t, 1, "cannot encode a port");
    case ERL_NIF_TERM_TYPE_REFERENCE:
        return enc_error(e, t, 1, "cannot encode a reference");
    case ERL_NIF_TERM_TYPE_FUN:
        return enc_error(e, t, 1, "cannot encode a function");
    default:
        return enc_error(e, t, 1, "cannot encode term");
    }
}

static int encode_loop(Enc *e, ERL_NIF_TERM root) {
    const int pretty = e->flags & ENC_PRETTY;
    int r = encode_value(e, root);
    if (r) return r;
    while (e->nf > 0) {
        EncFrame *f = &e->frames[e->nf - 1];
        size_t level = e->nf;
        if (!f->is_obj) {
            ERL_NIF_TERM h, tl;
            if (enif_get_list_cell(e->env, f->tail, &h, &tl)) {
                int first = f->first;
                f->first = 0;
                f->tail = tl;
                if (!first) PUTC(e, ',');
                if (pretty && (r = newline_indent(e, level))) return r;
                if ((r = encode_value(e, h))) return r;
                continue;
            }
            if (!enif_is_empty_list(e->env, f->tail))
                return enc_error(e, f->tail, 1, "cannot encode an improper list; its tail is");
            int first = f->first;
            e->nf--;
            if (pretty && !first && (r = newline_indent(e, level - 1))) return r;
            PUTC(e, ']');
            continue;
        }
        if (f->idx < f->n) {
            Ent *en = &e->ents[f->estart + f->idx];
            int first = f->idx == 0;
            f->idx++;
            ERL_NIF_TERM val = en->val;
            const unsigned char *kp = en->kptr ? en->kptr : (const unsigned char *)e->arena + en->koff;
            if (!first) PUTC(e, ',');
            if (pretty && (r = newline_indent(e, level))) return r;
            if ((r = write_string(e, kp, en->klen, en->key, 1))) return r;
            if (pretty)
                PUT(e, ": ", 2);
            else
                PUTC(e, ':');
            if ((r = encode_value(e, val))) return r;
            continue;
        }
        int empty = f->n == 0;
        e->ne = f->estart;
        e->na = f->arena_start;
        e->nf--;
        if (pretty && !empty && (r = newline_indent(e, level - 1))) return r;
        PUTC(e, '}');
    }
    return ENC_OK;
}

static ERL_NIF_TERM encode_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *a = dspex_atoms(env);
    int flags;
    unsigned max_depth;
    if (argc != 2 || !get_opts(env, argv[1], &flags, &max_depth))
        return dspex_raise_badarg(env, "json_encode: options must be {flags, max_depth > 0}");
    Enc *e = enif_alloc(sizeof(Enc));
    if (e == NULL) return enif_raise_exception(env, a->out_of_memory);
    memset(e, 0, offsetof(Enc, local));
    e->msg[0] = 0;
    e->env = env;
    e->a = a;
    e->flags = flags;
    e->max_depth = max_depth;
    e->buf = e->local;
    e->len = 0;
    e->cap = sizeof(e->local);

    int r = encode_loop(e, argv[0]);
    ERL_NIF_TERM ret;
    if (r == ENC_OK) {
        ERL_NIF_TERM out;
        if (e->have_bin) {
            if (!enif_realloc_binary(&e->bin, e->len)) {
                enif_release_binary(&e->bin);
                ret = enif_raise_exception(env, a->out_of_memory);
                goto cleanup;
            }
            out = enif_make_binary(env, &e->bin);
            e->have_bin = 0;
        } else {
            out = dspex_make_binary(env, e->buf, e->len);
        }
        ret = dspex_ok(env, out);
    } else if (r == ENC_ERR) {
        ERL_NIF_TERM pos = e->has_err_term ? enif_make_tuple2(env, a->json_term, e->err_term) : a->nil;
        ERL_NIF_TERM msg = dspex_make_binary(env, e->msg, strlen(e->msg));
        ret = enif_make_tuple2(env, a->error, enif_make_tuple3(env, a->json_encode, msg, pos));
    } else {
        ret = dspex_error(env, a->json_encode, "out of memory while encoding", -1);
    }
cleanup:
    if (e->have_bin) enif_release_binary(&e->bin);
    if (e->frames) enif_free(e->frames);
    if (e->ents) enif_free(e->ents);
    if (e->arena) enif_free(e->arena);
    enif_free(e);
    return ret;
}

ERL_NIF_TERM dspex_nif_json_encode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_work w = {0};
    if (argc == 2) dspex_work_term(env, &w, argv[0], DSPEX_COST_COPY_BYTE);
    return dspex_run(env, &w, "json_encode", encode_impl, argc, argv);
}
