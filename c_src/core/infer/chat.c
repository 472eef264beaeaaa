/* Chat templates. See include/dspex/infer/chat.h. */
#include "dspex/infer/chat.h"

#include <ctype.h>
#include <string.h>

enum {
    F_CHATML, F_LLAMA2, F_LLAMA2_SYS, F_LLAMA2_SYS_BOS, F_LLAMA2_SYS_STRIP, F_MISTRAL_V1, F_MISTRAL_V3,
    F_MISTRAL_V3_TEKKEN, F_MISTRAL_V7, F_MISTRAL_V7_TEKKEN, F_PHI3, F_PHI4, F_FALCON3, F_ZEPHYR, F_MONARCH,
    F_GEMMA, F_ORION, F_OPENCHAT, F_VICUNA, F_VICUNA_ORCA, F_DEEPSEEK, F_COMMAND_R, F_LLAMA3, F_COUNT
};

const char *const dspex_chat_families[] = {
    "chatml",     "llama2",     "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1",
    "mistral-v3", "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "phi4", "falcon3",
    "zephyr",     "monarch",    "gemma",      "orion",          "openchat",         "vicuna",
    "vicuna-orca", "deepseek",  "command-r",  "llama3",         NULL};

int dspex_chat_family(const char *name) {
    for (int i = 0; dspex_chat_families[i]; i++)
        if (strcmp(name, dspex_chat_families[i]) == 0) return i;
    return -1;
}

typedef struct {
    const char *p; /* template text (not NUL-terminated) */
    size_t n;      /* its length */
} text;

static int has(text t, const char *s) {
    size_t k = strlen(s);
    if (k > t.n) return 0;
    for (size_t i = 0; i + k <= t.n; i++)
        if (t.p[i] == s[0] && memcmp(t.p + i, s, k) == 0) return 1;
    return 0;
}

/* Families llama.cpp recognises but this engine does not render. */
static int other(char out[32], const char *name) {
    strncpy(out, name, 31);
    out[31] = 0;
    return -2;
}

int dspex_chat_detect(const char *tmpl, size_t len, char oth[32]) {
    text t = {tmpl, len};
    char name[40];
    if (len < sizeof(name)) {
        memcpy(name, tmpl, len);
        name[len] = 0;
        int f = dspex_chat_family(name);
        if (f >= 0) return f;
    }
    if (has(t, "<|im_start|>")) {
        if (has(t, "<|im_sep|>")) return F_PHI4;
        if (has(t, "<end_of_utterance>")) return other(oth, "smolvlm");
        return F_CHATML;
    }
    if ((len >= 7 && memcmp(tmpl, "mistral", 7) == 0) || has(t, "[INST]")) {
        if (has(t, "[SYSTEM_PROMPT]")) return F_MISTRAL_V7;
        if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
            if (has(t, " [INST]")) return F_MISTRAL_V1;
            if (has(t, "\"[INST]\"")) return F_MISTRAL_V3_TEKKEN;
            return F_MISTRAL_V3;
        }
        if (has(t, "content.strip()")) return F_LLAMA2_SYS_STRIP;
        if (has(t, "bos_token + '[INST]")) return F_LLAMA2_SYS_BOS;
        if (has(t, "<<SYS>>")) return F_LLAMA2_SYS;
        return F_LLAMA2;
    }
    if (has(t, "<|assistant|>") && has(t, "<|end|>")) return F_PHI3;
    if (has(t, "[gMASK]<sop>")) return other(oth, "chatglm4");
    if (has(t, "<|assistant|>") && has(t, "<|user|>")) {
        if (has(t, "<|tool_declare|>")) return other(oth, "exaone-moe");
        return has(t, "</s>") ? F_FALCON3 : other(oth, "glmedge");
    }
    if (has(t, "<|{{ item['role'] }}|>") && has(t, "<|begin_of_image|>")) return other(oth, "glmedge");
    if (has(t, "<|user|>") && has(t, "<|endoftext|>")) return F_ZEPHYR;
    if (has(t, "bos_token + message['role']")) return F_MONARCH;
    if (has(t, "<start_of_turn>")) return F_GEMMA;
    if (has(t, "'\\n\\nAssistant: ' + eos_token")) return F_ORION;
    if (has(t, "GPT4 Correct ")) return F_OPENCHAT;
    if (has(t, "USER: ") && has(t, "ASSISTANT: ")) return has(t, "SYSTEM: ") ? F_VICUNA_ORCA : F_VICUNA;
    if (has(t, "### Instruction:") && has(t, "<|EOT|>")) return F_DEEPSEEK;
    if (has(t, "<|START_OF_TURN_TOKEN|>") && has(t, "<|USER_TOKEN|>")) return F_COMMAND_R;
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) return F_LLAMA3;
    if (has(t, "[gMASK]sop")) return other(oth, "chatglm3");
    if (has(t, "<\xe7\x94\xa8\xe6\x88\xb7>")) return other(oth, "minicpm");
    if (has(t, "'Assistant: ' + message['content'] + eos_token")) return other(oth, "deepseek2");
    if (has(t, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>") && has(t, "<\xef\xbd\x9c" "User\xef\xbd\x9c>")) return other(oth, "deepseek3");
    if (has(t, "[|system|]") && has(t, "[|assistant|]") && has(t, "[|endofturn|]")) return other(oth, "exaone3");
    if (has(t, "rwkv-world")) return other(oth, "rwkv-world");
    if (has(t, "<|start_of_role|>")) return other(oth, "granite");
    if (has(t, "<|role_start|>")) return other(oth, "megrez");
    if (has(t, "<|header_start|>") && has(t, "<|header_end|>")) return other(oth, "llama4");
    if (has(t, "<|start|>") && has(t, "<|channel|>")) return other(oth, "gpt-oss");
    return -1;
}

/* ------------------------------------------------------------------ rendering */

static void put(dspex_buf *b, const char *s) { dspex_buf_puts(b, s); }

/* Appends s without leading/trailing ASCII whitespace (llama.cpp's trim). */
static void put_trim(dspex_buf *b, const char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n && isspace((unsigned char)s[i])) i++;
    while (n > i && isspace((unsigned char)s[n - 1])) n--;
    dspex_buf_put(b, s + i, n - i);
}

static int is(const char *a, const char *b) { return strcmp(a, b) == 0; }

int dspex_chat_render(int f, const dspex_chat_msg *m, size_t n, int add_ass, dspex_buf *b) {
    switch (f) {
    case F_CHATML:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|im_start|>"), put(b, m[i].role), put(b, "\n"), put(b, m[i].content), put(b, "<|im_end|>\n");
        }
        if (add_ass) put(b, "<|im_start|>assistant\n");
        break;
    case F_MISTRAL_V7:
    case F_MISTRAL_V7_TEKKEN: {
        const char *sp = f == F_MISTRAL_V7 ? " " : "";
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) put(b, "[SYSTEM_PROMPT]"), put(b, sp), put(b, m[i].content), put(b, "[/SYSTEM_PROMPT]");
            else if (is(m[i].role, "user")) put(b, "[INST]"), put(b, sp), put(b, m[i].content), put(b, "[/INST]");
            else put(b, sp), put(b, m[i].content), put(b, "</s>");
        }
        break;
    }
    case F_MISTRAL_V1:
    case F_MISTRAL_V3:
    case F_MISTRAL_V3_TEKKEN: {
        const char *lead = f == F_MISTRAL_V1 ? " " : "", *trail = f == F_MISTRAL_V3_TEKKEN ? "" : " ";
        int inside = 0;
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                put(b, lead), put(b, "[INST]"), put(b, trail);
                inside = 1;
            }
            if (is(m[i].role, "system")) put(b, m[i].content), put(b, "\n\n");
            else if (is(m[i].role, "user")) put(b, m[i].content), put(b, lead), put(b, "[/INST]");
            else {
                put(b, trail);
                if (f == F_MISTRAL_V3) put_trim(b, m[i].content);
                else put(b, m[i].content);
                put(b, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case F_LLAMA2:
    case F_LLAMA2_SYS:
    case F_LLAMA2_SYS_BOS:
    case F_LLAMA2_SYS_STRIP: {
        int sys = f != F_LLAMA2, bos = f == F_LLAMA2_SYS_BOS, strip = f == F_LLAMA2_SYS_STRIP, inside = 1;
        put(b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                inside = 1;
                put(b, bos ? "<s>[INST] " : "[INST] ");
            }
            if (is(m[i].role, "system")) {
                if (sys) put(b, "<<SYS>>\n");
                strip ? put_trim(b, m[i].content) : put(b, m[i].content);
                put(b, sys ? "\n<</SYS>>\n\n" : "\n");
            } else if (is(m[i].role, "user")) {
                strip ? put_trim(b, m[i].content) : put(b, m[i].content);
                put(b, " [/INST]");
            } else {
                strip ? put_trim(b, m[i].content) : put(b, m[i].content);
                put(b, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case F_PHI3:
        for (size_t i = 0; i < n; i++) put(b, "<|"), put(b, m[i].role), put(b, "|>\n"), put(b, m[i].content), put(b, "<|end|>\n");
        if (add_ass) put(b, "<|assistant|>\n");
        break;
    case F_PHI4:
        for (size_t i = 0; i < n; i++)
            put(b, "<|im_start|>"), put(b, m[i].role), put(b, "<|im_sep|>"), put(b, m[i].content), put(b, "<|im_end|>");
        if (add_ass) put(b, "<|im_start|>assistant<|im_sep|>");
        break;
    case F_FALCON3:
        for (size_t i = 0; i < n; i++) put(b, "<|"), put(b, m[i].role), put(b, "|>\n"), put(b, m[i].content), put(b, "\n");
        if (add_ass) put(b, "<|assistant|>\n");
        break;
    case F_ZEPHYR:
        for (size_t i = 0; i < n; i++)
            put(b, "<|"), put(b, m[i].role), put(b, "|>\n"), put(b, m[i].content), put(b, "<|endoftext|>\n");
        if (add_ass) put(b, "<|assistant|>\n");
        break;
    case F_MONARCH:
        for (size_t i = 0; i < n; i++) {
            if (i > 0) put(b, "<s>");
            put(b, m[i].role), put(b, "\n"), put(b, m[i].content), put(b, "</s>\n");
        }
        if (add_ass) put(b, "<s>assistant\n");
        break;
    case F_GEMMA: {
        dspex_buf sys;
        dspex_buf_init(&sys);
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) { /* merged into the next user turn */
                put_trim(&sys, m[i].content);
                continue;
            }
            const char *role = is(m[i].role, "assistant") ? "model" : m[i].role;
            put(b, "<start_of_turn>"), put(b, role), put(b, "\n");
            if (sys.len > 0 && !is(role, "model")) {
                dspex_buf_put(b, sys.p, sys.len);
                put(b, "\n\n");
                sys.len = 0;
            }
            put_trim(b, m[i].content);
            put(b, "<end_of_turn>\n");
        }
        dspex_buf_free(&sys);
        if (add_ass) put(b, "<start_of_turn>model\n");
        break;
    }
    case F_ORION: {
        dspex_buf sys;
        dspex_buf_init(&sys);
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                put(&sys, m[i].content);
            } else if (is(m[i].role, "user")) {
                put(b, "Human: ");
                if (sys.len > 0) {
                    dspex_buf_put(b, sys.p, sys.len);
                    put(b, "\n\n");
                    sys.len = 0;
                }
                put(b, m[i].content), put(b, "\n\nAssistant: </s>");
            } else {
                put(b, m[i].content), put(b, "</s>");
            }
        }
        dspex_buf_free(&sys);
        break;
    }
    case F_OPENCHAT:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                put(b, m[i].content), put(b, "<|end_of_turn|>");
            } else {
                put(b, "GPT4 Correct ");
                char c0 = (char)toupper((unsigned char)m[i].role[0]);
                if (m[i].role[0]) dspex_buf_put(b, &c0, 1), put(b, m[i].role + 1);
                put(b, ": "), put(b, m[i].content), put(b, "<|end_of_turn|>");
            }
        }
        if (add_ass) put(b, "GPT4 Correct Assistant:");
        break;
    case F_VICUNA:
    case F_VICUNA_ORCA:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                if (f == F_VICUNA_ORCA) put(b, "SYSTEM: "), put(b, m[i].content), put(b, "\n");
                else put(b, m[i].content), put(b, "\n\n");
            } else if (is(m[i].role, "user")) put(b, "USER: "), put(b, m[i].content), put(b, "\n");
            else if (is(m[i].role, "assistant")) put(b, "ASSISTANT: "), put(b, m[i].content), put(b, "</s>\n");
        }
        if (add_ass) put(b, "ASSISTANT:");
        break;
    case F_DEEPSEEK:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) put(b, m[i].content);
            else if (is(m[i].role, "user")) put(b, "### Instruction:\n"), put(b, m[i].content), put(b, "\n");
            else if (is(m[i].role, "assistant")) put(b, "### Response:\n"), put(b, m[i].content), put(b, "\n<|EOT|>\n");
        }
        if (add_ass) put(b, "### Response:\n");
        break;
    case F_COMMAND_R:
        for (size_t i = 0; i < n; i++) {
            const char *tag = is(m[i].role, "system") ? "<|SYSTEM_TOKEN|>"
                              : is(m[i].role, "user") ? "<|USER_TOKEN|>"
                              : is(m[i].role, "assistant") ? "<|CHATBOT_TOKEN|>" : NULL;
            if (tag == NULL) continue;
            put(b, "<|START_OF_TURN_TOKEN|>"), put(b, tag), put_trim(b, m[i].content), put(b, "<|END_OF_TURN_TOKEN|>");
        }
        if (add_ass) put(b, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
        break;
    case F_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|start_header_id|>"), put(b, m[i].role), put(b, "<|end_header_id|>\n\n");
            put_trim(b, m[i].content), put(b, "<|eot_id|>");
        }
        if (add_ass) put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    default: return -1;
    }
    return b->oom ? -1 : 0;
}
