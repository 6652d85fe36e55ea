/*
 * json_scan.h — a pre-scan of untrusted JSON text that bounds what parsing it
 * may cost, before jansson builds anything.
 *
 * jansson's cost is in the values it builds: a megabyte of "0," is half a
 * million integers, some fifty times the text in memory. Replies of the runner
 * have a fixed, shallow shape, so counting containers and values while the
 * bytes arrive refuses a hostile frame after its first bytes, and leaves
 * jansson only texts whose cost is a small multiple of their length (the
 * strings; a string costs jansson at most about four times its text).
 *
 * The scan does not validate: text that passes may still be bad JSON, and
 * jansson judges that. What it guarantees is that valid JSON which passes
 * has at most max_values values (object keys count as values) nested at
 * most max_depth containers deep.
 */
#ifndef SESH_POOL_JSON_SCAN_H
#define SESH_POOL_JSON_SCAN_H

#include <stddef.h>

typedef enum {
    SESH_SCAN_OK = 0,
    SESH_SCAN_TOO_DEEP,        /* a container inside max_depth containers */
    SESH_SCAN_TOO_MANY         /* value number max_values + 1 */
} sesh_scan_status;

typedef struct sesh_json_scan {
    unsigned max_depth;        /* 1: a flat object or array */
    size_t max_values;
    unsigned depth;
    size_t values;
    unsigned char in_string, escaped, in_word;
    sesh_scan_status status;   /* sticky: once past a bound, it stays there */
} sesh_json_scan;

void sesh_json_scan_init(sesh_json_scan *s, unsigned max_depth, size_t max_values);

/* Feeds the next n bytes of the text (any split of it, in order). */
sesh_scan_status sesh_json_scan_feed(sesh_json_scan *s, const char *p, size_t n);

#endif
