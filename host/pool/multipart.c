/*
 * multipart.c — see multipart.h.
 *
 * The body is scanned as content (a part's, or the preamble's) until a line
 * end; from there the bytes that may be a boundary line are held, one state
 * per byte, until they either are one (the part ends) or are not (they are
 * content after all, and scanning goes on from the byte that told).
 * Content is handed on in runs: within one piece of the body, everything
 * between two boundary lines goes out in one call, held bytes included when
 * they turn out to be content; so a body of blank lines costs no more calls
 * (and no more writes) than any other. Only the held bytes at the end of a
 * piece are copied, to meet the next one.
 */
#include "pool/multipart.h"
#include "pool/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PADDING 64      /* spaces or tabs after a boundary (RFC 2046's transport padding) */
#define HOLD_MAX (2 + 2 + SESH_MULTIPART_MAX_BOUNDARY + MAX_PADDING + 1)

typedef enum {
    S_CONTENT,      /* a part's content, or the preamble (in_part says which) */
    S_CR,           /* content ended with a CR: a LF would end the line */
    S_DASHES,       /* at a line start: "--boundary" matched `matched` bytes so far */
    S_AFTER,        /* "--boundary" matched: "--", padding or the line end must follow */
    S_CLOSE,        /* "--boundary-": one more '-' closes the body */
    S_PAD,          /* spaces or tabs after the boundary */
    S_PAD_CR,       /* a CR after the boundary: LF must follow */
    S_HEADERS,      /* a part's header block */
    S_EPILOGUE      /* after the closing boundary: ignored */
} state;

/* The states in which bytes are held: they may be a boundary line. */
static int holding(state st)
{
    return st != S_CONTENT && st != S_HEADERS && st != S_EPILOGUE;
}

struct sesh_multipart {
    sesh_multipart_fn fn;
    void *ctx;
    char delim[2 + SESH_MULTIPART_MAX_BOUNDARY + 1];   /* "--" boundary */
    size_t dlen;
    state st;
    int in_part;            /* content belongs to a part (else to the preamble) */
    int seen_boundary;
    int closed;
    size_t matched, pad;
    /* Within the piece being fed: where pending content starts, and where
     * the held bytes start (NULL: none in this piece). */
    const char *run, *held_at;
    char hold[HOLD_MAX];    /* held bytes that came in earlier pieces */
    size_t nprev;
    uint64_t preamble;
    /* the part being read */
    sesh_multipart_part part;
    uint64_t off;
    unsigned nparts;
    char *head;             /* its header block, lines joined by '\n' */
    size_t nhead, head_cap, line_start;
    char *vals;             /* decoded name, file name, content type */
    size_t vals_cap;
    sesh_multipart_status status;
    char err[384];
    char shown[2][68];      /* a client's bytes as messages show them */
};

/* Up to 64 bytes of p[0..n) (or to a NUL) as printable ASCII, '?' for the
 * rest: messages go to clients and logs, and must say nothing else. */
static const char *show(sesh_multipart *mp, int slot, const char *p, size_t n)
{
    char *out = mp->shown[slot];
    size_t i = 0;
    for (; i < n && i < 64 && p[i]; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    if (i == 64 && i < n && p[i]) memcpy(out + 61, "...", 3);
    out[i] = '\0';
    return out;
}

static sesh_multipart_status fail(sesh_multipart *mp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static sesh_multipart_status fail(sesh_multipart *mp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mp->err, sizeof mp->err, fmt, ap);
    va_end(ap);
    mp->status = SESH_MULTIPART_MALFORMED;
    return mp->status;
}

static void call(sesh_multipart *mp, sesh_multipart_event ev, const char *data, size_t size)
{
    if (mp->status == SESH_MULTIPART_OK && mp->fn(mp->ctx, ev, &mp->part, data, mp->off, size) != 0)
        mp->status = SESH_MULTIPART_STOPPED;
}

/* ---- content and boundary lines ---- */

static void content(sesh_multipart *mp, const char *p, size_t n)
{
    if (n == 0) return;
    if (mp->in_part) {
        call(mp, SESH_MULTIPART_DATA, p, n);
        mp->off += n;
        return;
    }
    mp->preamble += n;
    if (!mp->seen_boundary && mp->preamble > SESH_MULTIPART_MAX_PREAMBLE)
        fail(mp, "no boundary line '%s' in the body's first %d bytes: it is not the "
             "multipart body its Content-Type announces", show(mp, 0, mp->delim, mp->dlen),
             SESH_MULTIPART_MAX_PREAMBLE);
}

/* The held bytes were no boundary line after all: content, and scanning
 * goes on from the byte that told (not consumed). */
static void not_a_boundary(sesh_multipart *mp)
{
    if (mp->nprev) {                    /* held since an earlier piece: out now */
        content(mp, mp->hold, mp->nprev);
        mp->nprev = 0;
    }
    if (!mp->run) mp->run = mp->held_at;
    mp->held_at = NULL;
    mp->st = S_CONTENT;
}

/* A boundary line is whole: the content before it goes out, the part (if
 * any) ends, then either the body is closed or a new part's headers follow. */
static void boundary_line(sesh_multipart *mp, int closing)
{
    if (mp->run) content(mp, mp->run, (size_t)(mp->held_at - mp->run));
    mp->run = mp->held_at = NULL;
    mp->nprev = 0;
    if (mp->in_part) {
        call(mp, SESH_MULTIPART_END, NULL, 0);
        mp->in_part = 0;
    }
    mp->seen_boundary = 1;
    if (closing) {
        mp->closed = 1;
        mp->st = S_EPILOGUE;
        return;
    }
    if (mp->nparts == SESH_MULTIPART_MAX_PARTS) {
        fail(mp, "the body has more than %d parts", SESH_MULTIPART_MAX_PARTS);
        return;
    }
    mp->part = (sesh_multipart_part){ .index = mp->nparts++, .name = "" };
    mp->off = 0;
    mp->nhead = mp->line_start = 0;
    mp->st = S_HEADERS;
}

static const char *scan_content(sesh_multipart *mp, const char *p, const char *end)
{
    if (!mp->run) mp->run = p;
    /* Only a line end followed by "--" starts a boundary line (at the
     * piece's end, "\n-", a line end or a CR may be the start of one).
     * Dashes are rarer than line ends in most files: look for them. */
    const char *nl = NULL;
    for (const char *q = p; (q = memchr(q, '-', (size_t)(end - q))) != NULL; q++)
        if (q > p && q[-1] == '\n' && (q + 1 == end || q[1] == '-')) {
            nl = q - 1;
            break;
        }
    if (!nl) {
        if (end[-1] != '\n') {
            if (end[-1] == '\r') {
                mp->held_at = end - 1;
                mp->st = S_CR;
            }
            return end;
        }
        nl = end - 1;
    }
    mp->held_at = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
    mp->matched = 0;
    mp->st = S_DASHES;
    return nl + 1;
}

/* One byte of a possible boundary line; returns how many bytes it took (0:
 * the byte starts content again). */
static size_t boundary_byte(sesh_multipart *mp, char c)
{
    switch (mp->st) {
    case S_CR:
        if (c != '\n') break;
        mp->matched = 0;
        mp->st = S_DASHES;
        return 1;
    case S_DASHES:
        if (c != mp->delim[mp->matched]) break;
        if (++mp->matched == mp->dlen) mp->st = S_AFTER;
        return 1;
    case S_AFTER:
        if (c == '-') { mp->st = S_CLOSE; return 1; }
        if (c == ' ' || c == '\t') { mp->pad = 1; mp->st = S_PAD; return 1; }
        if (c == '\r') { mp->st = S_PAD_CR; return 1; }
        if (c == '\n') { boundary_line(mp, 0); return 1; }
        break;
    case S_CLOSE:
        if (c != '-') break;
        boundary_line(mp, 1);
        return 1;
    case S_PAD:
        if ((c == ' ' || c == '\t') && mp->pad < MAX_PADDING) { mp->pad++; return 1; }
        if (c == '\r') { mp->st = S_PAD_CR; return 1; }
        if (c == '\n') { boundary_line(mp, 0); return 1; }
        break;
    case S_PAD_CR:
        if (c != '\n') break;
        boundary_line(mp, 0);
        return 1;
    default:
        break;
    }
    not_a_boundary(mp);
    return 0;
}

/* The piece is all read: pending content goes out, held bytes are kept
 * (copied: the piece is the caller's) for the next one. */
static void piece_end(sesh_multipart *mp, const char *end)
{
    if (mp->st == S_CONTENT && mp->run) {
        content(mp, mp->run, (size_t)(end - mp->run));
    } else if (holding(mp->st) && mp->held_at) {
        if (mp->run) content(mp, mp->run, (size_t)(mp->held_at - mp->run));
        size_t n = (size_t)(end - mp->held_at);
        memcpy(mp->hold + mp->nprev, mp->held_at, n);    /* the states keep it within HOLD_MAX */
        mp->nprev += n;
    }
    mp->run = mp->held_at = NULL;
}

/* ---- a part's headers ---- */

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
    int quoted;
} param;

/* The next `; name=value` of a header value at *pp. 1 with *prm filled, 0 at
 * the end, -1 when it is not one. A quoted value may hold `\"` and `\\`; a
 * bare one runs to the next ';' (trailing spaces dropped). */
static int next_param(const char **pp, const char *end, param *prm)
{
    const char *p = skip_space(*pp, end);
    for (;;) {
        if (p == end) return 0;
        if (*p != ';') return -1;
        p = skip_space(p + 1, end);
        if (p < end && *p != ';') break;        /* empty parameters (";;", a last ';') are skipped */
    }
    const char *name = p;
    while (p < end && *p != '=' && *p != ';' && *p != ' ' && *p != '\t') p++;
    prm->name = name;
    prm->name_len = (size_t)(p - name);
    p = skip_space(p, end);
    if (p == end || *p != '=' || prm->name_len == 0) return -1;
    p = skip_space(p + 1, end);
    if (p < end && *p == '"') {
        const char *v = ++p;
        while (p < end && *p != '"')
            p += (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\')) ? 2 : 1;
        if (p == end) return -1;
        prm->value = v;
        prm->value_len = (size_t)(p - v);
        prm->quoted = 1;
        p++;
    } else {
        const char *v = p;
        while (p < end && *p != ';') p++;
        const char *e = p;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
        prm->value = v;
        prm->value_len = (size_t)(e - v);
        prm->quoted = 0;
    }
    *pp = p;
    return 1;
}

static int param_is(const param *prm, const char *name)
{
    size_t n = strlen(name);
    return prm->name_len == n && strncasecmp(prm->name, name, n) == 0;
}

/* The value, unquoted, into out (room for value_len + 1); its length. */
static size_t unquote(const param *prm, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < prm->value_len; i++) {
        char c = prm->value[i];
        if (prm->quoted && c == '\\' && i + 1 < prm->value_len &&
            (prm->value[i + 1] == '"' || prm->value[i + 1] == '\\'))
            c = prm->value[++i];
        out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

/* Where decoded values go: `need` bytes of vals, which holds room for
 * twice the header block (ISO-8859-1 to UTF-8 doubles at most). */
static char *take_vals(sesh_multipart *mp, size_t *used, size_t need)
{
    char *p = mp->vals + *used;
    *used += need;
    return p;
}

/* RFC 5987: charset'language'percent-encoded, into out (room for twice the
 * value, plus one). 0, or -1 with the reason in *why. */
static int decode_ext_value(const char *v, size_t n, char *out, const char **why)
{
    const char *q1 = memchr(v, '\'', n);
    const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v)) : NULL;
    if (!q2) {
        *why = "is not charset'language'value (RFC 5987)";
        return -1;
    }
    size_t clen = (size_t)(q1 - v);
    int latin1;
    if ((clen == 5 && strncasecmp(v, "UTF-8", 5) == 0) || (clen == 4 && strncasecmp(v, "UTF8", 4) == 0))
        latin1 = 0;
    else if (clen == 10 && strncasecmp(v, "ISO-8859-1", 10) == 0)
        latin1 = 1;
    else {
        *why = "names a charset other than UTF-8 or ISO-8859-1";
        return -1;
    }
    size_t len = n - (size_t)(q2 + 1 - v);
    memcpy(out, q2 + 1, len);
    out[len] = '\0';
    if (sesh_percent_decode_text(out, 0) != 0) {
        *why = "holds a NUL (%00)";
        return -1;
    }
    if (latin1) {                   /* each byte is its code point: to UTF-8, from the end */
        size_t m = strlen(out), wide = 0;
        for (size_t i = 0; i < m; i++) wide += (unsigned char)out[i] >= 0x80;
        out[m + wide] = '\0';
        for (size_t i = m, j = m + wide; i > 0;) {
            unsigned char c = (unsigned char)out[--i];
            if (c < 0x80) {
                out[--j] = (char)c;
            } else {
                out[--j] = (char)(0x80 | (c & 0x3f));
                out[--j] = (char)(0xc0 | (c >> 6));
            }
        }
    }
    return 0;
}

static int parse_disposition(sesh_multipart *mp, const char *v, const char *end, size_t *used)
{
    unsigned n = mp->part.index + 1;
    const char *p = skip_space(v, end), *type = p;
    while (p < end && *p != ';' && *p != ' ' && *p != '\t') p++;
    if (p - type != 9 || strncasecmp(type, "form-data", 9) != 0)
        return fail(mp, "part %u is Content-Disposition '%s', not form-data", n,
                    show(mp, 0, type, (size_t)(p - type))), -1;
    const char *name = NULL, *filename = NULL, *ext = NULL;
    param prm;
    int rc;
    while ((rc = next_param(&p, end, &prm)) > 0) {
        const char **slot = param_is(&prm, "name") ? &name : param_is(&prm, "filename") ? &filename
                          : param_is(&prm, "filename*") ? &ext : NULL;
        if (!slot) continue;
        if (*slot)
            return fail(mp, "part %u gives its %.*s twice", n, (int)prm.name_len, prm.name), -1;
        char *out = take_vals(mp, used, prm.value_len * 2 + 1);
        size_t len = unquote(&prm, out);
        if (slot == &ext) {
            const char *why = NULL;
            char *decoded = take_vals(mp, used, len * 2 + 1);
            if (decode_ext_value(out, len, decoded, &why) != 0)
                return fail(mp, "part %u's filename* %s", n, why), -1;
            out = decoded;
        } else if (slot == &filename && sesh_percent_decode_text(out, 0) != 0) {
            return fail(mp, "part %u's filename holds a NUL (%%00)", n), -1;
        }
        *slot = out;
    }
    if (rc < 0)
        return fail(mp, "part %u's Content-Disposition is malformed near '%s'", n,
                    show(mp, 0, p, (size_t)(end - p))), -1;
    if (!name)
        return fail(mp, "part %u's Content-Disposition has no name", n), -1;
    mp->part.name = name;
    mp->part.filename = ext ? ext : filename;       /* RFC 6266: filename* wins */
    return 0;
}

static int is_header(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n == k && strncasecmp(line, name, k) == 0;
}

/* The header block is whole: what the part is. 0, or -1 (failed). */
static int parse_headers(sesh_multipart *mp)
{
    unsigned n = mp->part.index + 1;
    char *h = mp->head, *end = h + mp->nhead;
    for (char *q = h; q < end; q++)                  /* obsolete line folding: one line */
        if (*q == '\n' && q + 1 < end && (q[1] == ' ' || q[1] == '\t'))
            *q = ' ';
    size_t need = mp->nhead * 4 + 16;
    if (need > mp->vals_cap) {
        mp->vals = sesh_xrealloc(mp->vals, need);
        mp->vals_cap = need;
    }
    size_t used = 0;
    int disposition = 0, type = 0;
    for (char *line = h; line < end;) {
        char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon)
            return fail(mp, "part %u has a header line without ':' ('%s')", n,
                        show(mp, 0, line, (size_t)(eol - line))), -1;
        char *name_end = colon;
        while (name_end > line && (name_end[-1] == ' ' || name_end[-1] == '\t')) name_end--;
        const char *v = skip_space(colon + 1, eol), *vend = eol;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
        size_t nlen = (size_t)(name_end - line);
        if (is_header(line, nlen, "content-disposition")) {
            if (disposition++)
                return fail(mp, "part %u has two Content-Disposition headers", n), -1;
            if (parse_disposition(mp, v, vend, &used) != 0) return -1;
        } else if (is_header(line, nlen, "content-type")) {
            if (type++)
                return fail(mp, "part %u has two Content-Type headers", n), -1;
            char *out = take_vals(mp, &used, (size_t)(vend - v) + 1);
            memcpy(out, v, (size_t)(vend - v));
            out[vend - v] = '\0';
            mp->part.content_type = out;
        } else if (is_header(line, nlen, "content-transfer-encoding")) {
            size_t k = (size_t)(vend - v);
            if (!((k == 6 && strncasecmp(v, "binary", 6) == 0) || (k == 4 && strncasecmp(v, "8bit", 4) == 0) ||
                  (k == 4 && strncasecmp(v, "7bit", 4) == 0)))
                return fail(mp, "part %u is sent with Content-Transfer-Encoding '%s', which is not "
                            "decoded here: send the bytes as they are (binary)", n, show(mp, 0, v, k)), -1;
        }
        line = eol + 1;
    }
    if (!disposition)
        return fail(mp, "part %u has no Content-Disposition: form-data header", n), -1;
    return 0;
}

static const char *take_headers(sesh_multipart *mp, const char *p, const char *end)
{
    while (p < end) {
        char c = *p++;
        if (c == '\0') {
            fail(mp, "part %u's headers hold a NUL byte", mp->part.index + 1);
            return end;
        }
        if (c == '\n') {
            if (mp->nhead > mp->line_start && mp->head[mp->nhead - 1] == '\r') mp->nhead--;
            if (mp->nhead == mp->line_start) {             /* an empty line: the block is whole */
                if (mp->nhead > 0) mp->nhead--;            /* the '\n' after the last line */
                if (parse_headers(mp) == 0) {
                    /* Content starts here, or at once the next boundary line:
                     * RFC 2046 lets an empty part's headers end right at the
                     * line end its delimiter begins with. */
                    mp->in_part = 1;
                    mp->matched = 0;
                    mp->held_at = p;
                    mp->st = S_DASHES;
                    call(mp, SESH_MULTIPART_BEGIN, NULL, 0);
                }
                return p;
            }
        }
        if (mp->nhead == SESH_MULTIPART_MAX_HEADER) {
            fail(mp, "part %u's headers are longer than %d bytes", mp->part.index + 1,
                 SESH_MULTIPART_MAX_HEADER);
            return end;
        }
        if (mp->nhead == mp->head_cap) {
            mp->head_cap = mp->head_cap ? mp->head_cap * 2 : 512;
            if (mp->head_cap > SESH_MULTIPART_MAX_HEADER) mp->head_cap = SESH_MULTIPART_MAX_HEADER;
            mp->head = sesh_xrealloc(mp->head, mp->head_cap);
        }
        mp->head[mp->nhead++] = c;
        if (c == '\n') mp->line_start = mp->nhead;
    }
    return end;
}

/* ---- the face ---- */

sesh_multipart *sesh_multipart_new(const char *boundary, sesh_multipart_fn fn, void *ctx,
                                   const char **why)
{
    size_t n = boundary ? strlen(boundary) : 0;
    if (n == 0) { *why = "the multipart boundary is empty"; return NULL; }
    if (n > SESH_MULTIPART_MAX_BOUNDARY) { *why = "the multipart boundary is longer than 200 bytes"; return NULL; }
    if (strpbrk(boundary, "\r\n")) { *why = "the multipart boundary holds a line end"; return NULL; }
    sesh_multipart *mp = sesh_xcalloc(1, sizeof *mp);
    mp->fn = fn;
    mp->ctx = ctx;
    mp->delim[0] = mp->delim[1] = '-';
    memcpy(mp->delim + 2, boundary, n + 1);
    mp->dlen = n + 2;
    mp->st = S_DASHES;              /* the body may start with the boundary line */
    return mp;
}

void sesh_multipart_free(sesh_multipart *mp)
{
    if (!mp) return;
    free(mp->head);
    free(mp->vals);
    free(mp);
}

sesh_multipart_status sesh_multipart_feed(sesh_multipart *mp, const char *data, size_t size)
{
    const char *p = data, *end = data + size;
    if (mp->status != SESH_MULTIPART_OK || size == 0) return mp->status;
    mp->run = NULL;
    mp->held_at = holding(mp->st) ? data : NULL;     /* a boundary line may go on here */
    while (p < end && mp->status == SESH_MULTIPART_OK) {
        switch (mp->st) {
        case S_CONTENT: p = scan_content(mp, p, end); break;
        case S_HEADERS: p = take_headers(mp, p, end); break;
        case S_EPILOGUE: p = end; break;
        default: p += boundary_byte(mp, *p); break;
        }
    }
    if (mp->status == SESH_MULTIPART_OK) piece_end(mp, end);
    return mp->status;
}

sesh_multipart_status sesh_multipart_finish(sesh_multipart *mp)
{
    if (mp->status != SESH_MULTIPART_OK || mp->closed) return mp->status;
    if (!mp->seen_boundary)
        return fail(mp, "the body holds no boundary line '%s': it is not the multipart body "
                    "its Content-Type announces", show(mp, 0, mp->delim, mp->dlen));
    if (mp->st == S_HEADERS && mp->nhead == 0)
        return fail(mp, "the body ends %s without its closing boundary '%s--'",
                    mp->part.index ? "after its last part" : "after its first boundary line",
                    show(mp, 0, mp->delim, mp->dlen));
    if (mp->st == S_HEADERS)
        return fail(mp, "the body ends inside the headers of part %u", mp->part.index + 1);
    return fail(mp, "the body ends inside part %u ('%s', %llu bytes in): it was cut short, or "
                "its closing boundary '%s--' is missing", mp->part.index + 1,
                show(mp, 0, mp->part.name, strlen(mp->part.name)), (unsigned long long)mp->off,
                show(mp, 1, mp->delim, mp->dlen));
}

const char *sesh_multipart_error(const sesh_multipart *mp)
{
    if (mp->status == SESH_MULTIPART_STOPPED && !mp->err[0]) return "stopped by its reader";
    return mp->err;
}

int sesh_multipart_boundary(const char *content_type, char *out, size_t cap)
{
    if (!content_type) return 0;
    const char *p = content_type, *end = p + strlen(p);
    while (p < end && *p != ';') p++;               /* the media type */
    param prm;
    int rc;
    while ((rc = next_param(&p, end, &prm)) > 0) {
        if (!param_is(&prm, "boundary")) continue;
        if (prm.value_len == 0 || prm.value_len > SESH_MULTIPART_MAX_BOUNDARY || prm.value_len >= cap)
            return -1;
        return unquote(&prm, out) > 0 && !strpbrk(out, "\r\n") ? 1 : -1;
    }
    return rc < 0 ? -1 : 0;
}

/* ---- sniffing a body sent under another media type ---- */

static int bchar(unsigned char c)      /* RFC 2046's boundary characters, but space */
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("'()+_,-./:=?", c));
}

sesh_sniff sesh_multipart_sniff(const char *data, size_t size, int complete, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t n = size > SESH_MULTIPART_SNIFF_MAX ? SESH_MULTIPART_SNIFF_MAX : size;
    sesh_sniff more = complete || n == SESH_MULTIPART_SNIFF_MAX ? SESH_SNIFF_NO : SESH_SNIFF_MORE;
    size_t i = 0;
    for (; i < 2; i++) {
        if (i == n) return more;
        if (p[i] != '-') return SESH_SNIFF_NO;
    }
    while (i < n && bchar(p[i])) i++;
    size_t blen = i - 2;
    if (blen > SESH_MULTIPART_MAX_BOUNDARY || blen >= cap) return SESH_SNIFF_NO;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    if (i < n && p[i] == '\r') i++;
    if (i == n) return more;
    if (p[i] != '\n' || blen == 0) return SESH_SNIFF_NO;
    i++;
    /* Header lines up to the empty one: one must be Content-Disposition: form-data. */
    for (;;) {
        size_t start = i;
        while (i < n && p[i] != '\n' && p[i] != '\0') i++;
        if (i == n) return more;
        if (p[i] == '\0') return SESH_SNIFF_NO;
        size_t len = i - start;
        if (len > 0 && p[start + len - 1] == '\r') len--;
        i++;
        if (len == 0) return SESH_SNIFF_NO;         /* headers over, no form-data */
        const char *line = (const char *)p + start;
        const char *colon = memchr(line, ':', len);
        if (!colon) return SESH_SNIFF_NO;
        if (colon - line != 19 || strncasecmp(line, "Content-Disposition", 19) != 0) continue;
        const char *v = skip_space(colon + 1, line + len);
        size_t vlen = (size_t)(line + len - v);
        if (vlen >= 9 && strncasecmp(v, "form-data", 9) == 0 &&
            (vlen == 9 || v[9] == ';' || v[9] == ' ' || v[9] == '\t')) {
            memcpy(out, data + 2, blen);
            out[blen] = '\0';
            return SESH_SNIFF_YES;
        }
        return SESH_SNIFF_NO;
    }
}
