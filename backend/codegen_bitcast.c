/*
 * codegen_bitcast.c: the GPU lowering of bitcast<T>(x) between element types of one width
 * (lang/SPEC.md 6.2), one register slot at a time.
 *
 * Registers do not always hold an element in its memory format: f16 and bf16 live in f32
 * registers and bool in i1 (codegen_elem.c). A bitcast therefore goes through the memory
 * types: the value is put into its memory format (cg_to_mem), its bits are reinterpreted with
 * LLVM's bitcast (a no-op in PTX: both are one b16/b32/b64 register), and the result is taken
 * out of its memory format (cg_from_mem). Casts that change the width (bf16 pairs to u32,
 * packed u4 to u8) are built by the frontend from this one and integer shifts, so they need
 * nothing here.
 */
#include "codegen.h"

LLVMValueRef cg_bitcast(Cg *g, ElemType from, LLVMValueRef v, ElemType to) {
    if (from.bits != to.bits || elem_is_bool(from) || elem_is_bool(to)) return NULL;
    if (!cg_elem_supported(from) || !cg_elem_supported(to)) return NULL;
    LLVMValueRef bits = LLVMBuildBitCast(g->b, cg_to_mem(g, from, v), cg_mem_type(g, to), "");
    return cg_from_mem(g, to, bits);
}
