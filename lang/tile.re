/* Placeholder lexer; replaced by the real one. */
#include "frontend/frontend.h"
#include "tile_parser.h"
/*!re2c re2c:flags:posix-captures = 0; */
