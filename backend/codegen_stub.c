/*
 * codegen_stub.c: TEMPORARY stand-in for the code generator (backend/codegen.c), which is
 * written in parallel. DELETE THIS FILE when codegen.c is merged.
 *
 * Every entry point fails with info->unsupported = true, so the runtime's cuda path reports
 * TILE_ERROR_UNSUPPORTED and the tests that need generated code skip with that reason. The
 * definitions are weak so that, should the real ones be linked in beside them, the real ones win.
 */
#include "backend/backend.h"

#define STUB_MESSAGE "the GPU code generator is not built in yet (backend/codegen_stub.c)"

__attribute__((weak)) bool backend_codegen(LLVMContextRef context, const struct IrFunction *kernel,
                                           const CodegenOptions *options, LLVMModuleRef *out, CodegenInfo *info,
                                           Strbuf *err) {
    (void)context, (void)kernel, (void)options;
    *out = NULL;
    info->threads = 0;
    info->shared_bytes = 0;
    info->unsupported = true;
    sb_puts(err, STUB_MESSAGE);
    return false;
}

__attribute__((weak)) bool backend_compile_ptx(const struct IrFunction *kernel, const CodegenOptions *options,
                                               Strbuf *ptx, CodegenInfo *info, Strbuf *err) {
    (void)ptx;
    LLVMModuleRef module;
    return backend_codegen(NULL, kernel, options, &module, info, err);
}

__attribute__((weak)) bool backend_compile_llvm(const struct IrFunction *kernel, const CodegenOptions *options,
                                                Strbuf *text, CodegenInfo *info, Strbuf *err) {
    (void)text;
    LLVMModuleRef module;
    return backend_codegen(NULL, kernel, options, &module, info, err);
}
