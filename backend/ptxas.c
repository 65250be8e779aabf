/*
 * ptxas.c: PTX -> cubin, by the ptxas program or in process by nvJitLink.
 *
 * ptxas: found in $TILE_PTXAS, $CUDA_HOME/bin, /usr/local/cuda/bin, then $PATH. The PTX goes to
 * a temporary file made with mkstemps in $TMPDIR (or /tmp), ptxas writes the cubin to another,
 * and both are removed whatever happens. ptxas runs through posix_spawn (no shell, so paths
 * need no quoting) with its stdout and stderr on a pipe that is read to the end before waiting
 * for it; its messages become the error text when it fails.
 *
 * nvJitLink: libnvJitLink.so.13 (or .12) is opened with dlopen once, on first use, and its
 * handful of entry points resolved by name; the library's own header is not needed. A compile
 * starts that load on a thread of its own as it begins (backend_nvjitlink_preload), so that its
 * frontend and LLVM time hide the dlopen of a ~100 MB library. A link
 * takes the PTX as input and -arch=sm_XX as option; its error log becomes the error text.
 *
 * CUBIN_TOOL_AUTO takes nvJitLink, in process, and the ptxas program where nvJitLink is not
 * installed or where a kernel uses `setmaxnreg` (warp roles): nvJitLink assembles PTX as one of
 * several units to be linked and ignores `setmaxnreg` then (C7504: a warp-specialized gemm kept
 * 136 registers in its consumers and spilled its accumulators, 15 times slower on the H200),
 * where ptxas, compiling the module as a whole program, honours it; and where a kernel with wgmma
 * has an instruction that SASS implements as a subroutine call (an IEEE division, for one):
 * nvJitLink then serializes every wgmma of the function (C7509), ptxas does not
 * (needs_whole_program). The ptxas program costs a cold JIT about 170 ms more on the H200
 * machine (bench/RESULTS.md, fifth session), so the others stay with nvJitLink.
 *
 * $TILE_PTXAS_THREADS=N (0: every core) spreads ptxas's optimizations over N threads in both
 * (-split-compile=N; unset or 1: not split); a tool too old to know the option is asked again
 * without it. The machine code is bit for bit the same; it is off by default because on the H200
 * machine's 16 cores it did not shorten the GEMM's assembly in a repeated A/B
 * (bench/bench_assembler.py, bench/RESULTS.md ninth session).
 */
#include "backend/backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- finding ptxas ------------------------------------------------------------------------ */

static bool is_executable_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Tries dir/name (or path itself when name is NULL); records the attempt in searched. */
static bool try_candidate(char *path, size_t cap, const char *dir, const char *name,
                          Strbuf *searched) {
    char candidate[4096];
    int n = name ? snprintf(candidate, sizeof candidate, "%s/%s", dir, name)
                 : snprintf(candidate, sizeof candidate, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof candidate) return false;
    if (is_executable_file(candidate) && (size_t)n < cap) {
        memcpy(path, candidate, (size_t)n + 1);
        return true;
    }
    if (searched) sb_printf(searched, "%s%s", searched->len ? ", " : "", candidate);
    return false;
}

bool backend_find_ptxas(char *path, size_t cap, Strbuf *searched) {
    const char *env = getenv("TILE_PTXAS");
    if (env && *env && try_candidate(path, cap, env, NULL, searched)) return true;
    const char *cuda_home = getenv("CUDA_HOME");
    if (cuda_home && *cuda_home) {
        char bin[4096];
        snprintf(bin, sizeof bin, "%s/bin", cuda_home);
        if (try_candidate(path, cap, bin, "ptxas", searched)) return true;
    }
    if (try_candidate(path, cap, "/usr/local/cuda/bin", "ptxas", searched)) return true;
    const char *env_path = getenv("PATH");
    if (env_path) {
        char *copy = xstrdup(env_path), *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
            if (*dir && try_candidate(path, cap, dir, "ptxas", NULL)) {
                free(copy);
                return true;
            }
        }
        free(copy);
        if (searched) sb_printf(searched, "%s$PATH", searched->len ? ", " : "");
    }
    return false;
}

/* ---- running ptxas ------------------------------------------------------------------------ */

static const char *temp_dir(void) {
    const char *dir = getenv("TMPDIR");
    return dir && *dir ? dir : "/tmp";
}

/* Creates an empty temporary file named <tmp>/tile-XXXXXX<suffix>; returns its fd or -1. */
static int make_temp(char *path, size_t cap, const char *suffix, Strbuf *err) {
    snprintf(path, cap, "%s/tile-XXXXXX%s", temp_dir(), suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) sb_printf(err, "cannot create a temporary file %s: %s", path, strerror(errno));
    return fd;
}

static bool write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static void read_all(int fd, Strbuf *out) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        sb_putn(out, buf, (size_t)n);
    }
}

/* Runs argv[0] with argv; its stdout and stderr go to output. Returns the exit status, or -1
 * with err set when it could not be run or did not exit normally. */
static int run_program(char *const argv[], Strbuf *output, Strbuf *err) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        sb_printf(err, "cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (rc != 0) {
        close(pipe_fds[0]);
        sb_printf(err, "cannot run %s: %s", argv[0], strerror(rc));
        return -1;
    }
    read_all(pipe_fds[0], output);
    close(pipe_fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            sb_printf(err, "waiting for %s: %s", argv[0], strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    sb_printf(err, "%s was killed by signal %d", argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (output->len) sb_printf(err, ":\n%s", sb_str(output));
    return -1;
}

/* The threads ptxas's optimizations may use, as the option's text ("0": every core), from
 * $TILE_PTXAS_THREADS; false (the option left out) where it is unset or 1, and where it is not a
 * count in 0..1024, which is said on stderr (as TILE_EMIT_CONDS's malformed values are). */
static bool assembler_threads(char *text, size_t size) {
    const char *env = getenv("TILE_PTXAS_THREADS");
    long n = 1;
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (errno == 0 && *end == '\0' && v >= 0 && v <= 1024) n = v;
        else fprintf(stderr, "tile: TILE_PTXAS_THREADS='%s' ignored: expected a thread count 0..1024\n", env);
    }
    snprintf(text, size, "%ld", n);
    return n != 1;
}

static bool ptx_to_cubin_ptxas(const char *ptx, size_t len, BackendArch arch, Strbuf *cubin,
                               Strbuf *err) {
    char ptxas[4096];
    Strbuf searched = {0};
    if (!backend_find_ptxas(ptxas, sizeof ptxas, &searched)) {
        sb_printf(err, "ptxas not found (looked in %s)", sb_str(&searched));
        sb_free(&searched);
        return false;
    }
    sb_free(&searched);

    char in_path[4096], out_path[4096];
    int in_fd = make_temp(in_path, sizeof in_path, ".ptx", err);
    if (in_fd < 0) return false;
    int out_fd = make_temp(out_path, sizeof out_path, ".cubin", err);
    if (out_fd < 0) {
        close(in_fd);
        unlink(in_path);
        return false;
    }
    close(out_fd);
    bool ok = false;
    if (!write_all(in_fd, ptx, len)) {
        sb_printf(err, "cannot write %s: %s", in_path, strerror(errno));
        close(in_fd);
        goto done;
    }
    close(in_fd);

    char arch_option[32], threads[16];
    snprintf(arch_option, sizeof arch_option, "-arch=%s", backend_arch_name(arch));
    bool split = assembler_threads(threads, sizeof threads);
    char *argv[] = {ptxas, arch_option, "-O3", "-o", out_path, in_path, "--split-compile", threads, NULL};
    if (!split) argv[6] = NULL;
    Strbuf output = {0};
    int status = run_program(argv, &output, err);
    if (split && status > 0 && strstr(sb_str(&output), "split-compile")) { /* a ptxas before the option */
        argv[6] = NULL;
        sb_clear(&output);
        status = run_program(argv, &output, err);
    }
    if (status > 0) {
        sb_printf(err, "%s %s failed (exit status %d):\n%s", ptxas, arch_option, status,
                  sb_str(&output));
    } else if (status == 0) {
        int fd = open(out_path, O_RDONLY);
        if (fd < 0) {
            sb_printf(err, "ptxas wrote no %s: %s", out_path, strerror(errno));
        } else {
            size_t before = cubin->len;
            read_all(fd, cubin);
            close(fd);
            ok = cubin->len > before;
            if (!ok) sb_printf(err, "ptxas wrote an empty cubin:\n%s", sb_str(&output));
        }
    }
    sb_free(&output);
done:
    unlink(in_path);
    unlink(out_path);
    return ok;
}

/* ---- nvJitLink ---------------------------------------------------------------------------- */

/* The C ABI of nvJitLink (CUDA 12 and 13): results are an int-sized enum, 0 is success. */
typedef struct NvJitLink *NvJitLinkHandle;
enum { NVJITLINK_OK = 0, NVJITLINK_PTX_INPUT = 2 };

static struct {
    void *library;
    int (*create)(NvJitLinkHandle *handle, uint32_t noptions, const char **options);
    int (*destroy)(NvJitLinkHandle *handle);
    int (*add_data)(NvJitLinkHandle handle, int type, const void *data, size_t size,
                    const char *name);
    int (*complete)(NvJitLinkHandle handle);
    int (*cubin_size)(NvJitLinkHandle handle, size_t *size);
    int (*cubin)(NvJitLinkHandle handle, void *cubin);
    int (*error_log_size)(NvJitLinkHandle handle, size_t *size);
    int (*error_log)(NvJitLinkHandle handle, char *log);
} nvjitlink;
static pthread_once_t nvjitlink_once = PTHREAD_ONCE_INIT;

static void nvjitlink_load(void) {
    const char *names[] = {"libnvJitLink.so.13", "libnvJitLink.so.12",
                           "/usr/local/cuda/lib64/libnvJitLink.so.13",
                           "/usr/local/cuda/lib64/libnvJitLink.so.12"};
    void *library = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !library; i++)
        library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!library) return;
    bool ok = true;
    /* dlsym returns an object pointer; ISO C has no cast to a function pointer, so copy it. */
#define RESOLVE(field, name)                                                                 \
    do {                                                                                     \
        void *symbol_ = dlsym(library, name);                                                \
        if (!symbol_) ok = false;                                                            \
        memcpy(&nvjitlink.field, &symbol_, sizeof symbol_);                                  \
    } while (0)
    RESOLVE(create, "nvJitLinkCreate");
    RESOLVE(destroy, "nvJitLinkDestroy");
    RESOLVE(add_data, "nvJitLinkAddData");
    RESOLVE(complete, "nvJitLinkComplete");
    RESOLVE(cubin_size, "nvJitLinkGetLinkedCubinSize");
    RESOLVE(cubin, "nvJitLinkGetLinkedCubin");
    RESOLVE(error_log_size, "nvJitLinkGetErrorLogSize");
    RESOLVE(error_log, "nvJitLinkGetErrorLog");
#undef RESOLVE
    if (ok) {
        nvjitlink.library = library;
    } else {
        dlclose(library);
    }
}

bool backend_have_nvjitlink(void) {
    pthread_once(&nvjitlink_once, nvjitlink_load);
    return nvjitlink.library != NULL;
}

static void *nvjitlink_preload_main(void *unused) {
    (void)unused;
    backend_have_nvjitlink();
    return NULL;
}

static void nvjitlink_preload_start(void) {
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) != 0) return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    (void)pthread_create(&thread, &attr, nvjitlink_preload_main, NULL); /* failing, the compile loads it */
    pthread_attr_destroy(&attr);
}

void backend_nvjitlink_preload(void) {
    const char *preload = getenv("TILE_NVJITLINK_PRELOAD"); /* "0": load on first use (A/B) */
    if (preload && strcmp(preload, "0") == 0) return;
    static pthread_once_t preload_once = PTHREAD_ONCE_INIT;
    pthread_once(&preload_once, nvjitlink_preload_start);
}

static void nvjitlink_error_log(NvJitLinkHandle handle, Strbuf *err) {
    size_t size = 0;
    if (nvjitlink.error_log_size(handle, &size) != NVJITLINK_OK || size <= 1) return;
    char *log = xmalloc(size);
    if (nvjitlink.error_log(handle, log) == NVJITLINK_OK) {
        log[size - 1] = '\0';
        sb_printf(err, ":\n%s", log);
    }
    free(log);
}

static bool ptx_to_cubin_nvjitlink(const char *ptx, size_t len, BackendArch arch,
                                   Strbuf *cubin, Strbuf *err) {
    if (!backend_have_nvjitlink()) {
        sb_puts(err, "libnvJitLink.so.13 / .12 could not be loaded");
        return false;
    }
    char arch_option[32];
    snprintf(arch_option, sizeof arch_option, "-arch=%s", backend_arch_name(arch));
    char threads[16], split_option[32];
    bool split = assembler_threads(threads, sizeof threads);
    snprintf(split_option, sizeof split_option, "-split-compile=%s", threads);
    const char *options[] = {arch_option, "-O3", split_option};
    NvJitLinkHandle handle = NULL;
    int rc = nvjitlink.create(&handle, split ? 3 : 2, options);
    if (rc != NVJITLINK_OK && split) rc = nvjitlink.create(&handle, 2, options); /* an nvJitLink before it */
    if (rc != NVJITLINK_OK) {
        sb_printf(err, "nvJitLinkCreate(%s) failed with error %d", arch_option, rc);
        return false;
    }
    bool ok = false;
    const char *step = "nvJitLinkAddData";
    rc = nvjitlink.add_data(handle, NVJITLINK_PTX_INPUT, ptx, len, "tile.ptx");
    if (rc == NVJITLINK_OK) {
        step = "nvJitLinkComplete";
        rc = nvjitlink.complete(handle);
    }
    size_t size = 0;
    if (rc == NVJITLINK_OK) {
        step = "nvJitLinkGetLinkedCubinSize";
        rc = nvjitlink.cubin_size(handle, &size);
    }
    if (rc == NVJITLINK_OK) {
        char *data = xmalloc(size);
        step = "nvJitLinkGetLinkedCubin";
        rc = nvjitlink.cubin(handle, data);
        if (rc == NVJITLINK_OK) sb_putn(cubin, data, size);
        free(data);
        ok = rc == NVJITLINK_OK;
    }
    if (!ok) {
        sb_printf(err, "%s for %s failed with error %d", step, backend_arch_name(arch), rc);
        nvjitlink_error_log(handle, err);
    }
    nvjitlink.destroy(&handle);
    return ok;
}

/* Whether the PTX text (len bytes, not necessarily NUL-ended) contains word. */
static bool ptx_contains(const char *ptx, size_t len, const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++)
        if (ptx[i] == word[0] && memcmp(ptx + i, word, n) == 0) return true;
    return false;
}

/* Whether the PTX must be assembled as a whole program, by the ptxas program: it uses setmaxnreg
 * (nvJitLink ignores it, C7504), or it has wgmma together with an instruction that SASS implements
 * as a subroutine call (IEEE division, reciprocal and square root of f32 and f64, 64-bit integer
 * division and remainder, PTX calls): nvJitLink, compiling one unit of a link, then serializes
 * every wgmma of the function (C7509: each HGMMA waits for the previous one), where ptxas does
 * not. flash_fwd's final 1 / l (rcp.rn.f32) did that to its whole K loop. */
static bool needs_whole_program(const char *ptx, size_t len) {
    if (ptx_contains(ptx, len, "setmaxnreg")) return true;
    if (!ptx_contains(ptx, len, "wgmma.mma_async")) return false;
    static const char *const calls[] = {"rcp.rn.", "div.rn.", "sqrt.rn.", "div.s64", "div.u64",
                                        "rem.s64", "rem.u64", "\tcall", " call"};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (ptx_contains(ptx, len, calls[i])) return true;
    return false;
}

bool backend_ptx_to_cubin(const char *ptx, size_t len, BackendArch arch, CubinTool tool,
                          Strbuf *cubin, Strbuf *err) {
    switch (tool) {
    case CUBIN_TOOL_PTXAS: return ptx_to_cubin_ptxas(ptx, len, arch, cubin, err);
    case CUBIN_TOOL_NVJITLINK: return ptx_to_cubin_nvjitlink(ptx, len, arch, cubin, err);
    case CUBIN_TOOL_AUTO: {
        char path[4096];
        bool whole_program = needs_whole_program(ptx, len) &&
                             backend_find_ptxas(path, sizeof path, NULL);
        if (!whole_program && backend_have_nvjitlink()) return ptx_to_cubin_nvjitlink(ptx, len, arch, cubin, err);
        return ptx_to_cubin_ptxas(ptx, len, arch, cubin, err);
    }
    }
    tile_unreachable();
}
