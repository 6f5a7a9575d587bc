/*
 * DepthLens run-time plugin ABI, version 1.
 *
 * A shared library loaded with `depthlens ... --plugin libX.so` adds survival schedules
 * and metrics. Only C types cross this boundary: separately linked images do not share
 * Swift types. Swift plugins use DepthLensPluginKit, which fills these structs for you.
 *
 * A plugin exports, with C linkage:
 *   uint32_t depthlens_plugin_abi_version(void);            required; returns DEPTHLENS_PLUGIN_ABI_VERSION
 *   void     depthlens_plugin_init(void);                   optional; called once, first
 *   int32_t  depthlens_plugin_schedule_count(void);         optional (none when missing)
 *   const dl_schedule_v1 *depthlens_plugin_schedule(int32_t i);
 *   int32_t  depthlens_plugin_metric_count(void);           optional (none when missing)
 *   const dl_metric_v1 *depthlens_plugin_metric(int32_t i);
 *
 * Strings are UTF-8 and NUL-terminated. Strings and structs the plugin returns stay
 * owned by the plugin and must stay valid while it is loaded. A function that fails
 * returns non-zero (or NULL) and writes a message of at most error_size bytes,
 * NUL included, into error.
 */
#ifndef DEPTHLENS_PLUGIN_H
#define DEPTHLENS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define DEPTHLENS_PLUGIN_ABI_VERSION 1u

#ifdef __cplusplus
extern "C" {
#endif

/* A parameter a plugin declares. kind: "number", "integer", "boolean", "text",
   "numbers" or "path". default_value: NULL when the parameter is required. */
typedef struct {
    const char *name;
    const char *kind;
    const char *default_value;
    const char *help;
} dl_parameter;

/* What the host tells a schedule about one block. */
typedef struct {
    int32_t index;             /* 1...count within the list given (the net, or one stage) */
    int32_t stage;             /* 1-based stage number */
    int32_t in_channels;
    int32_t out_channels;
    int32_t stride;
    int32_t identity_shortcut; /* 1 when the shortcut is the identity */
} dl_block_info;

/* A survival schedule. `survival` fills out[0..count) with p_l in [0, 1]; the
   arguments are the user's key=value pairs with defaults filled in. `context` is
   passed back unchanged, so one function can serve several schedules. */
typedef struct {
    const char *name;
    const char *summary;
    int32_t parameter_count;
    const dl_parameter *parameters;
    const void *context;
    int32_t (*survival)(const void *context, const char *const *keys, const char *const *values, int32_t argument_count,
                        const dl_block_info *blocks, int32_t count, double *out,
                        char *error, size_t error_size);
} dl_schedule_v1;

/* A metric over streamed batches. scope: 0 = a function of one predictive
   distribution (member), 1 = a function of the members jointly (ensemble).
   `add` receives members x count x classes logits, row-major, and reference logits
   (count x classes) or NULL. `result` returns result i's name and value. `context`
   is passed back to `create` unchanged. */
typedef struct {
    const char *name;
    const char *summary;
    int32_t scope;
    int32_t parameter_count;
    const dl_parameter *parameters;
    const void *context;
    void *(*create)(const void *context, const char *const *keys, const char *const *values, int32_t argument_count,
                    int32_t classes, char *error, size_t error_size);
    int32_t (*add)(void *state, const float *member_logits, int32_t members, const int32_t *labels,
                   int32_t count, int32_t classes, const float *reference_logits,
                   char *error, size_t error_size);
    int32_t (*result_count)(void *state);
    int32_t (*result)(void *state, int32_t i, const char **name, double *value);
    void (*destroy)(void *state);
} dl_metric_v1;

#ifdef __cplusplus
}
#endif

#endif /* DEPTHLENS_PLUGIN_H */
