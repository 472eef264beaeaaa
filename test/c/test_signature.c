/* Unit tests for the DSPy signature parser (c_src/core/signature/signature.c). */
#include <stdlib.h>

#include "ctest.h"
#include "dspex/signature.h"

static dspex_signature *parse_mode(const char *s, dspex_sig_mode mode, int *ctest_failed) {
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    dspex_sig_status st = dspex_sig_parse(s, strlen(s), mode, &sig, &err);
    if (st != DSPEX_SIG_OK) {
        fprintf(stderr, "  parse of \"%s\" failed at column %zu: %s\n", s, err.column, err.message);
        *ctest_failed = 1;
        return NULL;
    }
    return sig;
}

static dspex_signature *parse_ok(const char *s, int *ctest_failed) { return parse_mode(s, DSPEX_SIG_STRING, ctest_failed); }

/* Parses `s`, expecting an error at `column` whose message contains `needle`. */
static void expect_error(const char *s, size_t column, const char *needle, int *ctest_failed) {
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    dspex_sig_status st = dspex_sig_parse(s, strlen(s), DSPEX_SIG_STRING, &sig, &err);
    if (st != DSPEX_SIG_ESYNTAX || sig != NULL) {
        fprintf(stderr, "  expected \"%s\" to fail\n", s);
        *ctest_failed = 1;
        dspex_sig_free(sig);
        return;
    }
    if (err.column != column || strstr(err.message, needle) == NULL) {
        fprintf(stderr, "  \"%s\": got column %zu \"%s\", want column %zu containing \"%s\"\n", s,
                err.column, err.message, column, needle);
        *ctest_failed = 1;
    }
}

/* Renders the type of field i (signature syntax, or DSPy's name). */
static const char *type_of(dspex_signature *sig, size_t i, char *buf, size_t cap, int name) {
    if (sig == NULL || i >= sig->nfields) return "(none)";
    dspex_buf b;
    dspex_buf_init(&b);
    if (name)
        dspex_type_name(sig->fields[i].type, &b);
    else
        dspex_type_string(sig->fields[i].type, &b);
    snprintf(buf, cap, "%s", b.p ? b.p : "");
    dspex_buf_free(&b);
    return buf;
}

#define CHECK_TYPE_MODE(src, mode, name, want)                                       \
    do {                                                                             \
        char buf_[512];                                                              \
        dspex_signature *s_ = parse_mode("x: " src " -> y", mode, ctest_failed);    \
        CHECK_STREQ(type_of(s_, 0, buf_, sizeof buf_, name), want);                  \
        dspex_sig_free(s_);                                                          \
    } while (0)

#define CHECK_TYPE(src, want) CHECK_TYPE_MODE(src, DSPEX_SIG_STRING, 0, want)
#define CHECK_NAME(src, want) CHECK_TYPE_MODE(src, DSPEX_SIG_STRING, 1, want)
#define CHECK_CLASS_NAME(src, want) CHECK_TYPE_MODE(src, DSPEX_SIG_CLASS, 1, want)

CTEST(simple_untyped) {
    dspex_signature *sig = parse_ok("question -> answer", ctest_failed);
    CHECK(sig != NULL);
    if (!sig) return;
    CHECK(sig->nfields == 2);
    CHECK(sig->ninputs == 1);
    CHECK_STREQ(sig->fields[0].name, "question");
    CHECK(sig->fields[0].is_input);
    CHECK(sig->fields[0].type->kind == DSPEX_T_STR);
    CHECK(sig->fields[0].type_defined == 0);
    CHECK(sig->fields[0].column == 1);
    CHECK_STREQ(sig->fields[1].name, "answer");
    CHECK(!sig->fields[1].is_input);
    CHECK(sig->fields[1].column == 13);
    dspex_sig_free(sig);
}

CTEST(typed_fields_in_order) {
    dspex_signature *sig =
        parse_ok("question, context: list[str] -> answer: str, confidence: float", ctest_failed);
    if (!sig) return;
    char buf[128];
    CHECK(sig->nfields == 4);
    CHECK(sig->ninputs == 2);
    CHECK_STREQ(sig->fields[1].name, "context");
    CHECK(sig->fields[1].type_defined == 1);
    CHECK_STREQ(type_of(sig, 1, buf, sizeof buf, 0), "list[str]");
    CHECK_STREQ(sig->fields[2].name, "answer");
    CHECK(sig->fields[2].type_defined == 1);
    CHECK_STREQ(sig->fields[3].name, "confidence");
    CHECK_STREQ(type_of(sig, 3, buf, sizeof buf, 0), "float");
    dspex_sig_free(sig);
}

CTEST(empty_sides) {
    dspex_signature *sig = parse_ok("-> answer", ctest_failed);
    if (sig) {
        CHECK(sig->ninputs == 0 && sig->nfields == 1);
        dspex_sig_free(sig);
    }
    sig = parse_ok("question ->", ctest_failed);
    if (sig) {
        CHECK(sig->ninputs == 1 && sig->nfields == 1);
        dspex_sig_free(sig);
    }
    sig = parse_ok("  ->  ", ctest_failed);
    if (sig) {
        CHECK(sig->nfields == 0);
        dspex_sig_free(sig);
    }
}

CTEST(whitespace_and_trailing_comma) {
    dspex_signature *sig = parse_ok("\n a ,\tb:\n dict[ str ,int ] , -> c,", ctest_failed);
    if (!sig) return;
    char buf[64];
    CHECK(sig->nfields == 3);
    CHECK_STREQ(type_of(sig, 1, buf, sizeof buf, 0), "dict[str, int]");
    CHECK_STREQ(sig->fields[2].name, "c");
    dspex_sig_free(sig);
    sig = parse_ok("a,b->c", ctest_failed);
    if (sig) {
        CHECK(sig->nfields == 3);
        dspex_sig_free(sig);
    }
}

CTEST(scalar_types) {
    CHECK_TYPE("str", "str");
    CHECK_TYPE("int", "int");
    CHECK_TYPE("float", "float");
    CHECK_TYPE("bool", "bool");
    CHECK_TYPE("Any", "Any");
    CHECK_TYPE("typing.Any", "Any");
    /* DSPy's make_signature turns a None annotation into str */
    CHECK_TYPE("None", "str");
    CHECK_TYPE("NoneType", "None");
    CHECK_TYPE("datetime.datetime", "datetime.datetime");
    CHECK_NAME("datetime.datetime", "datetime");
    CHECK_NAME("datetime.date", "date");
    CHECK_TYPE("History", "History");
    CHECK_TYPE("dspy.History", "History");
}

CTEST(generic_types) {
    CHECK_TYPE("list", "list");
    CHECK_TYPE("List", "list");
    CHECK_TYPE("typing.List[int]", "List[int]");
    CHECK_TYPE("dict", "dict");
    CHECK_TYPE("Dict[str, list[int]]", "Dict[str, list[int]]");
    CHECK_TYPE("tuple", "tuple");
    CHECK_TYPE("tuple[int, str, bool]", "tuple[int, str, bool]");
    CHECK_TYPE("Tuple[int, ...]", "Tuple[int, ...]");
    CHECK_TYPE("set[str]", "set[str]");
    CHECK_TYPE("frozenset[int]", "frozenset[int]");
    CHECK_NAME("FrozenSet[int]", "frozenset[int]");
    CHECK_NAME("Tuple[int, ...]", "tuple[int, Ellipsis]");
    CHECK_TYPE("list[dict[str, list[tuple[int, float]]]]", "list[dict[str, list[tuple[int, float]]]]");
}

CTEST(literal_types) {
    CHECK_TYPE("Literal['a', \"b\", 1, -2, 2.5, True, False, None]",
               "Literal['a', 'b', 1, -2, 2.5, True, False, None]");
    CHECK_TYPE("typing.Literal['it\\'s', 'x\\ny', '\\x41\\u00e9']", "Literal[\"it's\", 'x\\ny', 'A\xc3\xa9']");
    CHECK_TYPE("Literal['a->b']", "Literal['a->b']");
    CHECK_TYPE("Literal['a',]", "Literal['a']");
    CHECK_TYPE("Literal[1, 'a', 1, True, 'a', None, None, 1.0]", "Literal[1, 'a', True, None, 1.0]");
    dspex_signature *sig = parse_ok("x: Literal['caf\xc3\xa9', 7] -> y", ctest_failed);
    if (!sig) return;
    dspex_type *t = sig->fields[0].type;
    CHECK(t->kind == DSPEX_T_LITERAL && t->nvals == 2);
    CHECK(t->vals[0]->kind == DSPEX_V_STR && t->vals[0]->slen == 5);
    CHECK(t->vals[1]->kind == DSPEX_V_INT && t->vals[1]->i == 7);
    dspex_sig_free(sig);
}

CTEST(optional_and_union) {
    CHECK_TYPE("Optional[int]", "Optional[int]");
    CHECK_TYPE("int | None", "Optional[int]");
    /* DSPy's string parser: NoneType moves last, the constant None stays where it is */
    CHECK_TYPE("NoneType | int", "Optional[int]");
    CHECK_TYPE("None | int", "Union[None, int]");
    CHECK_NAME("None | int | str", "Union[NoneType, int, str]");
    CHECK_NAME("Union[None, int, str]", "Union[NoneType, int, str]");
    CHECK_NAME("int | None", "Union[int, NoneType]");
    CHECK_TYPE("int | str", "Union[int, str]");
    CHECK_TYPE("Union[int, str]", "Union[int, str]");
    CHECK_TYPE("Union[int, str, None]", "Optional[Union[int, str]]");
    CHECK_TYPE("Union[int]", "int");
    CHECK_TYPE("Union[int, int]", "int");
    CHECK_TYPE("Union[int, Union[str, float]]", "Union[int, str, float]");
    CHECK_TYPE("Optional[Optional[int]]", "Optional[int]");
    CHECK_TYPE("Optional[None]", "None");
    CHECK_TYPE("list[int | None] | None", "Optional[list[Optional[int]]]");
    CHECK_TYPE("Literal['a'] | None", "Optional[Literal['a']]");
}

CTEST(class_mode_pipes_are_pep604) {
    CHECK_CLASS_NAME("int | None", "UnionType[int, NoneType]");
    CHECK_CLASS_NAME("None | int", "UnionType[NoneType, int]");
    CHECK_CLASS_NAME("list[int] | str | int", "UnionType[list[int], str, int]");
    /* a typing special form makes it a typing.Union, as in Python */
    CHECK_CLASS_NAME("Literal['a'] | None", "Union[Literal['a'], NoneType]");
    CHECK_CLASS_NAME("List[int] | None", "Union[list[int], NoneType]");
    CHECK_CLASS_NAME("Optional[int] | str", "Union[int, NoneType, str]");
    /* bare typing aliases print with empty brackets in a class body */
    CHECK_CLASS_NAME("List", "list[]");
    CHECK_NAME("List", "list");
    CHECK_CLASS_NAME("int | int", "int");
}

CTEST(arrow_errors) {
    expect_error("question answer", 16, "expected exactly one '->'", ctest_failed);
    expect_error("", 1, "expected exactly one '->'", ctest_failed);
    expect_error("a -> b -> c", 8, "second one at column 8", ctest_failed);
}

CTEST(name_errors) {
    expect_error("a, 1b -> c", 4, "starts with a digit", ctest_failed);
    expect_error("a,, b -> c", 3, "remove the extra ','", ctest_failed);
    expect_error("a -> a", 6, "duplicate field name 'a' at column 6 (input and output", ctest_failed);
    expect_error("a, b, a -> c", 7, "duplicate field name 'a'", ctest_failed);
    expect_error("class -> c", 1, "Python keyword", ctest_failed);
    expect_error("a b -> c", 3, "expected ',' or '->' after field 'a'", ctest_failed);
    expect_error("a: int = 3 -> c", 8, "default value", ctest_failed);
    expect_error("-a -> c", 1, "expected an input field name", ctest_failed);
}

CTEST(type_errors) {
    expect_error("question: strng -> answer", 11, "unknown type 'strng' at column 11; supported: str",
                 ctest_failed);
    expect_error("a -> b: dspy.Audio", 9, "unknown type 'dspy.Audio'", ctest_failed);
    expect_error("a: typing.str -> b", 4, "unknown type 'typing.str'", ctest_failed);
    expect_error("a: -> b", 4, "missing type after 'a:'", ctest_failed);
    expect_error("a: list[] -> b", 9, "empty []", ctest_failed);
    expect_error("a: dict[str] -> b", 8, "takes 2 type arguments", ctest_failed);
    expect_error("a: list[int, str] -> b", 8, "takes 1 type argument", ctest_failed);
    expect_error("a: str[int] -> b", 7, "does not take type arguments", ctest_failed);
    expect_error("a: Optional -> b", 4, "needs arguments", ctest_failed);
    expect_error("a: Optional[int, str] -> b", 12, "exactly one type", ctest_failed);
    expect_error("a: Literal[] -> b", 4, "at least one value", ctest_failed);
    expect_error("a: Literal[x] -> b", 12, "expected a Literal value", ctest_failed);
    expect_error("a: Literal['x] -> b", 12, "unterminated string", ctest_failed);
    expect_error("a: list[int -> b", 13, "expected ',' or ']'", ctest_failed);
    expect_error("a: list[...] -> b", 9, "only allowed as tuple[T, ...]", ctest_failed);
    expect_error("a: 'str' -> b", 4, "quoted type", ctest_failed);
    expect_error("a: int] -> b", 7, "unbalanced ']'", ctest_failed);
    expect_error("a: Literal[01] -> b", 12, "leading zero", ctest_failed);
    expect_error("a: Literal[99999999999999999999] -> b", 12, "64 bits", ctest_failed);
    expect_error("a: Literal[1e999] -> b", 12, "out of range", ctest_failed);
}

CTEST(limits) {
    /* nesting */
    char buf[1024];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "a: ");
    for (int i = 0; i < 40; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "list[");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "int");
    for (int i = 0; i < 40; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "]");
    snprintf(buf + n, sizeof buf - n, " -> b");
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    CHECK(dspex_sig_parse(buf, strlen(buf), DSPEX_SIG_STRING, &sig, &err) == DSPEX_SIG_ESYNTAX);
    CHECK(strstr(err.message, "nesting deeper than 32") != NULL);

    /* input size */
    size_t big = DSPEX_SIG_MAX_INPUT + 1;
    char *huge = malloc(big);
    CHECK(huge != NULL);
    if (!huge) return;
    memset(huge, ' ', big);
    memcpy(huge, "a -> b", 6);
    CHECK(dspex_sig_parse(huge, big, DSPEX_SIG_STRING, &sig, &err) == DSPEX_SIG_ESYNTAX);
    CHECK(strstr(err.message, "the limit is 65536 bytes") != NULL);
    /* exactly the limit is fine */
    CHECK(dspex_sig_parse(huge, big - 1, DSPEX_SIG_STRING, &sig, &err) == DSPEX_SIG_OK);
    dspex_sig_free(sig);
    free(huge);
}

CTEST(bad_bytes) {
    const char nul[] = "a\0 -> b";
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    CHECK(dspex_sig_parse(nul, sizeof nul - 1, DSPEX_SIG_STRING, &sig, &err) == DSPEX_SIG_ESYNTAX);
    CHECK(err.column == 2);
    CHECK(strstr(err.message, "NUL") != NULL);
    expect_error("a\xff -> b", 2, "invalid UTF-8", ctest_failed);
    expect_error("a\xc2\xa0" "b -> c", 2, "expected ',' or '->'", ctest_failed);
}

CTEST(non_ascii_names_and_the_length_limit) {
    dspex_signature *sig = parse_ok("caf\xc3\xa9, \xe5\x90\x8d\xe5\x89\x8d -> r\xc3\xa9sum\xc3\xa9", ctest_failed);
    if (sig) {
        CHECK(sig->nfields == 3);
        CHECK_STREQ(sig->fields[1].name, "\xe5\x90\x8d\xe5\x89\x8d");
        dspex_sig_free(sig);
    }
    char name[300];
    memset(name, 'a', 256);
    memcpy(name + 256, " -> b", 6);
    expect_error(name, 1, "256 characters long; the limit is 255", ctest_failed);
    name[1] = '\0';
    CHECK(dspex_sig_valid_name("class", 5, 1) && !dspex_sig_valid_name("class", 5, 0));
    CHECK(!dspex_sig_valid_name("1a", 2, 1) && dspex_sig_valid_name("_a1", 3, 0));
}

CTEST(many_fields) {
    /* 500 fields is fine and ordered */
    size_t cap = 500 * 8 + 16;
    char *s = malloc(cap);
    CHECK(s != NULL);
    if (!s) return;
    size_t n = 0;
    for (int i = 0; i < 500; i++) n += (size_t)snprintf(s + n, cap - n, "f%d,", i);
    snprintf(s + n, cap - n, "->out");
    dspex_signature *sig = parse_ok(s, ctest_failed);
    if (sig) {
        CHECK(sig->nfields == 501);
        CHECK_STREQ(sig->fields[499].name, "f499");
        dspex_sig_free(sig);
    }
    free(s);
}

static const char *prefix_of(const char *name, char *buf, size_t cap) {
    dspex_buf b;
    dspex_buf_init(&b);
    int rc = dspex_sig_infer_prefix(name, strlen(name), &b);
    snprintf(buf, cap, "%s", rc != 0 ? "(oom)" : b.p ? b.p : "");
    dspex_buf_free(&b);
    return buf;
}

CTEST(infer_prefix_like_dspy) {
    char buf[512];
    CHECK_STREQ(prefix_of("camelCaseText", buf, sizeof buf), "Camel Case Text");
    CHECK_STREQ(prefix_of("snake_case_text", buf, sizeof buf), "Snake Case Text");
    CHECK_STREQ(prefix_of("text2number", buf, sizeof buf), "Text 2 Number");
    CHECK_STREQ(prefix_of("HTMLParser", buf, sizeof buf), "HTML Parser");
    CHECK_STREQ(prefix_of("MyHTMLParser2X", buf, sizeof buf), "My HTML Parser 2 X");
    CHECK_STREQ(prefix_of("__init", buf, sizeof buf), "  Init");
    CHECK_STREQ(prefix_of("a__b", buf, sizeof buf), "A  B");
    CHECK_STREQ(prefix_of("abc123def", buf, sizeof buf), "Abc 123 Def");
    CHECK_STREQ(prefix_of("ABC", buf, sizeof buf), "ABC");
    CHECK_STREQ(prefix_of("", buf, sizeof buf), "");
    /* str.capitalize / str.isupper beyond ASCII */
    CHECK_STREQ(prefix_of("\xc3\xa9lan_vital", buf, sizeof buf), "\xc3\x89lan Vital");
    CHECK_STREQ(prefix_of("\xc3\x89T\xc3\x89", buf, sizeof buf), "\xc3\x89T\xc3\x89");
    CHECK_STREQ(prefix_of("\xe5\x90\x8d\xe5\x89\x8d", buf, sizeof buf), "\xe5\x90\x8d\xe5\x89\x8d");
    /* long names use the heap path */
    char name[200];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    name[100] = 'B';
    prefix_of(name, buf, sizeof buf);
    CHECK(strlen(buf) == 200 && buf[0] == 'A' && buf[100] == ' ' && buf[101] == 'B');
}

int main(void) { return ctest_run(); }
