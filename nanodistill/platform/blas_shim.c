#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int64_t i64;
typedef void (*sgemm64_t)(int, int, int, i64, i64, i64, float, const float *, i64, const float *, i64,
                          float, float *, i64);
typedef void (*dgemm64_t)(int, int, int, i64, i64, i64, double, const double *, i64, const double *, i64,
                          double, double *, i64);
typedef void (*cgemm64_t)(int, int, int, i64, i64, i64, const void *, const void *, i64, const void *, i64,
                          const void *, void *, i64);
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                        float *, int);
typedef void (*dgemm_t)(int, int, int, int, int, int, double, const double *, int, const double *, int,
                        double, double *, int);
typedef void (*cgemm_t)(int, int, int, int, int, int, const void *, const void *, int, const void *, int,
                        const void *, void *, int);

static const char *fast_lib = @FAST_LIB@;
static const char *stock_lib = @STOCK_LIB@;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static sgemm64_t fast_s;
static dgemm64_t fast_d;
static cgemm64_t fast_c;
static sgemm_t stock_s;
static dgemm_t stock_d;
static cgemm_t stock_c;

static void *find(void *lib, const char *name) {
  char full[64];
  void *sym;
  snprintf(full, sizeof full, "scipy_%s64_", name);
  sym = dlsym(lib, full);
  if (sym) return sym;
  snprintf(full, sizeof full, "%s64_", name);
  return dlsym(lib, full);
}

static void resolve(void) {
  void *lib = dlopen(fast_lib, RTLD_NOW | RTLD_LOCAL);
  if (lib) {
    sgemm64_t s = (sgemm64_t)find(lib, "cblas_sgemm");
    dgemm64_t d = (dgemm64_t)find(lib, "cblas_dgemm");
    cgemm64_t c = (cgemm64_t)find(lib, "cblas_cgemm");
    if (s && d && c) {
      fast_s = s;
      fast_d = d;
      fast_c = c;
      return;
    }
  }
  lib = dlopen(stock_lib, RTLD_NOW | RTLD_LOCAL);
  if (lib) {
    stock_s = (sgemm_t)dlsym(lib, "cblas_sgemm");
    stock_d = (dgemm_t)dlsym(lib, "cblas_dgemm");
    stock_c = (cgemm_t)dlsym(lib, "cblas_cgemm");
  }
  if (!stock_s || !stock_d || !stock_c) {
    fprintf(stderr, "nanodistill blas shim: neither %s nor %s could be loaded\n", fast_lib, stock_lib);
    abort();
  }
}

int nanodistill_blas_fast(void) {
  pthread_once(&once, resolve);
  return fast_s != NULL;
}

void cblas_sgemm(int o, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
  if (nanodistill_blas_fast()) fast_s(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else stock_s(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_dgemm(int o, int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda,
                 const double *b, int ldb, double beta, double *c, int ldc) {
  if (nanodistill_blas_fast()) fast_d(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else stock_d(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_cgemm(int o, int ta, int tb, int m, int n, int k, const void *alpha, const void *a, int lda,
                 const void *b, int ldb, const void *beta, void *c, int ldc) {
  if (nanodistill_blas_fast()) fast_c(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else stock_c(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
