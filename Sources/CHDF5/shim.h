// What Swift cannot import from hdf5.h: the type and property-list identifiers are
// function-calling macros (H5T_NATIVE_FLOAT expands to H5open() plus a global), and
// H5P_DEFAULT / H5S_ALL import with the wrong integer type. Inline getters fix both.
#ifndef DEPTHLENS_CHDF5_SHIM_H
#define DEPTHLENS_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t dl_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t dl_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t dl_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline hid_t dl_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t dl_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t dl_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t dl_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t dl_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t dl_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline unsigned dl_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned dl_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline size_t dl_H5T_VARIABLE(void) { return H5T_VARIABLE; }

#endif
