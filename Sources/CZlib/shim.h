// zlib from Debian's zlib1g-dev: gzopen/gzread read gzipped and plain files alike.
#ifndef DEPTHLENS_CZLIB_SHIM_H
#define DEPTHLENS_CZLIB_SHIM_H
#include <zlib.h>
#endif
