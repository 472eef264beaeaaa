/* Chat templates: llama.cpp's heuristic family detection from tokenizer.chat_template
 * (substring tests in llama.cpp's order, not a Jinja interpreter) and its renderers for
 * the families listed below. A template that matches no family, or a family this engine
 * does not render, is an error, never a silently wrong format; a family can also be named
 * explicitly. The rendered prompt carries no BOS: tokenizing it with add_special adds
 * the model's BOS when the vocabulary asks for one; parse it with parse_special. */
#ifndef DSPEX_INFER_CHAT_H
#define DSPEX_INFER_CHAT_H

#include <stddef.h>

#include "dspex/buf.h"

typedef struct {
    const char *role;    /* "system", "user", "assistant", ... (NUL-terminated) */
    const char *content; /* NUL-terminated */
} dspex_chat_msg;

/* Family names (llama.cpp's): chatml, llama2, llama2-sys, llama2-sys-bos,
 * llama2-sys-strip, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7,
 * mistral-v7-tekken, phi3, phi4, falcon3, zephyr, monarch, gemma, orion, openchat,
 * vicuna, vicuna-orca, deepseek, command-r, llama3. */
extern const char *const dspex_chat_families[];

/* Family of a template text: its index in dspex_chat_families, or -1 when no family
 * matches; -2 when llama.cpp would recognise a family this engine does not render (the
 * name goes to other[32]). A template equal to a family name selects that family. */
int dspex_chat_detect(const char *tmpl, size_t len, char other[32]);
/* Index of a family name, or -1. */
int dspex_chat_family(const char *name);

/* Renders messages in the family's format, with the assistant prefix when add_assistant.
 * Returns 0, or -1 on OOM. */
int dspex_chat_render(int family, const dspex_chat_msg *msgs, size_t n, int add_assistant, dspex_buf *out);

#endif
