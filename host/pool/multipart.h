/*
 * multipart.h — a streaming multipart/form-data parser (RFC 7578, RFC 2046),
 * for upload bodies that may come from anyone.
 *
 * The body is fed in pieces as they arrive (any split, down to single
 * bytes); the parser calls back for each part: BEGIN once its headers are
 * in (field name, decoded file name, content type), DATA for each piece of
 * its content (with the offset of the piece in the part), END when the
 * boundary after it is seen. A part's content is never buffered: what was
 * fed is handed on before feed returns, in one call per run between
 * boundary lines of the piece (line ends cost no call of their own), except
 * the bytes at the end of a piece that may be the start of a boundary line
 * (at most its CRLF, "--", boundary, 64 bytes of padding and a CR).
 *
 * Bounded: the boundary (SESH_MULTIPART_MAX_BOUNDARY), a part's header block
 * (SESH_MULTIPART_MAX_HEADER), the number of parts (SESH_MULTIPART_MAX_PARTS)
 * and the preamble (SESH_MULTIPART_MAX_PREAMBLE). The size of a part's
 * content is the caller's to bound (it sees every piece).
 *
 * Strict where it matters: a part without Content-Disposition: form-data
 * and a name, two Content-Disposition headers, a NUL in headers or in a
 * decoded file name, an encoded transfer (base64, quoted-printable), a body
 * that ends inside a part or without the closing boundary: each is an error
 * with a message that says what was wrong and where.
 * Lenient where clients differ: CRLF or a bare LF as line end; a preamble
 * before the first boundary and whitespace after a boundary; quoted or bare
 * parameter values, with `\"` and `\\` escapes in quoted ones (other
 * backslashes are kept: browsers send them raw); `filename="in%202.csv"`
 * percent-decoded (RFC 7578 section 4.2; aiohttp encodes, requests and httpx
 * do not, and "%" not followed by two hex digits is kept as is); and
 * `filename*=UTF-8''in%202.csv` (RFC 5987; also ISO-8859-1), which wins over
 * `filename=`. Header folding is unfolded; unknown headers are ignored.
 *
 * A boundary look-alike in the content (a line starting with "--boundary"
 * but followed by anything else than "--", spaces or the line end) is
 * content, as RFC 2046 reads it.
 *
 * The decoded file name is bytes: the caller checks it (UTF-8, "..", "/",
 * control characters: files.c) like any other name; only a NUL, which a C
 * string cannot carry, is refused here.
 *
 * No allocation after sesh_multipart_new but the header buffers' growth
 * (the raw block, at most SESH_MULTIPART_MAX_HEADER, and four times its size
 * for decoded values). Not thread safe: one body, one thread at a time.
 */
#ifndef SESH_POOL_MULTIPART_H
#define SESH_POOL_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define SESH_MULTIPART_MAX_BOUNDARY 200     /* RFC 2046 says 70; some clients go beyond */
#define SESH_MULTIPART_MAX_HEADER   16384   /* one part's header block */
#define SESH_MULTIPART_MAX_PARTS    100
#define SESH_MULTIPART_MAX_PREAMBLE 65536
#define SESH_MULTIPART_SNIFF_MAX    4096    /* see sesh_multipart_sniff */

typedef struct sesh_multipart sesh_multipart;

typedef struct sesh_multipart_part {
    unsigned index;             /* 0 for the body's first part */
    const char *name;           /* the field's name (never NULL) */
    const char *filename;       /* the decoded file name; NULL when the part gives none */
    const char *content_type;   /* as sent, trimmed; NULL when absent */
} sesh_multipart_part;

typedef enum {
    SESH_MULTIPART_BEGIN,       /* headers in; data NULL, size 0 */
    SESH_MULTIPART_DATA,        /* a piece of content: size > 0, off its offset in the part */
    SESH_MULTIPART_END          /* the part is whole; off its size */
} sesh_multipart_event;

/* Return 0 to go on; anything else stops the parser (SESH_MULTIPART_STOPPED
 * from then on). part and its strings live until the part's END. */
typedef int (*sesh_multipart_fn)(void *ctx, sesh_multipart_event ev, const sesh_multipart_part *part,
                                 const char *data, uint64_t off, size_t size);

typedef enum {
    SESH_MULTIPART_OK = 0,
    SESH_MULTIPART_MALFORMED,   /* the body is not what it should be: sesh_multipart_error says why */
    SESH_MULTIPART_STOPPED      /* the callback asked to stop */
} sesh_multipart_status;

/* A parser for a body whose boundary is `boundary` (without the leading
 * "--"). NULL when the boundary is empty, longer than
 * SESH_MULTIPART_MAX_BOUNDARY or holds a CR, LF or NUL, with the reason in
 * *why (a static string). */
sesh_multipart *sesh_multipart_new(const char *boundary, sesh_multipart_fn fn, void *ctx,
                                   const char **why);
void sesh_multipart_free(sesh_multipart *mp);     /* NULL is fine */

/* Feeds the next piece of the body. Once an error or a stop happened, every
 * later call returns it again and calls nothing back. */
sesh_multipart_status sesh_multipart_feed(sesh_multipart *mp, const char *data, size_t size);

/* The body has ended: OK when it was whole (its closing boundary seen),
 * else MALFORMED (ended in a part, in headers, before any boundary). */
sesh_multipart_status sesh_multipart_finish(sesh_multipart *mp);

/* What went wrong, for a client to read (names the part); "" when nothing did. */
const char *sesh_multipart_error(const sesh_multipart *mp);

/* The boundary parameter of a Content-Type header value (any media type),
 * unquoted, into out (NUL-terminated). 1 when found and usable, 0 when the
 * value has none, -1 when it has one that is unusable (empty, too long for
 * out or SESH_MULTIPART_MAX_BOUNDARY, a CR or LF, badly quoted). */
int sesh_multipart_boundary(const char *content_type, char *out, size_t cap);

/* Whether the first bytes of a body sent under another media type are a
 * multipart/form-data body: a boundary line ("--" and a boundary of RFC
 * 2046's characters at the very start, then CRLF or LF) followed by a
 * header block with Content-Disposition: form-data. YES writes the boundary
 * into out (cap > SESH_MULTIPART_MAX_BOUNDARY); MORE: the bytes so far could
 * be the start of one, give more (at most SESH_MULTIPART_SNIFF_MAX: past
 * it, the answer is NO); NO: it is not one. `complete`: these are all the
 * body's bytes (then never MORE). */
typedef enum { SESH_SNIFF_NO = 0, SESH_SNIFF_YES, SESH_SNIFF_MORE } sesh_sniff;
sesh_sniff sesh_multipart_sniff(const char *data, size_t size, int complete, char *out, size_t cap);

#endif
