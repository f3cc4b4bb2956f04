#!/usr/bin/env python3
"""Edits the unpacked CPython source for the wasm32 guest, where it must.

usage: guest/patch-cpython.py SRC

Each edit replaces an exact piece of text an exact number of times and
fails the build when the source does not match, so a new CPython release
is looked at again rather than patched blindly. The native build python
compiles the same edited tree: on a 64-bit host, where `long` and
`long long` are the same width, the sum() edits change nothing, and the
lexer's computes what CPython's own code computes, by other means.

Why each edit is here: docs/performance.md, "How the guest's CPython is
built", "Compiling f-strings in linear time" and "The guest's string
scans".
"""
import pathlib
import sys

# sum() keeps a running total of ints in a C integer while it fits, and
# falls back to adding Python ints once it would overflow. CPython's
# accumulator is a `long` (a Py_ssize_t), 64 bits natively but 32 bits on
# wasm32, where a total past 2**31 then makes every later item a bignum
# addition: sum() of 10 000 squares ran 4.7x slower than natively. wasm32
# has 64-bit integer arithmetic, so the accumulator becomes a `long long`,
# as wide as native's: the same results, at native's speed. The float
# path's conversion of an int item widens for the same reason, which also
# keeps its compensated summation going where native's does.
SUM_EDITS = [
    ("        Py_ssize_t i_result = PyLong_AsLongAndOverflow(result, &overflow);\n",
     "        long long i_result = PyLong_AsLongLongAndOverflow(result, &overflow);\n", 1),
    ("                return PyLong_FromSsize_t(i_result);\n",
     "                return PyLong_FromLongLong(i_result);\n", 1),
    ("            result = PyLong_FromSsize_t(i_result);\n",
     "            result = PyLong_FromLongLong(i_result);\n", 1),
    ("                Py_ssize_t b;\n"
     "                overflow = 0;\n",
     "                long long b;\n"
     "                overflow = 0;\n", 1),
    ("                    b = PyLong_AsLongAndOverflow(item, &overflow);\n",
     "                    b = PyLong_AsLongLongAndOverflow(item, &overflow);\n", 1),
    ("                    (i_result >= 0 ? (b <= PY_SSIZE_T_MAX - i_result)\n"
     "                                   : (b >= PY_SSIZE_T_MIN - i_result)))\n",
     "                    (i_result >= 0 ? (b <= LLONG_MAX - i_result)\n"
     "                                   : (b >= LLONG_MIN - i_result)))\n", 1),
    ("                long value;\n"
     "                int overflow;\n"
     "                value = PyLong_AsLongAndOverflow(item, &overflow);\n",
     "                long long value;\n"
     "                int overflow;\n"
     "                value = PyLong_AsLongLongAndOverflow(item, &overflow);\n", 1),
]

# The f-string lexer (CPython 3.12 to 3.13.x, gh-155525, fixed upstream
# after the 3.13.5 Debian serves): at every `{` of a replacement field it
# copies the whole rest of the source, and at every `{`, `}`, `!` and `:`
# it measures that rest with strlen(). Compiling a string (compile(),
# exec(), eryx's own runs of user code) is then quadratic in the source's
# size times its fields, and in the guest, whose libc loops a word at a
# time where glibc's use vector registers, that cost is an order of
# magnitude above native's: CPython's own PGO task spent 44 % of its time
# there, in the guest. For a source held whole in memory (a string: no
# file, no readline), the edit keeps the lexer's numbers as they were
# (distances from a pointer to the source's terminating NUL) but finds
# that NUL once per tokenizer, and copies only the expression's own text,
# when the expression ends, which is all set_fstring_expr() reads. Files
# and readline() sources take CPython's path unchanged.
LEXER_FUNCTION = """
/* eryx (guest/patch-cpython.py): _PyLexer_update_fstring_expr for a source
   held whole in memory. The sizes are the ones CPython keeps (distances to
   the source's NUL, so last_expr_size - last_expr_end is the expression's
   length), with that NUL found once; the text is copied when the
   expression ends. Until then the buffer is a 1-byte placeholder: a
   non-NULL buffer is what marks an expression as open. */
static int
update_fstring_expr_in_string(struct tok_state *tok, tokenizer_mode *tok_mode, char cur)
{
    if (tok->str_end == NULL) {
        tok->str_end = tok->inp + strlen(tok->inp);
    }
    switch (cur) {
        case '{': {
            char *placeholder = PyMem_Malloc(1);
            if (placeholder == NULL) {
                goto error;
            }
            PyMem_Free(tok_mode->last_expr_buffer);
            tok_mode->last_expr_buffer = placeholder;
            tok_mode->last_expr_size = tok->str_end - tok->cur;
            tok_mode->last_expr_end = -1;
            return 1;
        }
        case '}':
        case '!':
            tok_mode->last_expr_end = tok->str_end - tok->start;
            break;
        case ':':
            if (tok_mode->last_expr_end == -1) {
                tok_mode->last_expr_end = tok->str_end - tok->start;
            }
            break;
        default:
            /* 0 comes only from the readers of files and readline(). */
            Py_UNREACHABLE();
    }
    if (tok_mode->last_expr_buffer == NULL) {
        return 1;
    }
    Py_ssize_t length = tok_mode->last_expr_size - tok_mode->last_expr_end;
    if (length < 0) {
        length = 0;
    }
    char *text = PyMem_Realloc(tok_mode->last_expr_buffer, length > 0 ? length : 1);
    if (text == NULL) {
        goto error;
    }
    memcpy(text, tok->str_end - tok_mode->last_expr_size, length);
    tok_mode->last_expr_buffer = text;
    return 1;
error:
    tok->done = E_NOMEM;
    return 0;
}

int
_PyLexer_update_fstring_expr(struct tok_state *tok, char cur)
{
    assert(tok->cur != NULL);
    if (tok->fp == NULL && tok->readline == NULL) {
        return update_fstring_expr_in_string(tok, TOK_GET_MODE(tok), cur);
    }

    Py_ssize_t size = strlen(tok->cur);
"""
LEXER_EDITS = [
    ("""
int
_PyLexer_update_fstring_expr(struct tok_state *tok, char cur)
{
    assert(tok->cur != NULL);

    Py_ssize_t size = strlen(tok->cur);
""", LEXER_FUNCTION, 1),
]
STATE_EDITS = [
    ("    char* input;       /* Tokenizer's newline translated copy of the string. */\n",
     "    char* input;       /* Tokenizer's newline translated copy of the string. */\n"
     "    const char *str_end; /* eryx: the NUL ending a string source, once found */\n", 1),
]

# The substring searches (str.find, count, replace, split of 2 characters
# or more, and the same on bytes) skip ahead on a character that a bloom
# filter of the needle's characters rules out. The filter is a `long`: 64
# bits natively, 32 on wasm32, where characters 32 apart (every upper-case
# ASCII letter and its lower case) then share a bit, so a search for
# "ERROR" stops at every e, r and o of lower-case text: str.count of it in
# 1 MB of log ran 6.6x slower than natively. The guest's filter becomes 64
# bits, as native's; the same for str.strip()'s filter of characters.
FASTSEARCH_EDITS = [
    (r"""#define STRINGLIB_BLOOM_ADD(mask, ch) \
    ((mask |= (1UL << ((ch) & (STRINGLIB_BLOOM_WIDTH -1)))))
#define STRINGLIB_BLOOM(mask, ch)     \
    ((mask &  (1UL << ((ch) & (STRINGLIB_BLOOM_WIDTH -1)))))
""", r"""/* eryx: as wide as a 64-bit host's where long is 32 bits. */
#if LONG_BIT < 64
#  undef STRINGLIB_BLOOM_WIDTH
#  define STRINGLIB_BLOOM_WIDTH 64
#  define STRINGLIB_BLOOM_MASK unsigned long long
#else
#  define STRINGLIB_BLOOM_MASK unsigned long
#endif
#define STRINGLIB_BLOOM_ADD(mask, ch) \
    ((mask |= ((STRINGLIB_BLOOM_MASK)1 << ((ch) & (STRINGLIB_BLOOM_WIDTH -1)))))
#define STRINGLIB_BLOOM(mask, ch)     \
    ((mask &  ((STRINGLIB_BLOOM_MASK)1 << ((ch) & (STRINGLIB_BLOOM_WIDTH -1)))))
""", 1),
    ("    unsigned long mask = 0;\n", "    STRINGLIB_BLOOM_MASK mask = 0;\n", 3),
]
UNICODE_BLOOM_EDITS = [
    ("#define BLOOM_MASK unsigned long\n",
     "/* eryx: as wide as a 64-bit host's where long is 32 bits. */\n"
     "#if LONG_BIT < 64\n"
     "#  undef BLOOM_WIDTH\n"
     "#  define BLOOM_WIDTH 64\n"
     "#  define BLOOM_MASK unsigned long long\n"
     "#else\n"
     "#  define BLOOM_MASK unsigned long\n"
     "#endif\n", 1),
    ("#define BLOOM(mask, ch)     ((mask &  (1UL << ((ch) & (BLOOM_WIDTH - 1)))))\n",
     "#define BLOOM(mask, ch)     ((mask &  ((BLOOM_MASK)1 << ((ch) & (BLOOM_WIDTH - 1)))))\n", 1),
    ("            MASK |= (1UL << (ch & (BLOOM_WIDTH - 1))); \\\n",
     "            MASK |= ((BLOOM_MASK)1 << (ch & (BLOOM_WIDTH - 1))); \\\n", 1),
]

# CPython's ASCII checks read a `size_t` at a time: 8 bytes natively, 4 in
# wasm32, so decoding 1 MB of ASCII took 3.2x native's time in the guest
# (Latin-1 decoding and bytes.isascii(), which check the same way, 1.8x).
# wasm32 has 64-bit loads, and a wasm load needs no alignment, so in the
# guest each of the three loops reads 32 bytes at a time (four 8-byte
# memcpy()s, one load each, OR'ed into one test), then 8, then one; a
# single 8-byte word was still 1.6x, its loop's bookkeeping as long as its
# work. ascii_decode copies the ASCII prefix it found with one memcpy(),
# which the guest hands to the host's. The results are CPython's: the
# number of leading ASCII bytes, copied; whether any byte is past 127.
# Natively (a size_t of 8 bytes) the source compiles as before.
ASCII_MASK = "0x8080808080808080ULL"


def ascii_words(ptr, indent, on_found):
    """C that advances `ptr` over whole 8-byte words of ASCII before `end`,
    32 bytes at a time and then 8, running `on_found` at a word that is not
    (or, in the first loop, at 32 bytes that are not all ASCII)."""
    pad = " " * indent
    return (f"{pad}while (end - {ptr} >= 32) {{\n"
            f"{pad}    uint64_t w0, w1, w2, w3;\n"
            f"{pad}    memcpy(&w0, {ptr}, 8);\n"
            f"{pad}    memcpy(&w1, {ptr} + 8, 8);\n"
            f"{pad}    memcpy(&w2, {ptr} + 16, 8);\n"
            f"{pad}    memcpy(&w3, {ptr} + 24, 8);\n"
            f"{pad}    if ((w0 | w1 | w2 | w3) & {ASCII_MASK})\n"
            f"{pad}        {on_found}\n"
            f"{pad}    {ptr} += 32;\n"
            f"{pad}}}\n"
            f"{pad}while (end - {ptr} >= 8) {{\n"
            f"{pad}    uint64_t w0;\n"
            f"{pad}    memcpy(&w0, {ptr}, 8);\n"
            f"{pad}    if (w0 & {ASCII_MASK})\n"
            f"{pad}        {on_found}\n"
            f"{pad}    {ptr} += 8;\n"
            f"{pad}}}\n")


ASCII_DECODE_HEAD = ("static Py_ssize_t\n"
                     "ascii_decode(const char *start, const char *end, Py_UCS1 *dest)\n"
                     "{\n")
ASCII_DECODE_TAIL = ("    memcpy(dest, start, p - start);\n"
                     "    return p - start;\n"
                     "}\n")
# (The #endif first: the guest's function, inserted next, ends the same way.)
ASCII_DECODE_EDITS = [
    (ASCII_DECODE_TAIL, ASCII_DECODE_TAIL + "#endif\n", 1),
    (ASCII_DECODE_HEAD,
     "#if SIZEOF_SIZE_T < 8\n"
     "/* eryx (guest/patch-cpython.py): 32 and 8 bytes at a time where size_t\n"
     "   has 4. */\n"
     + ASCII_DECODE_HEAD +
     "    const char *p = start;\n"
     + ascii_words("p", 4, "break;") +
     "    while (p < end && !((unsigned char)*p & 0x80))\n"
     "        p++;\n"
     + ASCII_DECODE_TAIL +
     "#else\n" + ASCII_DECODE_HEAD, 1),
]


def word_loop(mask, on_found):
    """CPython's size_t loop over `_p` in an ASCII check, and the guest's."""
    old = ("            while (_p + SIZEOF_SIZE_T <= end) {\n"
           "                size_t value = *(const size_t *) _p;\n"
           f"                if (value & {mask}){on_found[0]}"
           "                _p += SIZEOF_SIZE_T;\n"
           "            }\n")
    new = ("#if SIZEOF_SIZE_T < 8\n"
           "            /* eryx (guest/patch-cpython.py): 32 and 8 bytes at a time. */\n"
           + ascii_words("_p", 12, on_found[1]) +
           "#else\n" + old + "#endif\n")
    return (old, new, 1)


FIND_MAX_CHAR_EDITS = [
    word_loop("UCS1_ASCII_CHAR_MASK", ("\n                    return 255;\n", "return 255;")),
]
ISASCII_EDITS = [
    word_loop("ASCII_CHAR_MASK", (" {\n                    Py_RETURN_FALSE;\n                }\n",
                                  "Py_RETURN_FALSE;")),
]

EDITS = {
    "Python/bltinmodule.c": SUM_EDITS,
    "Parser/lexer/lexer.c": LEXER_EDITS,
    "Parser/lexer/state.h": STATE_EDITS,
    "Objects/stringlib/fastsearch.h": FASTSEARCH_EDITS,
    "Objects/unicodeobject.c": UNICODE_BLOOM_EDITS + ASCII_DECODE_EDITS,
    "Objects/stringlib/find_max_char.h": FIND_MAX_CHAR_EDITS,
    "Objects/bytes_methods.c": ISASCII_EDITS,
}


def patch(src: pathlib.Path) -> None:
    for name, edits in EDITS.items():
        path = src / name
        text = path.read_text()
        for old, new, count in edits:
            found = text.count(old)
            if found != count:
                sys.exit(f"patch-cpython: {name}: expected {count} of "
                         f"{old.strip()!r}, found {found}")
            text = text.replace(old, new)
        path.write_text(text)
        print(f"patch-cpython: {name}: {len(edits)} edits", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    patch(pathlib.Path(sys.argv[1]))
