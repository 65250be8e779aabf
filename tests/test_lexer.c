/*
 * test_lexer.c: the re2c lexer (lang/tile.re): every token kind, keywords against
 * identifiers, literal forms and their values, comments, locations, and every lexical error
 * (bad bytes, NUL, invalid UTF-8 in comments, unterminated comments, malformed numbers).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "frontend/frontend.h"
#include "tile_parser.h"

enum { MAX_TOKENS = 64 };

typedef struct Lexed {
    SourceFile file;
    DiagList diags;
    Token tokens[MAX_TOKENS];
    int count; /* tokens before the end-of-file token */
    Token end;
} Lexed;

/* Lexes text (len bytes; the array must hold a NUL at text[len]) to the end. */
static void lex_n(Lexed *out, const char *text, size_t len) {
    diag_free(&out->diags); /* from the previous use of out, if any */
    memset(out, 0, sizeof *out);
    out->file = (SourceFile){"t.tile", text, len};
    Lexer lx;
    lexer_init(&lx, &out->file, &out->diags);
    for (;;) {
        Token t = lexer_next(&lx);
        if (t.code == 0) {
            out->end = t;
            return;
        }
        cr_assert_lt(out->count, MAX_TOKENS, "too many tokens");
        out->tokens[out->count++] = t;
    }
}

static void lex(Lexed *out, const char *text) { lex_n(out, text, strlen(text)); }

static void expect_codes(const char *text, const int *codes, int n) {
    Lexed l = {0};
    lex(&l, text);
    cr_assert_eq(l.diags.errors, 0, "%s: unexpected errors:\n%s", text, sb_str(&l.diags.text));
    cr_assert_eq(l.count, n, "%s: %d tokens, expected %d", text, l.count, n);
    for (int i = 0; i < n; i++)
        cr_expect_eq(l.tokens[i].code, codes[i], "%s: token %d is %s, expected %s", text, i,
                     token_name(l.tokens[i].code), token_name(codes[i]));
    diag_free(&l.diags);
}

#define EXPECT_CODES(text, ...)                                                              \
    do {                                                                                     \
        const int codes_[] = {__VA_ARGS__};                                                  \
        expect_codes(text, codes_, (int)(sizeof codes_ / sizeof codes_[0]));                \
    } while (0)

static const char *first_error(Lexed *l) { return sb_str(&l->diags.text); }

Test(lexer, punctuation_and_operators) {
    EXPECT_CODES("( ) [ ] { } , ; : :+ .. ->", TK_LPAREN, TK_RPAREN, TK_LBRACKET, TK_RBRACKET,
                 TK_LBRACE, TK_RBRACE, TK_COMMA, TK_SEMI, TK_COLON, TK_COLON_PLUS, TK_DOTDOT,
                 TK_ARROW);
    EXPECT_CODES("|| && | ^ & == != < <= > >= << >> + - * / % ! ~", TK_OROR, TK_ANDAND, TK_PIPE,
                 TK_CARET, TK_AMP, TK_EQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE, TK_SHL, TK_SHR,
                 TK_PLUS, TK_MINUS, TK_STAR, TK_SLASH, TK_PERCENT, TK_NOT, TK_TILDE);
    EXPECT_CODES("= += -= *= /= %= &= |= ^= <<= >>=", TK_ASSIGN, TK_PLUS_ASSIGN, TK_MINUS_ASSIGN,
                 TK_STAR_ASSIGN, TK_SLASH_ASSIGN, TK_PERCENT_ASSIGN, TK_AMP_ASSIGN, TK_PIPE_ASSIGN,
                 TK_CARET_ASSIGN, TK_SHL_ASSIGN, TK_SHR_ASSIGN);
}

Test(lexer, longest_match_without_spaces) {
    EXPECT_CODES("a<<=b>>c<=d", TK_NAME, TK_SHL_ASSIGN, TK_NAME, TK_SHR, TK_NAME, TK_LE, TK_NAME);
    EXPECT_CODES("x:+y", TK_NAME, TK_COLON_PLUS, TK_NAME);
    EXPECT_CODES("a->b-c", TK_NAME, TK_ARROW, TK_NAME, TK_MINUS, TK_NAME);
    EXPECT_CODES("!=!", TK_NE, TK_NOT);
    EXPECT_CODES("&&&", TK_ANDAND, TK_AMP);
}

Test(lexer, keywords_and_identifiers) {
    EXPECT_CODES("kernel fn grid let var for in step pipeline if else while return", TK_KERNEL,
                 TK_FN, TK_GRID, TK_LET, TK_VAR, TK_FOR, TK_IN, TK_STEP, TK_PIPELINE, TK_IF,
                 TK_ELSE, TK_WHILE, TK_RETURN);
    EXPECT_CODES("true false tensor tile cast zeros ones full warps", TK_TRUE, TK_FALSE, TK_TENSOR,
                 TK_TILE, TK_CAST, TK_ZEROS, TK_ONES, TK_FULL, TK_WARPS);
    /* a keyword prefix or a keyword with a suffix is an identifier */
    EXPECT_CODES("kernels _fn fn_ tiles in2 If x_1 _", TK_NAME, TK_NAME, TK_NAME, TK_NAME,
                 TK_NAME, TK_NAME, TK_NAME, TK_NAME);
    Lexed l = {0};
    lex(&l, "block_id");
    cr_assert_eq(l.tokens[0].len, 8);
    cr_assert(memcmp(l.tokens[0].start, "block_id", 8) == 0);
    diag_free(&l.diags);
}

static uint64_t int_value(const char *text, bool *ok) {
    Lexed l = {0};
    lex(&l, text);
    cr_assert_eq(l.diags.errors, 0, "%s:\n%s", text, sb_str(&l.diags.text));
    cr_assert_eq(l.count, 1, "%s lexes as %d tokens", text, l.count);
    cr_assert_eq(l.tokens[0].code, TK_INT, "%s is %s", text, token_name(l.tokens[0].code));
    cr_assert_eq(l.tokens[0].len, strlen(text));
    uint64_t v = 12345;
    *ok = lexer_int_value(&l.tokens[0], &v);
    diag_free(&l.diags);
    return v;
}

Test(lexer, integer_literals) {
    bool ok;
    cr_expect_eq(int_value("0", &ok), 0);
    cr_expect_eq(int_value("42", &ok), 42);
    cr_expect_eq(int_value("007", &ok), 7);
    cr_expect_eq(int_value("1_000_000", &ok), 1000000);
    cr_expect_eq(int_value("0x1F", &ok), 31);
    cr_expect_eq(int_value("0XdeadBEEF", &ok), 0xdeadbeefu);
    cr_expect_eq(int_value("0xFFFF_FFFF", &ok), 0xffffffffu);
    cr_expect_eq(int_value("0x_7f", &ok), 0x7f);
    cr_expect_eq(int_value("0b1010", &ok), 10);
    cr_expect_eq(int_value("0B1111_0000", &ok), 0xf0);
    cr_expect_eq(int_value("18446744073709551615", &ok), UINT64_MAX);
    cr_expect(ok);
    cr_expect_eq(int_value("0xffffffffffffffff", &ok), UINT64_MAX);
    cr_expect(ok);
    cr_expect_eq(int_value("9223372036854775808", &ok), 9223372036854775808u);
    cr_expect(ok);
}

Test(lexer, integer_overflow_is_flagged_not_reported) {
    bool ok = true;
    int_value("18446744073709551616", &ok);
    cr_expect_not(ok);
    ok = true;
    int_value("0x1_0000_0000_0000_0000", &ok);
    cr_expect_not(ok);
    ok = true;
    int_value("0b" "1111111111111111111111111111111111111111111111111111111111111111" "1", &ok);
    cr_expect_not(ok);
    ok = true;
    int_value("99999999999999999999999999999999", &ok);
    cr_expect_not(ok);
}

static double float_value(const char *text) {
    Lexed l = {0};
    lex(&l, text);
    cr_assert_eq(l.diags.errors, 0, "%s:\n%s", text, sb_str(&l.diags.text));
    cr_assert_eq(l.count, 1, "%s lexes as %d tokens", text, l.count);
    cr_assert_eq(l.tokens[0].code, TK_FLOAT, "%s is %s", text, token_name(l.tokens[0].code));
    double v = lexer_float_value(&l.tokens[0]);
    diag_free(&l.diags);
    return v;
}

Test(lexer, float_literals) {
    cr_expect_eq(float_value("1.5"), 1.5);
    cr_expect_eq(float_value("0.25"), 0.25);
    cr_expect_eq(float_value("1e3"), 1000.0);
    cr_expect_eq(float_value("2E-2"), 0.02);
    cr_expect_eq(float_value("1.5e+3"), 1500.0);
    cr_expect_eq(float_value("6.25e-1"), 0.625);
    cr_expect_eq(float_value("0.1"), 0.1);
    double big = float_value("1e999");
    cr_expect(big > 1e308, "1e999 should be infinite");
}

Test(lexer, range_is_not_a_float) {
    EXPECT_CODES("0..N", TK_INT, TK_DOTDOT, TK_NAME);
    EXPECT_CODES("0 .. 10", TK_INT, TK_DOTDOT, TK_INT);
    EXPECT_CODES("1.5..2.5", TK_FLOAT, TK_DOTDOT, TK_FLOAT);
    EXPECT_CODES("a..b", TK_NAME, TK_DOTDOT, TK_NAME);
}

Test(lexer, comments_and_whitespace) {
    EXPECT_CODES("a // b c\n d", TK_NAME, TK_NAME);
    EXPECT_CODES("a /* b \n c */ d", TK_NAME, TK_NAME);
    EXPECT_CODES("a/**/b", TK_NAME, TK_NAME);
    EXPECT_CODES("a /* ** / * */ b", TK_NAME, TK_NAME);
    EXPECT_CODES("a/*/ still comment */b", TK_NAME, TK_NAME);
    EXPECT_CODES("\t\r\n a\r\n", TK_NAME);
    EXPECT_CODES("x // comment at the end without newline", TK_NAME);
    /* comments do not nest: the first end marker closes the comment */
    EXPECT_CODES("/* a /* b */ c", TK_NAME);
    /* valid UTF-8 inside comments: 2, 3 and 4-byte sequences */
    EXPECT_CODES("a // caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80\nb", TK_NAME, TK_NAME);
    EXPECT_CODES("a /* \xc3\xa9 */ b", TK_NAME, TK_NAME);
}

Test(lexer, locations_are_one_based_bytes) {
    Lexed l = {0};
    lex(&l, "kernel k\n  /* two\nlines */ x\n\ty // c\n  z");
    cr_assert_eq(l.count, 5);
    cr_expect_eq(l.tokens[0].loc.line, 1);
    cr_expect_eq(l.tokens[0].loc.col, 1);
    cr_expect_eq(l.tokens[1].loc.line, 1);
    cr_expect_eq(l.tokens[1].loc.col, 8);
    cr_expect_eq(l.tokens[2].loc.line, 3); /* x after the comment ending on line 3 */
    cr_expect_eq(l.tokens[2].loc.col, 10);
    cr_expect_eq(l.tokens[3].loc.line, 4); /* a tab counts one column */
    cr_expect_eq(l.tokens[3].loc.col, 2);
    cr_expect_eq(l.tokens[4].loc.line, 5);
    cr_expect_eq(l.tokens[4].loc.col, 3);
    cr_expect_eq(l.end.loc.line, 5);
    cr_expect_eq(l.end.loc.col, 4);
    cr_expect(l.tokens[0].loc.file == &l.file);
    diag_free(&l.diags);
}

Test(lexer, empty_input) {
    Lexed l = {0};
    lex(&l, "");
    cr_expect_eq(l.count, 0);
    cr_expect_eq(l.diags.errors, 0);
    cr_expect_eq(l.end.loc.line, 1);
    cr_expect_eq(l.end.loc.col, 1);
    lex(&l, "  \n\n // nothing\n");
    cr_expect_eq(l.count, 0);
    cr_expect_eq(l.diags.errors, 0);
    diag_free(&l.diags);
}

Test(lexer, invalid_bytes_are_located_and_named) {
    Lexed l = {0};
    lex(&l, "a \xff b");
    cr_expect_eq(l.diags.errors, 1);
    cr_expect(strstr(first_error(&l), "t.tile:1:3: error: invalid byte 0xff") != NULL, "%s", first_error(&l));
    cr_expect_eq(l.count, 3, "lexing goes on after the bad byte");
    cr_expect_eq(l.tokens[1].code, TK_ILLEGAL);
    cr_expect_eq(l.tokens[2].code, TK_NAME);

    /* a multi-byte UTF-8 character outside comments is one error naming its first byte */
    lex(&l, "x\n  \xc3\xa9;");
    cr_expect_eq(l.diags.errors, 1);
    cr_expect(strstr(first_error(&l), "t.tile:2:3: error: invalid byte 0xc3") != NULL, "%s", first_error(&l));
    cr_expect_eq(l.count, 3);
    cr_expect_eq(l.tokens[1].len, 2);
    cr_expect_eq(l.tokens[2].code, TK_SEMI);

    /* a run of bad bytes is one error; separate bad characters are one error each */
    lex(&l, "\xff\xfe\x80 x");
    cr_expect_eq(l.diags.errors, 1);
    cr_expect_eq(l.count, 2);
    lex(&l, "@ $");
    cr_expect_eq(l.diags.errors, 2);
    cr_expect_eq(l.count, 2);

    lex(&l, "a @ b");
    cr_expect(strstr(first_error(&l), "t.tile:1:3: error: unexpected character '@'") != NULL, "%s", first_error(&l));
    lex(&l, "a . b");
    cr_expect(strstr(first_error(&l), "1:3: error: unexpected character '.'") != NULL, "%s", first_error(&l));
    lex(&l, "\x01");
    cr_expect(strstr(first_error(&l), "1:1: error: invalid control character 0x01") != NULL, "%s", first_error(&l));
    diag_free(&l.diags);
}

Test(lexer, nul_bytes_are_errors) {
    static const char text[] = "a\0b"; /* 3 bytes, then the terminating NUL */
    Lexed l = {0};
    lex_n(&l, text, 3);
    cr_expect_eq(l.diags.errors, 1);
    cr_expect(strstr(first_error(&l), "t.tile:1:2: error: NUL byte in source") != NULL, "%s", first_error(&l));
    cr_expect_eq(l.count, 3, "the NUL does not end the input");
    cr_expect_eq(l.tokens[1].code, TK_ILLEGAL);

    static const char in_comment[] = "a // x\0y\nb";
    lex_n(&l, in_comment, sizeof in_comment - 1);
    cr_expect_eq(l.diags.errors, 1);
    cr_expect(strstr(first_error(&l), "1:7: error: NUL byte in comment") != NULL, "%s", first_error(&l));
    cr_expect_eq(l.count, 2);
    diag_free(&l.diags);
}

Test(lexer, invalid_utf8_in_comments) {
    Lexed l = {0};
    lex(&l, "a // ok \xff \xfe\n b");
    cr_expect_eq(l.diags.errors, 1, "one error per comment");
    cr_expect(strstr(first_error(&l), "t.tile:1:9: error: invalid UTF-8 byte 0xff in comment") != NULL, "%s", first_error(&l));
    cr_expect_eq(l.count, 2);
    /* overlong encoding, lone continuation byte, surrogate, truncated sequence */
    const char *bad[] = {"/* \xc0\xaf */", "/* \x80 */", "/* \xed\xa0\x80 */", "// \xe2\x86", "/* \xf5\x80\x80\x80 */"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lex(&l, bad[i]);
        cr_expect_geq(l.diags.errors, 1, "case %zu accepted", i);
        cr_expect(strstr(first_error(&l), "1:4: error: invalid UTF-8 byte") != NULL, "case %zu: %s", i, first_error(&l));
    }
    diag_free(&l.diags);
}

Test(lexer, unterminated_comment) {
    Lexed l = {0};
    lex(&l, "a\n  /* never\n closed");
    cr_expect_eq(l.diags.errors, 1);
    cr_expect(strstr(first_error(&l), "t.tile:2:3: error: unterminated comment") != NULL, "%s", first_error(&l));
    cr_expect_eq(l.count, 1);
    lex(&l, "/*/");
    cr_expect(strstr(first_error(&l), "1:1: error: unterminated comment") != NULL, "%s", first_error(&l));
    /* an unterminated comment with a bad byte reports the missing end only */
    lex(&l, "/* \xff never closed");
    cr_expect_eq(l.diags.errors, 1);
    cr_expect(strstr(first_error(&l), "1:1: error: unterminated comment") != NULL, "%s", first_error(&l));
    lex(&l, "/* ends with a star *");
    cr_expect(strstr(first_error(&l), "unterminated comment") != NULL, "%s", first_error(&l));
    diag_free(&l.diags);
}

Test(lexer, malformed_numbers) {
    const char *bad[] = {"0x", "0b", "0b102", "12ab", "1e", "0xfg", "1.5f", "1e5x", "0x_"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Lexed l = {0};
        lex(&l, bad[i]);
        cr_expect_eq(l.diags.errors, 1, "%s: %d errors", bad[i], l.diags.errors);
        char want[64];
        snprintf(want, sizeof want, "1:1: error: invalid number literal '%s'", bad[i]);
        cr_expect(strstr(first_error(&l), want) != NULL, "%s: %s", bad[i], first_error(&l));
        cr_expect_eq(l.count, 1, "%s: one (bad) token, not several", bad[i]);
        diag_free(&l.diags);
    }
}

Test(lexer, token_names) {
    cr_expect_str_eq(token_name(0), "end of file");
    cr_expect_str_eq(token_name(TK_NAME), "identifier");
    cr_expect_str_eq(token_name(TK_INT), "integer literal");
    cr_expect_str_eq(token_name(TK_FLOAT), "float literal");
    cr_expect_str_eq(token_name(TK_PLUS), "'+'");
    cr_expect_str_eq(token_name(TK_SHR_ASSIGN), "'>>='");
    cr_expect_str_eq(token_name(TK_COLON_PLUS), "':+'");
    cr_expect_str_eq(token_name(TK_KERNEL), "'kernel'");
    /* every token code has a name of its own */
    for (int code = 1; code <= TK_COLON_PLUS; code++)
        cr_expect_str_neq(token_name(code), "token", "code %d has no name", code);
}

/* ---- Language II tokens ---------------------------------------------------------------- */
Test(lexer, strings_question_mark_and_new_keywords) {
    EXPECT_CODES("break continue bitcast ? \"a, b: c\" \"\"", TK_BREAK, TK_CONTINUE, TK_BITCAST, TK_QUESTION,
                 TK_STRING, TK_STRING);
    EXPECT_CODES("c?a:b", TK_NAME, TK_QUESTION, TK_NAME, TK_COLON, TK_NAME);
    EXPECT_CODES("breaks continued", TK_NAME, TK_NAME);
    Lexed l = {0};
    lex(&l, "\"x \\ y\"");
    cr_assert_eq(l.count, 1);
    cr_assert_eq(l.tokens[0].len, 7, "a backslash is an ordinary character");
    diag_free(&l.diags);
}

Test(lexer, unterminated_strings) {
    Lexed l = {0};
    lex(&l, "a \"no end\nb");
    cr_assert_eq(l.diags.errors, 1);
    cr_assert(strstr(first_error(&l), "t.tile:1:3: error: unterminated string literal"), "%s", first_error(&l));
    cr_assert_eq(l.tokens[l.count - 1].code, TK_NAME, "scanning goes on on the next line");
    lex(&l, "\"caf\xc3\xa9\"");
    cr_assert_eq(l.diags.errors, 1, "strings are ASCII");
    diag_free(&l.diags);
}

Test(lexer, shared_is_a_keyword) {
    EXPECT_CODES("shared<f32>[4] shared_x barrier", TK_SHARED, TK_LT, TK_NAME, TK_GT, TK_LBRACKET, TK_INT,
                 TK_RBRACKET, TK_NAME, TK_NAME);
    cr_expect_str_eq(token_name(TK_SHARED), "'shared'");
}
