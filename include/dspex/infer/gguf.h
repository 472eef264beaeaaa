/* GGUF reader: parses a GGUF v2/v3 file held in memory (normally an mmap of the file)
 * without copying tensor data. Every count, length, offset, alignment and shape product
 * is checked against the buffer size before use, with overflow-safe arithmetic, so a
 * hostile file yields an error string naming the key or tensor, never a crash, abort or
 * an allocation larger than a small multiple of the file size.
 *
 * Limits (documented here, enforced by the parser):
 *   - version 2 or 3; little-endian only (a byte-swapped header is named as such);
 *   - keys: 1..65535 bytes, unique; values of the 13 GGUF types; arrays of non-array
 *     elements only (nested arrays are refused, as ggml does); BOOL must be 0 or 1;
 *   - general.alignment: u32, a power of two in 1..2^20 (default 32);
 *   - tensors: names 1..63 bytes (ggml's GGML_MAX_NAME), unique; 1..4 dims, each >= 1;
 *     a known ggml type whose block size divides ne0; element count and byte size fit in
 *     int64; offset a multiple of the alignment; data inside the buffer;
 *   - memory: the index holds one record per key, tensor and string-array element, each
 *     backed by at least 8 bytes of file, so it stays within a small multiple (< 8x) of
 *     the file size; fewer than 2^32-1 keys and tensors.
 * The buffer must outlive the returned object (dspex_gguf_open owns its own mapping).
 * A file that another process truncates while it is mapped can still fault on access
 * (SIGBUS), as with any mmap-based loader (llama.cpp's included): load from files that are
 * not being rewritten. */
#ifndef DSPEX_INFER_GGUF_H
#define DSPEX_INFER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#define DSPEX_GGUF_ERR_LEN 256 /* size of the error buffers callers pass in */
#define DSPEX_GGUF_MAX_DIMS 4
#define DSPEX_GGUF_MAX_NAME 64     /* tensor names are < 64 bytes */
#define DSPEX_GGUF_MAX_KEY 65535   /* key length bound from the GGUF spec */
#define DSPEX_GGUF_MAX_ALIGN (1u << 20)

/* Metadata value types (GGUF spec codes). */
typedef enum {
    DSPEX_GGUF_U8 = 0,
    DSPEX_GGUF_I8 = 1,
    DSPEX_GGUF_U16 = 2,
    DSPEX_GGUF_I16 = 3,
    DSPEX_GGUF_U32 = 4,
    DSPEX_GGUF_I32 = 5,
    DSPEX_GGUF_F32 = 6,
    DSPEX_GGUF_BOOL = 7,
    DSPEX_GGUF_STRING = 8,
    DSPEX_GGUF_ARRAY = 9,
    DSPEX_GGUF_U64 = 10,
    DSPEX_GGUF_I64 = 11,
    DSPEX_GGUF_F64 = 12,
    DSPEX_GGUF_TYPE_COUNT = 13
} dspex_gguf_vtype;

/* A byte range inside the file (not NUL-terminated). */
typedef struct {
    const char *p; /* first byte, inside the buffer */
    size_t n;      /* length in bytes */
} dspex_str;

/* One metadata key/value pair. Scalars are decoded; arrays point into the file. */
typedef struct {
    dspex_str key;         /* the key, e.g. "llama.block_count" */
    dspex_gguf_vtype type; /* value type */
    union {
        uint64_t u;  /* U8/U16/U32/U64/BOOL, zero-extended */
        int64_t i;   /* I8/I16/I32/I64, sign-extended */
        double f;    /* F32/F64 */
        dspex_str s; /* STRING */
    } v;
    dspex_gguf_vtype arr_type; /* ARRAY: element type (never ARRAY) */
    uint64_t arr_n;            /* ARRAY: number of elements */
    const uint8_t *arr_data;   /* ARRAY of fixed-size elements: first element (unaligned) */
    const dspex_str *arr_str;  /* ARRAY of STRING: one view per element */
} dspex_gguf_kv;

/* One tensor: its shape, ggml type and a pointer to its bytes inside the buffer. */
typedef struct {
    dspex_str name;                     /* e.g. "blk.0.attn_q.weight" */
    int n_dims;                         /* 1..4 */
    int64_t ne[DSPEX_GGUF_MAX_DIMS];    /* ne[0] is the contiguous dimension; unused dims are 1 */
    int type;                           /* ggml type code (see dspex/infer/quant.h) */
    uint64_t offset;                    /* offset from the start of the data section */
    uint64_t nbytes;                    /* size of the data */
    const uint8_t *data;                /* data_start + offset */
} dspex_gguf_tensor;

typedef struct dspex_gguf dspex_gguf;

/* Parses buf[0..len). On error returns NULL and writes a message to err. */
dspex_gguf *dspex_gguf_parse(const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Maps the file read-only (MAP_PRIVATE) and parses it; the mapping lives with the object. */
dspex_gguf *dspex_gguf_open(const char *path, char *err, size_t errlen);
void dspex_gguf_free(dspex_gguf *g);

uint32_t dspex_gguf_version(const dspex_gguf *g);
size_t dspex_gguf_file_size(const dspex_gguf *g);
size_t dspex_gguf_n_kv(const dspex_gguf *g);
const dspex_gguf_kv *dspex_gguf_kv_at(const dspex_gguf *g, size_t i);
size_t dspex_gguf_n_tensors(const dspex_gguf *g);
const dspex_gguf_tensor *dspex_gguf_tensor_at(const dspex_gguf *g, size_t i);

/* Lookups by NUL-terminated name; NULL when absent. */
const dspex_gguf_kv *dspex_gguf_find(const dspex_gguf *g, const char *key);
const dspex_gguf_tensor *dspex_gguf_find_tensor(const dspex_gguf *g, const char *name);

/* Name of a value type ("u32", "string", ...). */
const char *dspex_gguf_vtype_name(dspex_gguf_vtype t);

/* Typed getters used by the model loader. Each returns 0 on success, 1 when the key is
 * absent (and *out is untouched), -1 when it has another type (err names key and types). */
int dspex_gguf_get_u32(const dspex_gguf *g, const char *key, uint32_t *out, char *err, size_t errlen);
int dspex_gguf_get_f32(const dspex_gguf *g, const char *key, float *out, char *err, size_t errlen);
int dspex_gguf_get_bool(const dspex_gguf *g, const char *key, int *out, char *err, size_t errlen);
int dspex_gguf_get_str(const dspex_gguf *g, const char *key, dspex_str *out, char *err, size_t errlen);

/* Reads element i of a fixed-size numeric array (caller checks i < arr_n). */
uint32_t dspex_gguf_arr_u32(const dspex_gguf_kv *kv, uint64_t i);
int32_t dspex_gguf_arr_i32(const dspex_gguf_kv *kv, uint64_t i);
float dspex_gguf_arr_f32(const dspex_gguf_kv *kv, uint64_t i);

/* True when s equals the NUL-terminated string z. */
int dspex_str_eq(dspex_str s, const char *z);

#endif
