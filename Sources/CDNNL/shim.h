// oneDNN (Debian's libdnnl-dev, 2.x C API), plus the OpenMP thread-count call: Debian
// builds oneDNN on OpenMP, and libgomp's development link is not on the default search
// path, so the symbol is looked up at run time from the copy oneDNN already loaded.
#ifndef DEPTHLENS_CDNNL_SHIM_H
#define DEPTHLENS_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>

/// Sets the OpenMP thread count of the calling thread's future parallel regions;
/// returns 0 when no OpenMP runtime is loaded.
static inline int depthlens_omp_set_num_threads(int count) {
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!set) return 0;
    set(count);
    return 1;
}

/// DNNL_MEMORY_ALLOCATE, a cast macro Swift cannot import: asks oneDNN to own the buffer.
static inline void *depthlens_dnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }

#endif
