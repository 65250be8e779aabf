/* Placeholder grammar; replaced by the real one. */
%name tile_parse
%token_prefix TK_
%token_type {Token}
%include {
#include "frontend/frontend.h"
}
file ::= .
