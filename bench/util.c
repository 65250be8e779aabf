/*
 * util.c: the pieces every benchmark program shares (bench.h): timing helpers and the rows of
 * the results file, printed as they are added and written as JSON at the end.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_die(const char *program, tile_context *ctx, const char *what, tile_status st) {
    fprintf(stderr, "%s: %s: %s\n%s\n", program, what, tile_status_name(st), tile_context_message(ctx));
    exit(1);
}

typedef struct Row {
    char name[128], metric[48], anchor_name[96], vs[24], config[128];
    double ours, anchor, ratio; /* anchor < 0: none */
} Row;

static Row rows[64];
static int nrows;

void bench_add_row(const char *name, const char *metric, double ours, double anchor, const char *anchor_name,
                   bool higher_is_better) {
    if (nrows == (int)(sizeof rows / sizeof rows[0])) return;
    Row *r = &rows[nrows++];
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    snprintf(r->anchor_name, sizeof r->anchor_name, "%s", anchor_name ? anchor_name : "");
    snprintf(r->vs, sizeof r->vs, "%s", anchor < 0 ? "" : higher_is_better ? "ours/anchor" : "anchor/ours");
    r->ours = ours;
    r->anchor = anchor;
    r->ratio = anchor < 0 ? -1 : higher_is_better ? ours / anchor : anchor / ours;
    printf("%-44s %-22s %12.4g", name, metric, ours);
    if (anchor >= 0) printf("   %-30s %12.4g   ratio %.3f", anchor_name, anchor, r->ratio);
    printf("\n");
}

void bench_row_config(const char *config) {
    if (nrows == 0) return;
    snprintf(rows[nrows - 1].config, sizeof rows[nrows - 1].config, "%s", config);
    printf("%-44s config: %s\n", "", config);
}

void bench_write_json(const char *path, const char *device, const char *command) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        return;
    }
    char date[32];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
    fprintf(f, "{\n  \"device\": \"%s\",\n  \"date\": \"%s\",\n  \"command\": \"%s\",\n  \"rows\": [\n", device, date, command);
    for (int i = 0; i < nrows; i++) {
        Row *r = &rows[i];
        fprintf(f, "    {\"case\": \"%s\", \"metric\": \"%s\", \"ours\": %.6g, ", r->name, r->metric, r->ours);
        if (r->config[0]) fprintf(f, "\"config\": \"%s\", ", r->config);
        if (r->anchor >= 0)
            fprintf(f, "\"anchor\": %.6g, \"anchor_name\": \"%s\", \"vs\": \"%s\", \"ratio\": %.4f}", r->anchor,
                    r->anchor_name, r->vs, r->ratio);
        else
            fprintf(f, "\"anchor\": null, \"anchor_name\": null, \"vs\": null, \"ratio\": null}");
        fprintf(f, "%s\n", i + 1 < nrows ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", path);
}
