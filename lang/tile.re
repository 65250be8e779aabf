/*
 * tile.re: the lexer of the tile language, a re2c scanner over a whole in-memory file.
 *
 * The text must end with a NUL at text[len]: that byte is re2c's end-of-input sentinel
 * (re2c:eof), so a NUL byte inside the file is an ordinary byte to the scanner and is
 * reported as an error rather than taken for the end. re2c matches tokens, keywords and
 * literals; comments are skipped by hand-written loops because they must check UTF-8 and
 * count lines. Locations are 1-based; the column counts bytes from the start of the line.
 *
 * Lexical errors are reported to the Lexer's DiagList with their location, at most one per
 * call: a byte that starts no token comes back as a TK_ILLEGAL token (which no grammar rule
 * accepts), a malformed number as one TK_INT/TK_FLOAT token spanning all of it, and a comment
 * reports only its first bad byte (or, if it does not end, only that). Scanning can go on after any of them; the parser driver
 * stops at the first. Literal values are decoded on demand (lexer_int_value,
 * lexer_float_value); an integer literal too large for 64 bits is not an error here: the
 * grammar sets AstNode.int_overflow and the lowering reports it.
 */
#include "frontend/frontend.h"
#include "tile_parser.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void lexer_init(Lexer *lx, const SourceFile *file, DiagList *d) {
    assert(file->text && file->text[file->len] == '\0');
    memset(lx, 0, sizeof *lx);
    lx->file = file;
    lx->cursor = file->text;
    lx->limit = file->text + file->len;
    lx->marker = lx->ctxmarker = lx->cursor;
    lx->line_start = file->text;
    lx->line = 1;
    lx->diags = d;
}

static SrcLoc lexer_loc(const Lexer *lx, const char *at) {
    return (SrcLoc){lx->file, lx->line, (uint32_t)(at - lx->line_start) + 1};
}

static void lexer_newline(Lexer *lx, const char *newline) {
    lx->line++;
    lx->line_start = newline + 1;
}

/* Length of the valid UTF-8 sequence at p (no overlongs, surrogates or code points past
 * U+10FFFF), or 0 when the bytes are not valid UTF-8. */
static size_t utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, min = 0x10000;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* The first bad byte of a comment, reported once the comment is over (an unterminated
 * comment is reported instead: it is the bigger problem). */
typedef struct CommentCheck {
    bool bad;
    SrcLoc loc;
    unsigned char byte;
} CommentCheck;

/* Checks one comment byte (or UTF-8 sequence) at lx->cursor and steps over it. */
static void lexer_comment_byte(Lexer *lx, CommentCheck *check) {
    const unsigned char *p = (const unsigned char *)lx->cursor;
    if (*p == '\n') {
        lexer_newline(lx, lx->cursor);
        lx->cursor++;
        return;
    }
    size_t n = *p ? utf8_length(p, (const unsigned char *)lx->limit) : 0;
    if (n == 0) {
        if (!check->bad) *check = (CommentCheck){true, lexer_loc(lx, lx->cursor), *p};
        n = 1;
    }
    lx->cursor += n;
}

static void lexer_report_comment(Lexer *lx, const CommentCheck *check) {
    if (!check->bad) return;
    if (check->byte == 0) diag_error(lx->diags, check->loc, "NUL byte in comment");
    else diag_error(lx->diags, check->loc, "invalid UTF-8 byte 0x%02x in comment", check->byte);
}

static void lexer_skip_line_comment(Lexer *lx) {
    CommentCheck check = {0};
    while (lx->cursor < lx->limit && *lx->cursor != '\n') lexer_comment_byte(lx, &check);
    lexer_report_comment(lx, &check);
}

/* Returns false (after reporting at the comment opener) when the comment does not end. */
static bool lexer_skip_block_comment(Lexer *lx, SrcLoc open) {
    CommentCheck check = {0};
    while (lx->cursor < lx->limit) {
        if (lx->cursor[0] == '*' && lx->cursor + 1 < lx->limit && lx->cursor[1] == '/') {
            lx->cursor += 2;
            lexer_report_comment(lx, &check);
            return true;
        }
        lexer_comment_byte(lx, &check);
    }
    diag_error(lx->diags, open, "unterminated comment");
    return false;
}

static bool is_identifier_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A number immediately followed by letters or digits ("0x", "12ab", "0b102", "1e") is one
 * bad literal, not two tokens. */
static void lexer_check_number_end(Lexer *lx, const char *start) {
    if (!is_identifier_byte(*lx->cursor) || lx->cursor >= lx->limit) return;
    while (lx->cursor < lx->limit && is_identifier_byte(*lx->cursor)) lx->cursor++;
    int n = (int)(lx->cursor - start);
    diag_error(lx->diags, lexer_loc(lx, start), "invalid number literal '%.*s'", n > 40 ? 40 : n, start);
}

/* Reports a byte that starts no token and returns how many bytes to skip. */
static size_t lexer_bad_byte(Lexer *lx, const char *at) {
    unsigned char c = (unsigned char)*at;
    SrcLoc loc = lexer_loc(lx, at);
    if (c == 0) {
        diag_error(lx->diags, loc, "NUL byte in source");
        return 1;
    }
    if (c >= 0x80) {
        /* one error for a whole run of non-ASCII bytes (a UTF-8 word, say) */
        size_t n = 1;
        while (at + n < lx->limit && (unsigned char)at[n] >= 0x80) n++;
        diag_error(lx->diags, loc, "invalid byte 0x%02x (only ASCII is allowed outside comments)", c);
        return n;
    }
    if (c < 32 || c == 127)
        diag_error(lx->diags, loc, "invalid control character 0x%02x", c);
    else
        diag_error(lx->diags, loc, "unexpected character '%c'", c);
    return 1;
}

/*!re2c
    re2c:define:YYCTYPE = "unsigned char";
    re2c:define:YYCURSOR = "lx->cursor";
    re2c:define:YYMARKER = "lx->marker";
    re2c:define:YYCTXMARKER = "lx->ctxmarker";
    re2c:define:YYLIMIT = "lx->limit";
    re2c:yyfill:enable = 0;
    re2c:eof = 0;

    identifier = [A-Za-z_][A-Za-z0-9_]*;
    decimal = [0-9][0-9_]*;
    hex = "0" [xX] "_"* [0-9a-fA-F] [0-9a-fA-F_]*;
    binary = "0" [bB] "_"* [01] [01_]*;
    exponent = [eE] [+-]? [0-9]+;
    float = [0-9]+ "." [0-9]+ exponent? | [0-9]+ exponent;
*/

Token lexer_next(Lexer *lx) {
    for (;;) {
        const char *start = lx->cursor;
        Token tok = {0, lexer_loc(lx, start), start, 0};
        int code;
        /*!re2c
            $ { tok.len = 0; return tok; }
            [ \t\r]+ { continue; }
            "\n" { lexer_newline(lx, start); continue; }
            "//" { lexer_skip_line_comment(lx); continue; }
            "/*" {
                if (!lexer_skip_block_comment(lx, tok.loc)) {
                    lx->cursor = lx->limit;
                    return (Token){0, lexer_loc(lx, lx->cursor), lx->cursor, 0};
                }
                continue;
            }

            "kernel" { code = TK_KERNEL; goto done; }
            "fn" { code = TK_FN; goto done; }
            "grid" { code = TK_GRID; goto done; }
            "let" { code = TK_LET; goto done; }
            "var" { code = TK_VAR; goto done; }
            "for" { code = TK_FOR; goto done; }
            "in" { code = TK_IN; goto done; }
            "step" { code = TK_STEP; goto done; }
            "pipeline" { code = TK_PIPELINE; goto done; }
            "warps" { code = TK_WARPS; goto done; }
            "if" { code = TK_IF; goto done; }
            "else" { code = TK_ELSE; goto done; }
            "while" { code = TK_WHILE; goto done; }
            "return" { code = TK_RETURN; goto done; }
            "true" { code = TK_TRUE; goto done; }
            "false" { code = TK_FALSE; goto done; }
            "tensor" { code = TK_TENSOR; goto done; }
            "tile" { code = TK_TILE; goto done; }
            "cast" { code = TK_CAST; goto done; }
            "zeros" { code = TK_ZEROS; goto done; }
            "ones" { code = TK_ONES; goto done; }
            "full" { code = TK_FULL; goto done; }
            "break" { code = TK_BREAK; goto done; }
            "continue" { code = TK_CONTINUE; goto done; }
            "bitcast" { code = TK_BITCAST; goto done; }
            "shared" { code = TK_SHARED; goto done; }
            identifier { code = TK_NAME; goto done; }

            hex | binary | decimal { code = TK_INT; lexer_check_number_end(lx, start); goto done; }
            float { code = TK_FLOAT; lexer_check_number_end(lx, start); goto done; }

            "(" { code = TK_LPAREN; goto done; }
            ")" { code = TK_RPAREN; goto done; }
            "[" { code = TK_LBRACKET; goto done; }
            "]" { code = TK_RBRACKET; goto done; }
            "{" { code = TK_LBRACE; goto done; }
            "}" { code = TK_RBRACE; goto done; }
            "," { code = TK_COMMA; goto done; }
            ";" { code = TK_SEMI; goto done; }
            ":" { code = TK_COLON; goto done; }
            ":+" { code = TK_COLON_PLUS; goto done; }
            ".." { code = TK_DOTDOT; goto done; }
            "->" { code = TK_ARROW; goto done; }

            "||" { code = TK_OROR; goto done; }
            "&&" { code = TK_ANDAND; goto done; }
            "|" { code = TK_PIPE; goto done; }
            "^" { code = TK_CARET; goto done; }
            "&" { code = TK_AMP; goto done; }
            "==" { code = TK_EQ; goto done; }
            "!=" { code = TK_NE; goto done; }
            "<" { code = TK_LT; goto done; }
            "<=" { code = TK_LE; goto done; }
            ">" { code = TK_GT; goto done; }
            ">=" { code = TK_GE; goto done; }
            "<<" { code = TK_SHL; goto done; }
            ">>" { code = TK_SHR; goto done; }
            "+" { code = TK_PLUS; goto done; }
            "-" { code = TK_MINUS; goto done; }
            "*" { code = TK_STAR; goto done; }
            "/" { code = TK_SLASH; goto done; }
            "%" { code = TK_PERCENT; goto done; }
            "!" { code = TK_NOT; goto done; }
            "~" { code = TK_TILDE; goto done; }
            "?" { code = TK_QUESTION; goto done; }
            ["] [\x20\x21\x23-\x7e]* ["] { code = TK_STRING; goto done; }
            ["] {
                /* a string without its closing quote on the line, or with a byte that is not
                 * printable ASCII: one error at the opening quote, and the rest of the line
                 * is skipped */
                diag_error(lx->diags, tok.loc, "unterminated string literal (strings are printable ASCII on one line)");
                while (lx->cursor < lx->limit && *lx->cursor != '\n') lx->cursor++;
                code = TK_ILLEGAL;
                goto done;
            }

            "=" { code = TK_ASSIGN; goto done; }
            "+=" { code = TK_PLUS_ASSIGN; goto done; }
            "-=" { code = TK_MINUS_ASSIGN; goto done; }
            "*=" { code = TK_STAR_ASSIGN; goto done; }
            "/=" { code = TK_SLASH_ASSIGN; goto done; }
            "%=" { code = TK_PERCENT_ASSIGN; goto done; }
            "&=" { code = TK_AMP_ASSIGN; goto done; }
            "|=" { code = TK_PIPE_ASSIGN; goto done; }
            "^=" { code = TK_CARET_ASSIGN; goto done; }
            "<<=" { code = TK_SHL_ASSIGN; goto done; }
            ">>=" { code = TK_SHR_ASSIGN; goto done; }

            * {
                lx->cursor = start + lexer_bad_byte(lx, start);
                code = TK_ILLEGAL;
                goto done;
            }
        */
    done:
        tok.code = code;
        tok.len = (size_t)(lx->cursor - start);
        return tok;
    }
}

bool lexer_int_value(const Token *t, uint64_t *value) {
    const char *p = t->start, *end = t->start + t->len;
    unsigned base = 10;
    if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) base = 16, p += 2;
    else if (end - p > 2 && p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) base = 2, p += 2;
    uint64_t v = 0;
    for (; p < end; p++) {
        unsigned d;
        if (*p == '_') continue;
        if (*p >= '0' && *p <= '9') d = (unsigned)(*p - '0');
        else if (*p >= 'a' && *p <= 'f') d = (unsigned)(*p - 'a' + 10);
        else if (*p >= 'A' && *p <= 'F') d = (unsigned)(*p - 'A' + 10);
        else break; /* the rest of a bad literal, already reported */
        if (d >= base) break;
        if (v > (UINT64_MAX - d) / base) {
            *value = 0;
            return false;
        }
        v = v * base + d;
    }
    *value = v;
    return true;
}

double lexer_float_value(const Token *t) {
    char small[64];
    char *buf = t->len < sizeof small ? small : xmalloc(t->len + 1);
    memcpy(buf, t->start, t->len);
    buf[t->len] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    return v;
}

const char *token_name(int code) {
    switch (code) {
    case 0: return "end of file";
    case TK_NAME: return "identifier";
    case TK_INT: return "integer literal";
    case TK_FLOAT: return "float literal";
    case TK_ILLEGAL: return "invalid token";
    case TK_KERNEL: return "'kernel'";
    case TK_FN: return "'fn'";
    case TK_GRID: return "'grid'";
    case TK_LET: return "'let'";
    case TK_VAR: return "'var'";
    case TK_FOR: return "'for'";
    case TK_IN: return "'in'";
    case TK_STEP: return "'step'";
    case TK_PIPELINE: return "'pipeline'";
    case TK_WARPS: return "'warps'";
    case TK_IF: return "'if'";
    case TK_ELSE: return "'else'";
    case TK_WHILE: return "'while'";
    case TK_RETURN: return "'return'";
    case TK_TRUE: return "'true'";
    case TK_FALSE: return "'false'";
    case TK_TENSOR: return "'tensor'";
    case TK_TILE: return "'tile'";
    case TK_CAST: return "'cast'";
    case TK_ZEROS: return "'zeros'";
    case TK_ONES: return "'ones'";
    case TK_FULL: return "'full'";
    case TK_BREAK: return "'break'";
    case TK_CONTINUE: return "'continue'";
    case TK_BITCAST: return "'bitcast'";
    case TK_SHARED: return "'shared'";
    case TK_QUESTION: return "'?'";
    case TK_STRING: return "string literal";
    case TK_LPAREN: return "'('";
    case TK_RPAREN: return "')'";
    case TK_LBRACKET: return "'['";
    case TK_RBRACKET: return "']'";
    case TK_LBRACE: return "'{'";
    case TK_RBRACE: return "'}'";
    case TK_COMMA: return "','";
    case TK_SEMI: return "';'";
    case TK_COLON: return "':'";
    case TK_COLON_PLUS: return "':+'";
    case TK_DOTDOT: return "'..'";
    case TK_ARROW: return "'->'";
    case TK_OROR: return "'||'";
    case TK_ANDAND: return "'&&'";
    case TK_PIPE: return "'|'";
    case TK_CARET: return "'^'";
    case TK_AMP: return "'&'";
    case TK_EQ: return "'=='";
    case TK_NE: return "'!='";
    case TK_LT: return "'<'";
    case TK_LE: return "'<='";
    case TK_GT: return "'>'";
    case TK_GE: return "'>='";
    case TK_SHL: return "'<<'";
    case TK_SHR: return "'>>'";
    case TK_PLUS: return "'+'";
    case TK_MINUS: return "'-'";
    case TK_STAR: return "'*'";
    case TK_SLASH: return "'/'";
    case TK_PERCENT: return "'%'";
    case TK_NOT: return "'!'";
    case TK_TILDE: return "'~'";
    case TK_ASSIGN: return "'='";
    case TK_PLUS_ASSIGN: return "'+='";
    case TK_MINUS_ASSIGN: return "'-='";
    case TK_STAR_ASSIGN: return "'*='";
    case TK_SLASH_ASSIGN: return "'/='";
    case TK_PERCENT_ASSIGN: return "'%='";
    case TK_AMP_ASSIGN: return "'&='";
    case TK_PIPE_ASSIGN: return "'|='";
    case TK_CARET_ASSIGN: return "'^='";
    case TK_SHL_ASSIGN: return "'<<='";
    case TK_SHR_ASSIGN: return "'>>='";
    default: return "token";
    }
}
