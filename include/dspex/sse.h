/* Incremental server-sent-events parser (WHATWG "event stream" framing).
 *
 * Pure C, no allocation after creation, bounded: feed any byte slices (an event may be
 * split at any offset, including between "\r" and "\n"), get complete events through a
 * callback. Lines end with "\n", "\r\n" or "\r". Lines starting with ':' are comments.
 * "data" lines of one event are joined with "\n"; "event" sets the type (NULL when the
 * event had none); "id" and "retry" are ignored; "[DONE]" is ordinary data. A leading
 * UTF-8 BOM is skipped. An event whose pending line + data exceed max_event_bytes makes
 * dspex_sse_feed return DSPEX_SSE_ETOOBIG (the parser must then be reset or freed). */
#ifndef DSPEX_SSE_H
#define DSPEX_SSE_H

#include <stddef.h>

#define DSPEX_SSE_OK 0
#define DSPEX_SSE_ETOOBIG (-1)
#define DSPEX_SSE_ENOMEM (-2)

typedef struct dspex_sse_parser dspex_sse_parser;

/* Called once per complete event. event is NULL when no "event:" field was given;
 * event and data are not NUL-terminated and are valid only during the call. A non-zero
 * return stops feeding and is returned by dspex_sse_feed/finish. */
typedef int (*dspex_sse_event_fn)(void *ud, const char *event, size_t event_len, const char *data,
                                  size_t data_len);

/* max_event_bytes: bound on one event (pending line + data + type). Returns NULL on OOM. */
dspex_sse_parser *dspex_sse_new(size_t max_event_bytes);
void dspex_sse_free(dspex_sse_parser *p);
/* Forgets all partial state (after an error or to parse a new stream). */
void dspex_sse_reset(dspex_sse_parser *p);
int dspex_sse_feed(dspex_sse_parser *p, const char *buf, size_t len, dspex_sse_event_fn fn, void *ud);
/* End of stream: a final line without terminator is processed and an event with data
 * that lacked the closing blank line is dispatched (lenient, servers forget it). */
int dspex_sse_finish(dspex_sse_parser *p, dspex_sse_event_fn fn, void *ud);

#endif
