/*
 * text.h: what the IR printer (ir/print.c), the IR reader (ir/parse.c) and the attribute table
 * (ir/attr.c, rows in ir/attr.def) share, so that every attribute kind prints and reads in one
 * place.
 *
 * The reader is a small tokenizer over the text with one token of lookahead. Its functions
 * either succeed or report a located error (`file:line:col: error: ...`) and do not return:
 * the reader unwinds to ir_parse_module, which frees what it built and returns NULL. So an
 * attribute's parse function reads straight-line, without checking every step.
 */
#ifndef TILE_IR_TEXT_H
#define TILE_IR_TEXT_H

#include "ir/ir.h"

/* ---- the reader (ir/parse.c) --------------------------------------------------------------- */
typedef struct IrReader IrReader;

/* Consumes the next token when it is the word `word` (an identifier); false otherwise. */
bool ir_reader_accept_word(IrReader *r, const char *word);
/* Consumes the next token when it is the punctuation character c; false otherwise. */
bool ir_reader_accept(IrReader *r, char c);
/* Consumes the punctuation character c or reports "expected 'c'". */
void ir_reader_expect(IrReader *r, char c);
/* True when the next token is an integer (decimal, optionally negative). */
bool ir_reader_at_int(IrReader *r);
/* Reads an integer, or reports "expected <what>". */
int64_t ir_reader_int(IrReader *r, const char *what);
/* Reads an identifier into buf (NUL-terminated, truncated to cap - 1), or reports "expected <what>". */
void ir_reader_word(IrReader *r, const char *what, char *buf, size_t cap);
/* Reads a string ("..." of printable ASCII) into the module's arena, or reports "expected <what>". */
const char *ir_reader_string(IrReader *r, const char *what);
/* The function being read. */
IrFunction *ir_reader_function(IrReader *r);
/* The location of the next token. */
SrcLoc ir_reader_loc(IrReader *r);
/* Reports an error at loc (ir_reader_loc) and does not return. */
TILE_NORETURN void ir_reader_error(IrReader *r, SrcLoc loc, const char *fmt, ...) TILE_PRINTF(3, 4);

/* ---- attributes (ir/attr.c) ------------------------------------------------------------------ */
typedef enum { ATTR_PREFIX, ATTR_SUFFIX } AttrPlace;

/* Prints op's attributes of `place`. Suffix attributes: the first one printed is preceded by
 * `first_separator` and the next ones by ", ". Returns whether anything was printed. */
bool ir_attrs_print(const IrOp *op, AttrPlace place, const char *first_separator, Strbuf *out);
/* Reads op's attributes of `place` into op->ints / op->nints. Suffix attributes: the caller has
 * consumed the separator before the first one; `present` says whether attribute text follows
 * at all (false: only optional attributes may be missing). */
void ir_attrs_parse(IrReader *r, IrOp *op, AttrPlace place, bool present);
/* Whether op has rows of `place` in ir/attr.def, or any row. */
bool ir_attrs_has(OpCode code, AttrPlace place);

#endif
