/* fp32 peak of this machine: independent FMA chains on the widest vectors the compiler
 * targets (-march=native), one OpenMP thread per requested thread. Prints GFLOP/s. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec;
#define LANES 16
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SET1 _mm512_set1_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
#include <immintrin.h>
typedef __m256 vec;
#define LANES 8
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SET1 _mm256_set1_ps
static float SUM(__m256 v) { float t[8]; _mm256_storeu_ps(t, v); float s = 0; for (int i = 0; i < 8; i++) s += t[i]; return s; }
#endif

#define CHAINS 12

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long iterations = argc > 2 ? atol(argv[2]) : 200000000L;
    double best = 0;
    for (int trial = 0; trial < 3; trial++) {
        double start = omp_get_wtime();
        float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            vec acc[CHAINS];
            for (int c = 0; c < CHAINS; c++) acc[c] = SET1(1.0f + c * 1e-3f);
            vec a = SET1(0.999999f), b = SET1(1e-7f);
            for (long i = 0; i < iterations / threads; i++) {
                for (int c = 0; c < CHAINS; c++) acc[c] = FMA(acc[c], a, b);
            }
            for (int c = 0; c < CHAINS; c++) total += SUM(acc[c]);
        }
        double seconds = omp_get_wtime() - start;
        double gflops = 2.0 * LANES * CHAINS * (double)(iterations / threads) * threads / seconds / 1e9;
        if (gflops > best) best = gflops;
        if (total == 12345.0f) printf("!");  /* keep the result alive */
    }
    printf("%.1f\n", best);
    return 0;
}
