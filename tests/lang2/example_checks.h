/*
 * example_checks.h: the kernels of examples/kernels/ (a top-k MoE router, a multi-block stable
 * counting sort, seeded dropout, layer-norm backward with a lock-guarded reduction) against C
 * references, for any device: tests/test_lang2_examples.c runs them on the VM and
 * tests/gpu/test_lang2_gpu.c on the GPU. Uses the helpers of checks.h.
 */
#ifndef TILE_TESTS_LANG2_EXAMPLE_CHECKS_H
#define TILE_TESTS_LANG2_EXAMPLE_CHECKS_H

#include "checks.h"

static tile_kernel *example_kernel(tile_context *ctx, const char *file, const char *name, const tile_constant *c,
                                   size_t nc) {
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/kernels/%s", source_dir(), file);
    tile_program *prog;
    cr_assert_eq(tile_program_from_file(ctx, path, &prog), TILE_OK, "%s", tile_context_message(ctx));
    tile_kernel *k = NULL;
    cr_assert_eq(tile_program_get_kernel(prog, name, c, nc, &k), TILE_OK, "%s: %s", name, tile_context_message(ctx));
    return k;
}

/* ---- MoE router ------------------------------------------------------------------------------------ */
static void check_moe_router(tile_context *ctx, int t, int e, int k) {
    float *logits = malloc(sizeof(float) * (size_t)(t * e)), *w = malloc(sizeof(float) * (size_t)(t * k));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(t * k)), *slots = malloc(sizeof(int32_t) * (size_t)(t * k));
    int32_t *counts = calloc((size_t)e, sizeof(int32_t));
    /* quarters: ties happen, and distinct logits stay distinct after exp */
    for (int i = 0; i < t * e; i++) logits[i] = (float)((int)(rnd32() % 24) - 12) * 0.25f;
    void *dl = dev_copy(ctx, logits, sizeof(float) * (size_t)(t * e)), *dw = dev_copy(ctx, NULL, sizeof(float) * (size_t)(t * k)),
         *di = dev_copy(ctx, NULL, sizeof(int32_t) * (size_t)(t * k)), *ds = dev_copy(ctx, NULL, sizeof(int32_t) * (size_t)(t * k)),
         *dc = dev_copy(ctx, NULL, sizeof(int32_t) * (size_t)e);
    tile_arg args[5] = {targ(TILE_F32, dl, 2, t, e, 0), targ(TILE_F32, dw, 2, t, k, 0), targ(TILE_I32, di, 2, t, k, 0),
                        targ(TILE_I32, ds, 2, t, k, 0), targ(TILE_I32, dc, 1, e, 0, 0)};
    tile_constant c[2] = {{.name = "E", .i = e}, {.name = "K", .i = k}};
    lang2_launch(ctx, example_kernel(ctx, "moe_router.tile", "moe_router", c, 2), args, 5);
    dev_back(ctx, w, dw, sizeof(float) * (size_t)(t * k));
    dev_back(ctx, ids, di, sizeof(int32_t) * (size_t)(t * k));
    dev_back(ctx, slots, ds, sizeof(int32_t) * (size_t)(t * k));
    dev_back(ctx, counts, dc, sizeof(int32_t) * (size_t)e);
    tile_free(ctx, dl);
    int *want_count = calloc((size_t)e, sizeof(int));
    char *seen = calloc((size_t)(e * t * k), 1);
    for (int r = 0; r < t; r++) {
        double x[64], m = -1e30, sum = 0;
        int perm[64];
        for (int j = 0; j < e; j++) x[j] = logits[r * e + j], m = x[j] > m ? x[j] : m;
        ref_order(x, e, 1, true, perm);
        for (int j = 0; j < k; j++) sum += exp(x[perm[j]] - m);
        for (int j = 0; j < k; j++) {
            cr_assert_eq(ids[r * k + j], perm[j], "token %d choice %d: expert %d, expected %d", r, j, ids[r * k + j], perm[j]);
            double want = exp(x[perm[j]] - m) / sum;
            cr_assert(fabs(w[r * k + j] - want) <= 1e-5, "token %d choice %d: weight %g, expected %g", r, j,
                      (double)w[r * k + j], want);
            int ex = perm[j], s = slots[r * k + j];
            want_count[ex]++;
            cr_assert(s >= 0 && s < t * k && !seen[ex * t * k + s], "token %d choice %d: slot %d of expert %d", r, j, s, ex);
            seen[ex * t * k + s] = 1;
        }
    }
    for (int j = 0; j < e; j++) {
        cr_assert_eq(counts[j], want_count[j], "expert %d: %d tokens, expected %d", j, counts[j], want_count[j]);
        for (int s = 0; s < want_count[j]; s++) cr_assert(seen[j * t * k + s], "expert %d: slot %d is missing", j, s);
    }
    free(logits);
    free(w);
    free(ids);
    free(slots);
    free(counts);
    free(want_count);
    free(seen);
}

/* ---- counting sort --------------------------------------------------------------------------------- */
static void check_counting_sort(tile_context *ctx, int n, int block) {
    enum { NB = 16 };
    int nblk = (n + block - 1) / block;
    int32_t *keys = malloc(sizeof(int32_t) * (size_t)n), *perm = malloc(sizeof(int32_t) * (size_t)n), totals[NB];
    for (int i = 0; i < n; i++) keys[i] = (int32_t)(rnd32() % (i % 5 == 0 ? 3 : NB)); /* skewed: some buckets large */
    size_t chain_bytes = sizeof(int32_t) * (size_t)(nblk * NB);
    void *dk = dev_copy(ctx, keys, sizeof(int32_t) * (size_t)n), *dt_ = dev_copy(ctx, NULL, 4),
         *dr = dev_copy(ctx, NULL, sizeof(int32_t) * (size_t)nblk), *dch = dev_copy(ctx, NULL, chain_bytes),
         *dbf = dev_copy(ctx, NULL, chain_bytes), *dtot = dev_copy(ctx, NULL, sizeof totals),
         *dp = dev_copy(ctx, NULL, sizeof(int32_t) * (size_t)n);
    tile_constant c = {.name = "BLOCK", .i = block};
    tile_arg a1[6] = {targ(TILE_I32, dk, 1, n, 0, 0), targ(TILE_I32, dt_, 1, 1, 0, 0), targ(TILE_I32, dr, 1, nblk, 0, 0),
                      targ(TILE_I32, dch, 2, nblk, NB, 0), targ(TILE_I32, dbf, 2, nblk, NB, 0), targ(TILE_I32, dtot, 1, NB, 0, 0)};
    lang2_launch(ctx, example_kernel(ctx, "counting_sort.tile", "count_blocks", &c, 1), a1, 6);
    tile_arg a2[4] = {targ(TILE_I32, dk, 1, n, 0, 0), targ(TILE_I32, dbf, 2, nblk, NB, 0), targ(TILE_I32, dtot, 1, NB, 0, 0),
                      targ(TILE_I32, dp, 1, n, 0, 0)};
    lang2_launch(ctx, example_kernel(ctx, "counting_sort.tile", "scatter", &c, 1), a2, 4);
    dev_back(ctx, perm, dp, sizeof(int32_t) * (size_t)n);
    dev_back(ctx, totals, dtot, sizeof totals);
    tile_free(ctx, dk);
    tile_free(ctx, dt_);
    tile_free(ctx, dr);
    tile_free(ctx, dch);
    tile_free(ctx, dbf);
    int count[NB] = {0}, start[NB], at[NB];
    for (int i = 0; i < n; i++) count[keys[i]]++;
    for (int b = 0, s = 0; b < NB; b++) start[b] = at[b] = s, s += count[b];
    for (int b = 0; b < NB; b++) cr_assert_eq(totals[b], count[b], "bucket %d: %d, expected %d", b, totals[b], count[b]);
    (void)start;
    for (int i = 0; i < n; i++) {
        int want = at[keys[i]]++;
        cr_assert_eq(perm[i], want, "n=%d: element %d (key %d) goes to %d, expected %d", n, i, keys[i], perm[i], want);
    }
    free(keys);
    free(perm);
}

/* ---- dropout ------------------------------------------------------------------------------------- */
static void check_dropout(tile_context *ctx, int n, float p, int64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) x[i] = (float)((int)(rnd32() % 2001) - 1000) / 100;
    void *dx = dev_copy(ctx, x, sizeof(float) * (size_t)n), *dy = dev_copy(ctx, NULL, sizeof(float) * (size_t)n);
    tile_arg args[4] = {targ(TILE_F32, dx, 1, n, 0, 0), targ(TILE_F32, dy, 1, n, 0, 0), {.kind = TILE_ARG_FLOAT, .f = p},
                        {.kind = TILE_ARG_INT, .i = seed}};
    lang2_launch(ctx, example_kernel(ctx, "dropout.tile", "dropout", NULL, 0), args, 4);
    dev_back(ctx, y, dy, sizeof(float) * (size_t)n);
    tile_free(ctx, dx);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        uint32_t ctr[4] = {(uint32_t)i, 0, 0, 0};
        ref_philox(ctr, (uint32_t)seed, (uint32_t)((uint64_t)seed >> 32));
        bool keep = ref_uniform(ctr[0]) > p;
        float want = keep ? x[i] / (1.0f - p) : 0.0f;
        kept += keep;
        cr_assert(y[i] == want, "dropout element %d: %g, expected %g", i, (double)y[i], (double)want);
    }
    double frac = (double)kept / n;
    cr_assert(fabs(frac - (1 - p)) < 0.05, "kept %.3f of the elements, expected about %.3f", frac, 1 - p);
    free(x);
    free(y);
}

/* ---- layer-norm backward --------------------------------------------------------------------------- */
static void check_layernorm_backward(tile_context *ctx, int m, int n) {
    enum { G = 16 };
    size_t mn = (size_t)(m * n);
    float *x = malloc(sizeof(float) * mn), *dy = malloc(sizeof(float) * mn), *dx = malloc(sizeof(float) * mn),
          *w = malloc(sizeof(float) * (size_t)n), *mean = malloc(sizeof(float) * (size_t)m), *rstd = malloc(sizeof(float) * (size_t)m),
          *dw = malloc(sizeof(float) * (size_t)n), *db = malloc(sizeof(float) * (size_t)n);
    for (size_t i = 0; i < mn; i++) x[i] = (float)((int)(rnd32() % 2001) - 1000) / 500, dy[i] = (float)((int)(rnd32() % 2001) - 1000) / 1000;
    for (int j = 0; j < n; j++) w[j] = 1 + (float)(rnd32() % 100) / 100;
    for (int r = 0; r < m; r++) {
        double s = 0, s2 = 0;
        for (int j = 0; j < n; j++) s += x[r * n + j];
        for (int j = 0; j < n; j++) s2 += (x[r * n + j] - s / n) * (x[r * n + j] - s / n);
        mean[r] = (float)(s / n);
        rstd[r] = (float)(1 / sqrt(s2 / n + 1e-5));
    }
    void *dxin = dev_copy(ctx, x, sizeof(float) * mn), *ddy = dev_copy(ctx, dy, sizeof(float) * mn),
         *dwt = dev_copy(ctx, w, sizeof(float) * (size_t)n), *dmean = dev_copy(ctx, mean, sizeof(float) * (size_t)m),
         *drstd = dev_copy(ctx, rstd, sizeof(float) * (size_t)m), *ddx = dev_copy(ctx, NULL, sizeof(float) * mn),
         *dlocks = dev_copy(ctx, NULL, sizeof(int32_t) * G), *dcounts = dev_copy(ctx, NULL, sizeof(int32_t) * G),
         *ddwp = dev_copy(ctx, NULL, sizeof(float) * G * (size_t)n), *ddbp = dev_copy(ctx, NULL, sizeof(float) * G * (size_t)n),
         *ddw = dev_copy(ctx, NULL, sizeof(float) * (size_t)n), *ddb = dev_copy(ctx, NULL, sizeof(float) * (size_t)n);
    tile_arg a1[10] = {targ(TILE_F32, dxin, 2, m, n, 0), targ(TILE_F32, ddy, 2, m, n, 0), targ(TILE_F32, dwt, 1, n, 0, 0),
                       targ(TILE_F32, dmean, 1, m, 0, 0), targ(TILE_F32, drstd, 1, m, 0, 0), targ(TILE_F32, ddx, 2, m, n, 0),
                       targ(TILE_I32, dlocks, 1, G, 0, 0), targ(TILE_I32, dcounts, 1, G, 0, 0),
                       targ(TILE_F32, ddwp, 2, G, n, 0), targ(TILE_F32, ddbp, 2, G, n, 0)};
    lang2_launch(ctx, example_kernel(ctx, "layernorm_backward.tile", "layernorm_bwd_dx", NULL, 0), a1, 10);
    tile_arg a2[4] = {targ(TILE_F32, ddwp, 2, G, n, 0), targ(TILE_F32, ddbp, 2, G, n, 0), targ(TILE_F32, ddw, 1, n, 0, 0),
                      targ(TILE_F32, ddb, 1, n, 0, 0)};
    lang2_launch(ctx, example_kernel(ctx, "layernorm_backward.tile", "layernorm_bwd_dwdb", NULL, 0), a2, 4);
    dev_back(ctx, dx, ddx, sizeof(float) * mn);
    dev_back(ctx, dw, ddw, sizeof(float) * (size_t)n);
    dev_back(ctx, db, ddb, sizeof(float) * (size_t)n);
    void *rest[] = {dxin, ddy, dwt, dmean, drstd, dlocks, dcounts, ddwp, ddbp};
    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++) tile_free(ctx, rest[i]);
    double *wdw = calloc((size_t)n, sizeof(double)), *wdb = calloc((size_t)n, sizeof(double));
    for (int r = 0; r < m; r++) {
        double c1 = 0, c2 = 0;
        for (int j = 0; j < n; j++) {
            double xh = ((double)x[r * n + j] - mean[r]) * rstd[r], wd = (double)w[j] * dy[r * n + j];
            c1 += xh * wd, c2 += wd;
            wdw[j] += dy[r * n + j] * xh, wdb[j] += dy[r * n + j];
        }
        c1 /= n, c2 /= n;
        for (int j = 0; j < n; j++) {
            double xh = ((double)x[r * n + j] - mean[r]) * rstd[r], wd = (double)w[j] * dy[r * n + j];
            double want = (wd - (xh * c1 + c2)) * rstd[r];
            cr_assert(fabs(dx[r * n + j] - want) <= 1e-4 * (1 + fabs(want)), "dx[%d, %d] = %g, expected %g", r, j,
                      (double)dx[r * n + j], want);
        }
    }
    for (int j = 0; j < n; j++) {
        cr_assert(fabs(dw[j] - wdw[j]) <= 1e-3 * (1 + fabs(wdw[j])), "dw[%d] = %g, expected %g", j, (double)dw[j], wdw[j]);
        cr_assert(fabs(db[j] - wdb[j]) <= 1e-3 * (1 + fabs(wdb[j])), "db[%d] = %g, expected %g", j, (double)db[j], wdb[j]);
    }
    free(x);
    free(dy);
    free(dx);
    free(w);
    free(mean);
    free(rstd);
    free(dw);
    free(db);
    free(wdw);
    free(wdb);
}

#endif
