/* test_support.c: arenas, strings, the string map, diagnostics and element-type semantics. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

Test(support, arena_zeroed_and_aligned) {
    Arena a;
    arena_init(&a);
    for (int i = 1; i < 2000; i += 37) {
        unsigned char *p = arena_alloc(&a, (size_t)i);
        cr_assert_eq(((uintptr_t)p) % 16, 0);
        for (int j = 0; j < i; j++) cr_assert_eq(p[j], 0);
        memset(p, 0xAB, (size_t)i);
    }
    char *big = arena_alloc(&a, 1 << 20);
    big[(1 << 20) - 1] = 1;
    cr_assert_str_eq(arena_printf(&a, "%d-%s", 42, "x"), "42-x");
    arena_free(&a);
}

Test(support, strmap_grows_and_finds) {
    StrMap m = {0};
    char keys[500][8];
    for (int i = 0; i < 500; i++) {
        snprintf(keys[i], 8, "k%d", i);
        strmap_put(&m, keys[i], (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < 500; i++) cr_assert_eq((intptr_t)strmap_get(&m, keys[i]), i + 1);
    cr_assert_null(strmap_get(&m, "missing"));
    strmap_put(&m, keys[3], (void *)7);
    cr_assert_eq((intptr_t)strmap_get(&m, "k3"), 7);
    cr_assert_eq(m.len, 500);
    strmap_free(&m);
}

Test(support, diagnostic_has_location_line_and_caret) {
    SourceFile f = {"k.tile", "let a = 1;\nlet b = @;\n", 22};
    DiagList d = {0};
    diag_error(&d, (SrcLoc){&f, 2, 9}, "unexpected '%s'", "@");
    cr_assert_str_eq(sb_str(&d.text), "k.tile:2:9: error: unexpected '@'\n  let b = @;\n          ^\n");
    cr_assert_eq(d.errors, 1);
    diag_free(&d);
}

Test(support, diagnostic_masks_non_ascii) {
    SourceFile f = {"k.tile", "a \xff b", 5};
    DiagList d = {0};
    diag_error(&d, (SrcLoc){&f, 1, 3}, "bad byte");
    cr_assert(strstr(sb_str(&d.text), "  a ? b\n    ^\n") != NULL, "%s", sb_str(&d.text));
    diag_free(&d);
}

Test(support, diagnostic_windows_a_long_line_around_the_column) {
    enum { N = 100000 };
    char *text = malloc(N + 1);
    memset(text, 'a', N);
    text[N] = 0;
    text[70000] = '@';
    SourceFile f = {"long.tile", text, N};
    DiagList d = {0};
    diag_error(&d, (SrcLoc){&f, 1, 70001}, "bad");
    const char *out = sb_str(&d.text);
    cr_assert_lt(strlen(out), 400, "%zu bytes", strlen(out));
    const char *line = strstr(out, "\n  ...");
    cr_assert_not_null(line, "%s", out);
    const char *at = strchr(line, '@'), *caret = strchr(at, '^');
    size_t line_start = (size_t)(line + 1 - out), caret_line = (size_t)(strchr(line + 1, '\n') + 1 - out);
    cr_assert_eq((size_t)(at - out) - line_start, (size_t)(caret - out) - caret_line, "%s", out);
    diag_free(&d);
    free(text);
}

Test(elem, parse_and_name_roundtrip) {
    const char *names[] = {"bool", "i1", "i7", "i64", "u1", "u3", "u8", "f16", "bf16", "f32",
                           "f64", "f8e4m3", "f8e5m2", "f6e3m2", "f6e2m3", "f4e2m1", "f3e1m1"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        ElemType e;
        char buf[16];
        cr_assert(elem_parse(names[i], strlen(names[i]), &e), "%s", names[i]);
        cr_assert_str_eq(elem_name(e, buf), names[i]);
    }
    const char *bad[] = {"i0", "i65", "f8", "f8e4m4", "f8e0m7", "x32", "i08", "f", "bf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ElemType e;
        cr_assert_not(elem_parse(bad[i], strlen(bad[i]), &e), "%s", bad[i]);
    }
}

Test(elem, integer_wraparound) {
    cr_assert_eq(elem_wrap_int(elem_int(8), 128), -128);
    cr_assert_eq(elem_wrap_int(elem_uint(8), -1), 255);
    cr_assert_eq(elem_wrap_int(elem_int(1), 1), -1);
    cr_assert_eq(elem_wrap_int(elem_uint(3), 9), 1);
    cr_assert_eq(elem_wrap_int(elem_int(4), 8), -8);
    cr_assert_eq(elem_wrap_int(elem_int(64), INT64_MIN), INT64_MIN);
}

Test(elem, float_rounding_nearest_even) {
    ElemType bf16 = elem_bf16(), f16 = elem_f16();
    /* 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even gives 1. */
    cr_assert_eq(elem_round_float(bf16, 1.0 + ldexp(1, -8)), 1.0);
    cr_assert_eq(elem_round_float(bf16, 1.0 + 3 * ldexp(1, -8)), 1.0 + ldexp(1, -6));
    cr_assert_eq(elem_round_float(f16, 65504.0), 65504.0);
    cr_assert(isinf(elem_round_float(f16, 65520.0)));
    cr_assert_eq(elem_round_float(f16, ldexp(1, -24)), ldexp(1, -24)); /* smallest subnormal */
    cr_assert_eq(elem_round_float(f16, ldexp(1, -26)), 0.0);
    ElemType e4m3 = elem_float(4, 3), e5m2 = elem_float(5, 2), e2m1 = elem_float(2, 1);
    cr_assert_eq(elem_round_float(e4m3, 1000.0), 448.0);   /* saturates */
    cr_assert_eq(elem_round_float(e4m3, 464.0), 448.0);
    cr_assert(isnan(elem_round_float(e4m3, NAN)));
    cr_assert(isinf(elem_round_float(e5m2, 1e6)));
    cr_assert_eq(elem_round_float(e5m2, 57344.0), 57344.0);
    cr_assert_eq(elem_round_float(e2m1, 5.0), 4.0);       /* 4 and 6: tie to even mantissa */
    cr_assert_eq(elem_round_float(e2m1, 100.0), 6.0);
    cr_assert_eq(elem_round_float(e2m1, 0.25), 0.0);      /* tie between 0 and 0.5 */
    cr_assert_eq(elem_round_float(e2m1, NAN), 0.0);
    cr_assert_eq(elem_round_float(e2m1, -0.75), -1.0);
}

Test(elem, conversions_saturate_and_wrap) {
    IrConst v = {.is_float = true, .f = 300.7};
    cr_assert_eq(elem_convert(elem_f32(), v, elem_int(8)).i, 127);
    cr_assert_eq(elem_convert(elem_f32(), v, elem_uint(8)).i, 255);
    v.f = -3.9;
    cr_assert_eq(elem_convert(elem_f32(), v, elem_int(32)).i, -3);
    cr_assert_eq(elem_convert(elem_f32(), v, elem_uint(4)).i, 0);
    IrConst n = {.i = 300};
    cr_assert_eq(elem_convert(elem_i32(), n, elem_int(8)).i, 44);
    cr_assert_eq(elem_convert(elem_i32(), n, elem_bool()).i, 1);
    cr_assert_eq(elem_convert(elem_i32(), n, elem_bf16()).f, 300.0);
    n.i = 16777217;
    cr_assert_eq(elem_convert(elem_i32(), n, elem_f32()).f, 16777216.0);
}

/* 2^n - 1 is not a double for n >= 54: the bounds must not be computed in double. */
Test(elem, conversions_saturate_at_wide_integer_bounds) {
    IrConst big = {.is_float = true, .f = 1e300}, small = {.is_float = true, .f = -1e300};
    for (int bits = 2; bits <= 64; bits++) {
        int64_t umax = bits == 64 ? (int64_t)UINT64_MAX : (int64_t)((UINT64_C(1) << bits) - 1);
        int64_t imax = (int64_t)((UINT64_C(1) << (bits - 1)) - 1), imin = -imax - 1;
        cr_assert_eq(elem_convert(elem_f64(), big, elem_uint(bits)).i, umax, "u%d", bits);
        cr_assert_eq(elem_convert(elem_f64(), small, elem_uint(bits)).i, 0, "u%d", bits);
        cr_assert_eq(elem_convert(elem_f64(), big, elem_int(bits)).i, imax, "i%d", bits);
        cr_assert_eq(elem_convert(elem_f64(), small, elem_int(bits)).i, imin, "i%d", bits);
    }
    /* values just below the bound convert exactly */
    IrConst v = {.is_float = true, .f = ldexp(1.0, 62) * 1.5};
    cr_assert_eq(elem_convert(elem_f64(), v, elem_int(64)).i, (int64_t)3 << 61);
    cr_assert_eq(elem_convert(elem_f64(), v, elem_int(63)).i, ((int64_t)1 << 62) - 1);
    cr_assert_eq(elem_convert(elem_f64(), v, elem_uint(63)).i, (int64_t)3 << 61);
}
