/* One arena for the whole C core: bump allocation in 16 KiB chunks (or the caller's
 * first chunk, e.g. on the stack), every allocation zeroed and 16-aligned, all of it
 * released at once with dspex_arena_free. `limit` bounds the bytes one arena may hand
 * out, so work on untrusted input has a memory ceiling. No global state. */
#ifndef DSPEX_ARENA_H
#define DSPEX_ARENA_H

#include <stddef.h>

typedef struct dspex_arena_chunk dspex_arena_chunk;
typedef struct {
    dspex_arena_chunk *head;
    size_t bytes;     /* total bytes handed out (for bounding work) */
    size_t limit;     /* 0 = unlimited; allocations past it fail */
} dspex_arena;

void dspex_arena_init(dspex_arena *a, size_t limit);
/* Like dspex_arena_init, but the first chunk is the caller's buf (e.g. on the stack). */
void dspex_arena_init_buf(dspex_arena *a, size_t limit, void *buf, size_t size);
void *dspex_arena_alloc(dspex_arena *a, size_t n); /* zeroed, 16-aligned; NULL on failure */
char *dspex_arena_strndup(dspex_arena *a, const char *s, size_t n); /* NUL-terminated copy */
void dspex_arena_free(dspex_arena *a);

#endif
