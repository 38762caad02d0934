/* Runs loglinear_mamba2 from C with the kernels of `loglinear emit --target object`: the forward program over
 * the first T0 tokens of every sequence, then one decode step per remaining token, starting from the state the
 * forward program leaves.
 *
 *   cc -O2 -DFORWARD_H='"<forward>.h"' -DDECODE_H='"<decode>.h"' mamba2.c <forward>.o <decode>.o -lm
 *   ./a.out B T H L T0 DIR
 *
 * With -DLOGLINEAR_THREADS -pthread the forward program runs on 3 threads (the header's _run_threads).
 *
 * DIR/<input>.f32 hold the inputs (q, k, v, g, lam: [B, T, H, ...], f32 little-endian); DIR/o.f32 gets o
 * [B, T, H, V]: tokens < T0 from the forward program, the others from the decode steps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include FORWARD_H
#include DECODE_H

#define FWD_N LOGLINEAR_MAMBA2_FORWARD_NUM_BUFFERS
#define DEC_N LOGLINEAR_MAMBA2_DECODE_STEP_NUM_BUFFERS

static float *read_f32(const char *dir, const char *name, int64_t n)
{
    char path[4096];
    float *x = malloc((size_t)n * sizeof(float));
    FILE *f;
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    f = fopen(path, "rb");
    if (!x || !f || fread(x, sizeof(float), (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %lld floats from %s\n", (long long)n, path);
        exit(1);
    }
    fclose(f);
    return x;
}

/* Tokens t0..t1 of every sequence of x [B, T, row] as one block [B, t1 - t0, row]: copied from x into part, or
 * from part into x when put is 1. */
static void tokens(float *x, float *part, int64_t B, int64_t T, int64_t row, int64_t t0, int64_t t1, int put)
{
    int64_t b, n = (t1 - t0) * row;
    for (b = 0; b < B; b++) {
        float *xs = x + (b * T + t0) * row, *ps = part + b * n;
        memcpy(put ? xs : ps, put ? ps : xs, (size_t)n * sizeof(float));
    }
}

int main(int argc, char **argv)
{
    int64_t B, T, H, L, T0, t, fs[LL_NUM_SIZES], all[LL_NUM_SIZES], ds[LL_NUM_SIZES];
    float *fb[FWD_N], *db[DEC_N], *in[FWD_N] = {0}, *o;
    const char *dir;
    int i, j;
    FILE *f;
    if (argc != 7) {
        fprintf(stderr, "usage: %s B T H L T0 DIR\n", argv[0]);
        return 2;
    }
    B = atoll(argv[1]), T = atoll(argv[2]), H = atoll(argv[3]), L = atoll(argv[4]), T0 = atoll(argv[5]);
    dir = argv[6];

    /* Forward over tokens 0..T0 (all the inputs' sizes: T tokens). */
    loglinear_mamba2_forward_sizes(fs, B, T0, H, L, 0);
    loglinear_mamba2_forward_sizes(all, B, T, H, L, 0);
    if (loglinear_mamba2_forward_alloc(fb, fs) != 0)
        return 1;
    for (i = 0; i < FWD_N; i++)
        if (strcmp(loglinear_mamba2_forward_buffer_kind(i), "input") == 0) {
            const char *name = loglinear_mamba2_forward_buffer_name(i);
            in[i] = read_f32(dir, name, loglinear_mamba2_forward_buffer_len(i, all));
            tokens(in[i], fb[i], B, T, loglinear_mamba2_forward_buffer_len(i, fs) / (B * T0), 0, T0, 0);
        }
#ifdef LOGLINEAR_THREADS
    if (loglinear_mamba2_forward_run_threads(fb, fs, 3) != 0)
        return 1;
#else
    if (loglinear_mamba2_forward_run(fb, fs) != 0)
        return 1;
#endif
    o = malloc((size_t)loglinear_mamba2_forward_buffer_len(LOGLINEAR_MAMBA2_FORWARD_OUTPUT, all) * sizeof(float));
    if (!o)
        return 1;
    tokens(o, fb[LOGLINEAR_MAMBA2_FORWARD_OUTPUT], B, T, H * fs[LL_V], 0, T0, 1);

    /* Decode steps for tokens T0..T, from the forward program's final state. */
    loglinear_mamba2_decode_step_sizes(ds, B, 1, H, L, T0);
    if (loglinear_mamba2_decode_step_alloc(db, ds) != 0)
        return 1;
    memcpy(db[LOGLINEAR_MAMBA2_DECODE_STEP_STATE], fb[LOGLINEAR_MAMBA2_FORWARD_STATE],
           (size_t)loglinear_mamba2_forward_buffer_len(LOGLINEAR_MAMBA2_FORWARD_STATE, fs) * sizeof(float));
    for (t = T0; t < T; t++) {
        loglinear_mamba2_decode_step_sizes(ds, B, 1, H, L, t);
        for (j = 0; j < DEC_N; j++) {
            const char *kind = loglinear_mamba2_decode_step_buffer_kind(j);
            int64_t n = loglinear_mamba2_decode_step_buffer_len(j, ds);
            if (strcmp(kind, "input") == 0) {
                const char *name = loglinear_mamba2_decode_step_buffer_name(j);
                for (i = 0; i < FWD_N; i++)
                    if (in[i] && strcmp(loglinear_mamba2_forward_buffer_name(i), name) == 0)
                        tokens(in[i], db[j], B, T, n / B, t, t + 1, 0);
            } else if (strcmp(kind, "state") != 0 && loglinear_mamba2_decode_step_must_zero(j)) {
                memset(db[j], 0, (size_t)n * sizeof(float));
            }
        }
        if (loglinear_mamba2_decode_step_run(db, ds) != 0)
            return 1;
        tokens(o, db[LOGLINEAR_MAMBA2_DECODE_STEP_OUTPUT], B, T, H * ds[LL_V], t, t + 1, 1);
    }

    {
        char path[4096];
        size_t n = (size_t)loglinear_mamba2_forward_buffer_len(LOGLINEAR_MAMBA2_FORWARD_OUTPUT, all);
        snprintf(path, sizeof path, "%s/o.f32", dir);
        f = fopen(path, "wb");
        if (!f || fwrite(o, sizeof(float), n, f) != n || fclose(f) != 0)
            return 1;
    }
    loglinear_mamba2_forward_free(fb);
    loglinear_mamba2_decode_step_free(db);
    for (i = 0; i < FWD_N; i++)
        free(in[i]);
    free(o);
    return 0;
}
