/* Placeholder grammar; replaced by the real one. */
%name tile_parse
%token_prefix TK_
%token_type {Token}
%include {
#include "frontend/frontend.h"
}
file ::= .
%token OROR ANDAND PIPE CARET AMP EQ NE LT LE GT GE SHL SHR PLUS MINUS STAR SLASH PERCENT NOT TILDE.
%token ASSIGN PLUS_ASSIGN MINUS_ASSIGN STAR_ASSIGN SLASH_ASSIGN PERCENT_ASSIGN AMP_ASSIGN PIPE_ASSIGN CARET_ASSIGN SHL_ASSIGN SHR_ASSIGN.
