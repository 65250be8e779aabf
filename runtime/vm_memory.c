/*
 * vm_memory.c: how elements lie in memory: float formats to and from bit patterns, and reading
 * and writing single elements of (possibly packed) buffers.
 *
 * A float format f<bits>e<exp>m<man> has bias 2^(exp-1)-1. Decoding is exact because every
 * format the IR allows (exp <= 11, man <= 52) is a subset of double: value = (2^man + m) *
 * 2^(e - bias - man) for a normal binade, m * 2^(1 - bias - man) for subnormals. IEEE-like
 * formats (16, 32, 64 bits and f8e5m2) put infinities and NaNs at the all-ones exponent; other
 * formats are finite-only, the all-ones exponent being a normal binade, except that f8e4m3
 * keeps S.1111.111 as NaN. Encoding first rounds with elem_round_float (so the VM, folding and
 * the encoder agree), then splits the exact value into fields.
 *
 * Elements whose width is 8, 16, 32 or 64 bits go through memcpy; other widths are gathered or
 * scattered bit by bit-run, least significant bit first, and may straddle bytes (u3, i7).
 */
#include "vm.h"

#include <math.h>
#include <string.h>

static uint64_t low_mask(int bits) { return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1; }

static bool is_f32(ElemType e) { return e.exp == 8 && e.man == 23; }
static bool is_f64(ElemType e) { return e.exp == 11 && e.man == 52; }
static bool is_e4m3(ElemType e) { return e.bits == 8 && e.exp == 4 && e.man == 3; }

double vm_float_decode(ElemType e, uint64_t bits) {
    if (is_f32(e)) {
        uint32_t u = (uint32_t)bits;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    if (is_f64(e)) {
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    int man_bits = e.man, exp_bits = e.exp;
    uint64_t man = bits & low_mask(man_bits);
    uint64_t exp = (bits >> man_bits) & low_mask(exp_bits);
    bool negative = (bits >> (man_bits + exp_bits)) & 1;
    uint64_t all_ones = low_mask(exp_bits);
    int bias = (1 << (exp_bits - 1)) - 1;
    double v;
    if (elem_float_is_ieee(e) && exp == all_ones) v = man ? NAN : INFINITY;
    else if (is_e4m3(e) && exp == all_ones && man == low_mask(man_bits)) v = NAN;
    else if (exp == 0) v = ldexp((double)man, 1 - bias - man_bits);
    else v = ldexp((double)(man | (UINT64_C(1) << man_bits)), (int)exp - bias - man_bits);
    return negative ? -v : v;
}

uint64_t vm_float_encode(ElemType e, double v) {
    v = elem_round_float(e, v);
    if (is_f32(e)) {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        return u;
    }
    if (is_f64(e)) {
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        return u;
    }
    int man_bits = e.man, exp_bits = e.exp;
    uint64_t sign = (uint64_t)(signbit(v) ? 1 : 0) << (man_bits + exp_bits);
    uint64_t all_ones = low_mask(exp_bits);
    if (isnan(v)) {
        if (is_e4m3(e)) return all_ones << man_bits | low_mask(man_bits);
        /* quiet NaN; formats without NaN never get here (elem_round_float gives +0) */
        return all_ones << man_bits | (man_bits ? UINT64_C(1) << (man_bits - 1) : 0);
    }
    if (isinf(v)) return sign | all_ones << man_bits;
    double a = fabs(v);
    if (a == 0) return sign;
    int bias = (1 << (exp_bits - 1)) - 1;
    int emin = 1 - bias;
    int ex;
    frexp(a, &ex);
    int unbiased = ex - 1;
    if (unbiased < emin) /* subnormal: an exact multiple of 2^(emin - man) */
        return sign | (uint64_t)ldexp(a, man_bits - emin);
    uint64_t man = (uint64_t)ldexp(a, man_bits - unbiased) - (UINT64_C(1) << man_bits);
    return sign | (uint64_t)(unbiased + bias) << man_bits | man;
}

/* Raw bits of the element at bit offset `bit` (width 1..64), least significant bit first. */
static uint64_t read_bits(const uint8_t *p, uint64_t bit, int width) {
    uint64_t r = 0;
    const uint8_t *byte = p + (bit >> 3);
    int shift = (int)(bit & 7), got = 0;
    while (got < width) {
        int take = 8 - shift;
        if (take > width - got) take = width - got;
        uint64_t chunk = (uint64_t)(*byte >> shift) & low_mask(take);
        r |= chunk << got;
        got += take;
        shift = 0;
        byte++;
    }
    return r;
}

static void write_bits(uint8_t *p, uint64_t bit, int width, uint64_t value) {
    uint8_t *byte = p + (bit >> 3);
    int shift = (int)(bit & 7), put = 0;
    while (put < width) {
        int take = 8 - shift;
        if (take > width - put) take = width - put;
        unsigned mask = (unsigned)(low_mask(take) << shift);
        unsigned chunk = (unsigned)(((value >> put) & low_mask(take)) << shift);
        *byte = (uint8_t)((*byte & ~mask) | chunk);
        put += take;
        shift = 0;
        byte++;
    }
}

static uint64_t load_raw(const void *data, ElemType e, int64_t offset) {
    const uint8_t *p = data;
    switch (e.bits) {
    case 8: return p[offset];
    case 16: { uint16_t v; memcpy(&v, p + offset * 2, 2); return v; }
    case 32: { uint32_t v; memcpy(&v, p + offset * 4, 4); return v; }
    case 64: { uint64_t v; memcpy(&v, p + offset * 8, 8); return v; }
    default: return read_bits(p, (uint64_t)offset * e.bits, e.bits);
    }
}

static void store_raw(void *data, ElemType e, int64_t offset, uint64_t v) {
    uint8_t *p = data;
    switch (e.bits) {
    case 8: p[offset] = (uint8_t)v; break;
    case 16: { uint16_t x = (uint16_t)v; memcpy(p + offset * 2, &x, 2); break; }
    case 32: { uint32_t x = (uint32_t)v; memcpy(p + offset * 4, &x, 4); break; }
    case 64: memcpy(p + offset * 8, &v, 8); break;
    default: write_bits(p, (uint64_t)offset * e.bits, e.bits, v); break;
    }
}

VmElem vm_read_element(const void *data, ElemType e, int64_t offset) {
    VmElem r;
    switch (e.kind) {
    case EK_BOOL:
        r.i = ((const uint8_t *)data)[offset] != 0;
        break;
    case EK_INT:
    case EK_UINT:
        r.i = elem_wrap_int(e, (int64_t)load_raw(data, e, offset));
        break;
    default:
        r.f = vm_float_decode(e, load_raw(data, e, offset));
        break;
    }
    return r;
}

void vm_write_element(void *data, ElemType e, int64_t offset, VmElem v) {
    switch (e.kind) {
    case EK_BOOL:
        ((uint8_t *)data)[offset] = v.i != 0;
        break;
    case EK_INT:
    case EK_UINT:
        store_raw(data, e, offset, (uint64_t)v.i);
        break;
    default:
        store_raw(data, e, offset, vm_float_encode(e, v.f));
        break;
    }
}
