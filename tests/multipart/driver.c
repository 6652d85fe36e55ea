/*
 * driver.c — the multipart parser (host/pool/multipart.h) tested on its own,
 * without a server: bodies of real clients (gen_bodies.py), hand-made ones,
 * hostile ones, every split, and a fuzz loop. Prints "N passed, N failed".
 *
 * Usage: driver CASES_DIR [FILTER]
 *   CASES_DIR: gen_bodies.py's output. MULTIPART_FUZZ=N: fuzz iterations
 *   (default 4000); MULTIPART_PAIRS=N: bodies up to N bytes are also cut
 *   at every pair of positions (default 300).
 */
#include "pool/multipart.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/check.h"

/* ---- growing buffers ---- */

typedef struct { char *p; size_t n, cap; } buf;

static void put(buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void putf(buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void field(buf *b, const char *key, const char *v, size_t n)
{
    if (!v) { putf(b, "%s -1\n", key); return; }
    putf(b, "%s %zu\n", key, n);
    put(b, v, n);
    put(b, "\n", 1);
}

/* The canonical form of one part (gen_bodies.py writes the same). */
static void expect_part(buf *b, const char *name, const char *filename, const char *type,
                        const char *data, size_t n)
{
    put(b, "part\n", 5);
    field(b, "name", name, strlen(name));
    field(b, "filename", filename, filename ? strlen(filename) : 0);
    field(b, "type", type, type ? strlen(type) : 0);
    field(b, "data", data, n);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf b = { 0 };
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) put(&b, tmp, k);
    fclose(f);
    if (!b.p) put(&b, "", 0);
    *n = b.n;
    return b.p;
}

/* ---- a recorder of the parser's calls, checking their order ---- */

typedef struct {
    buf out;                /* canonical parts */
    buf data;               /* the open part's content */
    int open;
    int begins, events;
    int stop_at;            /* stop when this many events were seen (0: never) */
    int discard;            /* keep no content, only count it */
    int data_calls;
    uint64_t part_len;      /* the open part's content so far */
    uint64_t emitted;       /* content bytes handed on, all parts */
    char problem[256];      /* the first broken promise */
    const char *name0;      /* the part's name as given at BEGIN */
} recorder;

static int on_event(void *ctx, sesh_multipart_event ev, const sesh_multipart_part *part,
                    const char *data, uint64_t off, size_t size)
{
    recorder *r = ctx;
    r->events++;
    if (r->problem[0]) return 0;
    switch (ev) {
    case SESH_MULTIPART_BEGIN:
        if (r->open || data || size || off || part->index != (unsigned)r->begins)
            snprintf(r->problem, sizeof r->problem, "BEGIN out of order (index %u)", part->index);
        r->begins++;
        r->open = 1;
        r->data.n = 0;
        r->part_len = 0;
        r->name0 = part->name;
        break;
    case SESH_MULTIPART_DATA:
        if (!r->open || size == 0 || !data || off != r->part_len || part->name != r->name0)
            snprintf(r->problem, sizeof r->problem, "DATA out of order (off %llu, have %llu, size %zu)",
                     (unsigned long long)off, (unsigned long long)r->part_len, size);
        if (!r->discard) put(&r->data, data, size);
        r->data_calls++;
        r->part_len += size;
        r->emitted += size;
        break;
    case SESH_MULTIPART_END:
        if (!r->open || off != r->part_len || size || data)
            snprintf(r->problem, sizeof r->problem, "END out of order");
        expect_part(&r->out, part->name, part->filename, part->content_type, r->data.p ? r->data.p : "",
                    r->data.n);
        r->open = 0;
        break;
    }
    return r->stop_at && r->events >= r->stop_at;
}

static void recorder_free(recorder *r)
{
    free(r->out.p);
    free(r->data.p);
}

/* One parse, the body cut at `cuts` (ascending). The result, malloc'd: the
 * parts, what is left open, and the status with its message. */
typedef struct {
    size_t hold_allowance;          /* > 0: check no content is held back longer */
    const size_t *ranges;           /* pairs: each part's content in the body */
    int nranges;
    char *why;                      /* out: a broken promise */
} run_check;

static char *parse(const char *body, size_t n, const char *boundary, const size_t *cuts, int ncuts,
                   run_check *rc)
{
    recorder r = { 0 };
    const char *why = NULL;
    sesh_multipart *mp = sesh_multipart_new(boundary, on_event, &r, &why);
    if (!mp) {
        char *s = malloc(300);
        snprintf(s, 300, "new failed: %s", why);
        return s;
    }
    size_t at = 0;
    sesh_multipart_status st = SESH_MULTIPART_OK;
    for (int i = 0; i <= ncuts && st == SESH_MULTIPART_OK; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        st = sesh_multipart_feed(mp, body + at, to - at);
        at = to;
        /* Content fed is handed on at once, but for what may be a boundary line. */
        if (rc && rc->hold_allowance && st == SESH_MULTIPART_OK) {
            for (int k = 0; k < rc->nranges; k++) {
                size_t s = rc->ranges[2 * k], e = rc->ranges[2 * k + 1];
                if (at < s || at > e || r.begins != k + 1 || !r.open) continue;
                if (r.data.n + rc->hold_allowance < at - s && !rc->why) {
                    rc->why = malloc(200);
                    snprintf(rc->why, 200, "part %d: %zu bytes fed, only %zu handed on", k + 1, at - s, r.data.n);
                }
            }
        }
    }
    if (st == SESH_MULTIPART_OK) st = sesh_multipart_finish(mp);
    buf res = { 0 };
    put(&res, r.out.p ? r.out.p : "", r.out.n);
    if (r.open) putf(&res, "open %zu\n", r.data.n);
    const char *msg = sesh_multipart_error(mp);
    putf(&res, "status %d %s\n", (int)st, msg);
    for (const char *c = msg; *c; c++)
        if (*c < 0x20 || *c > 0x7e) {
            putf(&res, "problem a message with a byte that is not printable ASCII\n");
            break;
        }
    if (r.problem[0]) putf(&res, "problem %s\n", r.problem);
    /* Once failed, the parser stays failed and quiet. */
    if (st != SESH_MULTIPART_OK) {
        int before = r.events;
        if (sesh_multipart_feed(mp, "\r\n--", 4) != st || r.events != before)
            putf(&res, "problem the parser went on after failing\n");
    }
    sesh_multipart_free(mp);
    recorder_free(&r);
    return res.p;
}

static char *parse_whole(const char *body, size_t n, const char *boundary)
{
    return parse(body, n, boundary, NULL, 0, NULL);
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int random_cuts(size_t n, size_t *cuts, int most)
{
    int k = n ? (int)(next_random() % (uint64_t)most) : 0;
    for (int i = 0; i < k; i++) cuts[i] = (size_t)(next_random() % (n + 1));
    qsort(cuts, (size_t)k, sizeof *cuts, cmp_size);
    return k;
}

/* Every split gives the same result as the whole body: one cut anywhere,
 * byte by byte, random cuts, and (small bodies) every pair of cuts.
 * Returns NULL, or what differed. */
static char *split_invariant(const char *body, size_t n, const char *boundary, const char *whole,
                             int randoms, size_t pairs_upto, run_check *rc)
{
    char *msg = NULL;
    size_t cuts[64];
    for (size_t c = 0; c <= n && !msg; c += n > 20000 ? n / 500 + 1 : 1) {
        cuts[0] = c;
        char *r = parse(body, n, boundary, cuts, 1, rc);
        if (strcmp(r, whole) != 0) {
            msg = malloc(strlen(r) + 100);
            sprintf(msg, "cut at %zu gives:\n%.2000s", c, r);
        }
        free(r);
    }
    if (!msg) {                                     /* byte by byte */
        size_t *every = malloc((n + 1) * sizeof *every);
        for (size_t i = 0; i < n; i++) every[i] = i + 1;
        char *r = parse(body, n, boundary, every, n ? (int)n - 1 : 0, rc);
        if (strcmp(r, whole) != 0) {
            msg = malloc(strlen(r) + 100);
            sprintf(msg, "byte by byte gives:\n%.2000s", r);
        }
        free(r);
        free(every);
    }
    for (int i = 0; i < randoms && !msg; i++) {
        int k = random_cuts(n, cuts, 64);
        char *r = parse(body, n, boundary, cuts, k, rc);
        if (strcmp(r, whole) != 0) {
            msg = malloc(strlen(r) + 100);
            sprintf(msg, "%d random cuts give:\n%.2000s", k, r);
        }
        free(r);
    }
    if (n <= pairs_upto)
        for (size_t a = 1; a < n && !msg; a++)
            for (size_t b = a + 1; b < n && !msg; b++) {
                cuts[0] = a;
                cuts[1] = b;
                char *r = parse(body, n, boundary, cuts, 2, rc);
                if (strcmp(r, whole) != 0) {
                    msg = malloc(strlen(r) + 100);
                    sprintf(msg, "cuts at %zu and %zu give:\n%.2000s", a, b, r);
                }
                free(r);
            }
    if (!msg && rc && rc->why) {
        msg = rc->why;
        rc->why = NULL;
    }
    return msg;
}

static size_t pairs_upto = 300;

/* ---- bodies of real clients ---- */

static void sniff_progress(const char *name, const char *body, size_t n, const char *boundary)
{
    char out[SESH_MULTIPART_MAX_BOUNDARY + 1], label[300];
    int yes = 0;
    const char *bad = NULL;
    size_t at = 0;
    size_t upto = n < SESH_MULTIPART_SNIFF_MAX ? n : SESH_MULTIPART_SNIFF_MAX;
    for (size_t k = 0; k <= upto && !bad; k++) {
        sesh_sniff s = sesh_multipart_sniff(body, k, 0, out, sizeof out);
        if (s == SESH_SNIFF_NO) { bad = "NO"; at = k; }
        else if (s == SESH_SNIFF_MORE && yes) { bad = "MORE after YES"; at = k; }
        else if (s == SESH_SNIFF_YES) {
            yes = 1;
            if (strcmp(out, boundary) != 0) { bad = "another boundary"; at = k; }
        }
    }
    if (!bad && sesh_multipart_sniff(body, n, 1, out, sizeof out) != SESH_SNIFF_YES) { bad = "NO when complete"; at = n; }
    snprintf(label, sizeof label, "%s: recognized as multipart from its first bytes", name);
    check(!bad && yes, label, "%s at %zu bytes", bad ? bad : "never YES", at);
}

static void real_case(const char *dir, const char *name)
{
    char path[1024], label[300];
    size_t n, cn, en, rn;
    snprintf(path, sizeof path, "%s/%s.body", dir, name);
    char *body = slurp(path, &n);
    snprintf(path, sizeof path, "%s/%s.ctype", dir, name);
    char *ctype = slurp(path, &cn);
    snprintf(path, sizeof path, "%s/%s.expect", dir, name);
    char *expect = slurp(path, &en);
    snprintf(path, sizeof path, "%s/%s.ranges", dir, name);
    char *rtext = slurp(path, &rn);
    if (!body || !ctype || !expect || !rtext) {
        snprintf(label, sizeof label, "%s: case files", name);
        check(0, label, "missing in %s", dir);
        return;
    }
    char boundary[SESH_MULTIPART_MAX_BOUNDARY + 1];
    int b = sesh_multipart_boundary(ctype, boundary, sizeof boundary);
    if (strncmp(ctype, "multipart/form-data", 19) != 0) {
        /* Sent under another type (Semantic Kernel): the body says it. */
        snprintf(label, sizeof label, "%s: boundary sniffed from a %s body", name, ctype);
        check(b == 0 && sesh_multipart_sniff(body, n, 1, boundary, sizeof boundary) == SESH_SNIFF_YES,
              label, "not recognized");
    } else {
        snprintf(label, sizeof label, "%s: boundary from the Content-Type", name);
        check(b == 1, label, "sesh_multipart_boundary says %d for %s", b, ctype);
    }
    sniff_progress(name, body, n, boundary);

    size_t ranges[64];
    int nranges = 0;
    for (char *p = rtext; *p && nranges < 32;) {
        unsigned long long s, e;
        int used;
        if (sscanf(p, "%llu %llu\n%n", &s, &e, &used) != 2) break;
        ranges[2 * nranges] = (size_t)s;
        ranges[2 * nranges + 1] = (size_t)e;
        nranges++;
        p += used;
    }

    buf want = { 0 };
    put(&want, expect, en);
    putf(&want, "status 0 \n");
    char *whole = parse_whole(body, n, boundary);
    snprintf(label, sizeof label, "%s: parts, names, file names, types and data", name);
    check(strcmp(whole, want.p) == 0, label, "got:\n%.3000s\nwanted:\n%.3000s", whole, want.p);

    run_check rc = { .hold_allowance = strlen(boundary) + 5 + 64,   /* CRLF--boundary, padding, CR */
                       .ranges = ranges, .nranges = nranges };
    char *why = split_invariant(body, n, boundary, want.p, 40, pairs_upto, &rc);
    snprintf(label, sizeof label, "%s: the same at every split, content handed on at once", name);
    check(!why, label, "%s", why);
    free(why);
    free(rc.why);
    free(whole);
    free(want.p);
    free(body);
    free(ctype);
    free(expect);
    free(rtext);
}

static int real_cases(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        check(0, "client bodies", "cannot open %s", dir);
        return 0;
    }
    int count = 0;
    struct dirent *e;
    char **names = NULL;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".body") != 0) continue;
        names = realloc(names, (size_t)(count + 1) * sizeof *names);
        names[count++] = strndup(e->d_name, len - 5);
    }
    closedir(d);
    for (int i = 0; i < count; i++) {
        if (selected(names[i])) real_case(dir, names[i]);
        free(names[i]);
    }
    free(names);
    return count;
}

/* ---- hand-made bodies ---- */

/* A body expected to parse into `want` (canonical parts), at every split. */
static void ok_case(const char *label, const char *body, size_t n, const char *boundary, const char *want)
{
    if (!selected(label)) return;
    buf w = { 0 };
    putf(&w, "%sstatus 0 \n", want);
    char *got = parse_whole(body, n, boundary);
    char *why = strcmp(got, w.p) == 0 ? split_invariant(body, n, boundary, w.p, 20, pairs_upto, NULL) : NULL;
    check(strcmp(got, w.p) == 0 && !why, label, "got:\n%s\nwanted:\n%s\n%s", got, w.p, why ? why : "");
    free(why);
    free(got);
    free(w.p);
}

/* A body expected to fail with a message holding `words`, at every split. */
static void bad_case(const char *label, const char *body, size_t n, const char *boundary, const char *words)
{
    if (!selected(label)) return;
    char *got = parse_whole(body, n, boundary);
    const char *st = strstr(got, "status 1 ");
    int ok = st && strstr(st, words) && !strstr(got, "problem ");
    char *why = ok ? split_invariant(body, n, boundary, got, 20, pairs_upto, NULL) : NULL;
    check(ok && !why, label, "got:\n%s\nwanted an error saying '%s'\n%s", got, words, why ? why : "");
    free(why);
    free(got);
}

#define S(lit) lit, sizeof lit - 1

static void one_part(buf *b, const char *name, const char *filename, const char *type, const char *data)
{
    expect_part(b, name, filename, type, data, strlen(data));
}

static void hand_cases(void)
{
    buf w = { 0 };
    one_part(&w, "file", "a.txt", NULL, "hello");
    ok_case("LF line ends", S("--XyZ\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\n\n"
                              "hello\n--XyZ--\n"), "XyZ", w.p);
    ok_case("preamble and epilogue", S("This is a preamble.\r\n--XyZ-x\r\n\r\n--XyZ\r\nContent-Disposition: "
                                       "form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XyZ--"
                                       "\r\nepilogue\r\n--XyZ\r\nbogus"), "XyZ", w.p);
    ok_case("leading CRLF", S("\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                              "\r\nhello\r\n--XyZ--"), "XyZ", w.p);
    w.n = 0;
    one_part(&w, "file", "a.txt", NULL, "hello");
    one_part(&w, "x", NULL, NULL, "");
    ok_case("padding after boundaries, two parts", S("--XyZ \t \r\nContent-Disposition: form-data; name=\"file\"; "
                                          "filename=\"a.txt\"\r\n\r\nhello\r\n--XyZ  \r\nContent-Disposition: "
                                          "form-data; name=x\r\n\r\n\r\n--XyZ--  \r\n"), "XyZ", w.p);
    w.n = 0;
    one_part(&w, "file", "my file.csv", "text/csv; charset=utf-8", "a");
    ok_case("bare values, odd spacing and case", S("--B\r\ncontent-disposition:FORM-DATA ;name = file ; "
                                                    "FileName= my file.csv \r\nCONTENT-TYPE:   text/csv; "
                                                    "charset=utf-8  \r\nX-Other: ignored\r\n\r\na\r\n--B--\r\n"),
            "B", w.p);
    w.n = 0;
    one_part(&w, "file", "in 2.csv", NULL, "x");
    ok_case("percent-encoded file name", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                           "filename=\"in%202.csv\"\r\n\r\nx\r\n--B--"), "B", w.p);
    ok_case("filename* wins over filename", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                              "filename=\"in_2.csv\"; filename*=UTF-8''in%202.csv\r\n\r\nx\r\n--B--"),
            "B", w.p);
    ok_case("filename* first, then filename", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                                "filename*=utf-8'en'in%202.csv; filename=\"other\"\r\n\r\nx\r\n--B--"),
            "B", w.p);
    w.n = 0;
    one_part(&w, "file", "caf\xc3\xa9 \xc2\xa3.txt", NULL, "x");
    ok_case("filename* in ISO-8859-1", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                         "filename*=ISO-8859-1''caf%E9%20%A3.txt\r\n\r\nx\r\n--B--"), "B", w.p);
    ok_case("filename* quoted, UTF-8", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                         "filename*=\"UTF-8''caf%C3%A9%20%C2%A3.txt\"\r\n\r\nx\r\n--B--"), "B", w.p);
    w.n = 0;
    one_part(&w, "file", "a\"b\\c\\d%zz%4.txt", NULL, "x");
    ok_case("quoted escapes; other backslashes and bad escapes kept",
            S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\\\"b\\\\c\\d%zz%4.txt\"\r\n"
              "\r\nx\r\n--B--"), "B", w.p);
    w.n = 0;
    one_part(&w, "file", "../../etc/x", NULL, "x");
    ok_case("a decoded '/' is a '/' (the name checks see it)",
            S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"..%2F..%2Fetc%2fx\"\r\n\r\nx\r\n--B--"),
            "B", w.p);
    w.n = 0;
    one_part(&w, "file", "", NULL, "x");
    ok_case("an empty file name is kept as such", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                                    "filename=\"\"\r\n\r\nx\r\n--B--"), "B", w.p);
    w.n = 0;
    one_part(&w, "file", "folded.txt", NULL, "x");
    ok_case("folded header line", S("--B\r\nContent-Disposition: form-data;\r\n name=\"file\";\r\n\tfilename="
                                     "\"folded.txt\"\r\n\r\nx\r\n--B--"), "B", w.p);
    w.n = 0;
    one_part(&w, "file", "e.txt", NULL, "");
    ok_case("empty part, headers ending at the delimiter (RFC 2046)",
            S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"e.txt\"\r\n\r\n--B--"), "B", w.p);
    w.n = 0;
    one_part(&w, "file", "e.txt", NULL, "--B-x");
    ok_case("content starting like a boundary",
            S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"e.txt\"\r\n\r\n--B-x\r\n--B--"),
            "B", w.p);
    w.n = 0;
    one_part(&w, "file", "l.bin", NULL,
             "\r\n--Bx\n--B-\r\n--B \tx\r\n--B\rz\r\r\n--\r\n-B\r\n--C\r\nx--B--");
    ok_case("boundary look-alikes in content",
            S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"l.bin\"\r\n\r\n"
              "\r\n--Bx\n--B-\r\n--B \tx\r\n--B\rz\r\r\n--\r\n-B\r\n--C\r\nx--B--\r\n--B--"), "B", w.p);
    w.n = 0;
    one_part(&w, "f", NULL, NULL, "-\n--\n--Bx\r\n--B-\r\n--B \t!\r\r\n--B\r-\n");
    one_part(&w, "g", NULL, NULL, "");
    ok_case("look-alikes with LF and CRLF mixed", S("--B\nContent-Disposition: form-data; name=f\n\n-\n--\n--Bx"
                                                  "\r\n--B-\r\n--B \t!\r\r\n--B\r-\n\n--B  \r\nContent-Disposition: "
                                                  "form-data; name=g\r\n\r\n\r\n--B--"), "B", w.p);
    {
        buf body = { 0 };
        put(&body, S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.bin\"\r\n\r\n\r\n--B"));
        for (int i = 0; i < 65; i++) put(&body, " ", 1);
        put(&body, S("\r\n\r\n--B--"));
        w.n = 0;
        buf data = { 0 };
        put(&data, S("\r\n--B"));
        for (int i = 0; i < 65; i++) put(&data, " ", 1);
        put(&data, "\r\n", 2);
        expect_part(&w, "file", "p.bin", NULL, data.p, data.n);
        ok_case("more padding than a boundary line may have is content", body.p, body.n, "B", w.p);
        free(body.p);
        free(data.p);
    }
    w.n = 0;
    ok_case("no part at all", S("--B--\r\n"), "B", "");
    {
        char boundary[201];
        memset(boundary, 'q', 200);
        boundary[200] = '\0';
        buf body = { 0 };
        putf(&body, "--%s\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--%s--", boundary, boundary);
        w.n = 0;
        one_part(&w, "a", NULL, NULL, "v");
        ok_case("a boundary of 200 bytes", body.p, body.n, boundary, w.p);
        free(body.p);
    }

    bad_case("no Content-Disposition", S("--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--"), "B",
             "part 1 has no Content-Disposition");
    bad_case("no headers at all", S("--B\r\n\r\nx\r\n--B--"), "B", "part 1 has no Content-Disposition");
    bad_case("not form-data", S("--B\r\nContent-Disposition: attachment; name=\"file\"\r\n\r\nx\r\n--B--"), "B",
             "'attachment', not form-data");
    bad_case("no name", S("--B\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nx\r\n--B--"), "B",
             "has no name");
    bad_case("two Content-Disposition headers",
             S("--B\r\nContent-Disposition: form-data; name=\"x\"\r\nContent-Disposition: form-data; "
               "name=\"file\"; filename=\"a\"\r\n\r\nx\r\n--B--"), "B", "two Content-Disposition");
    bad_case("two file names", S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"; "
                                 "filename=\"b\"\r\n\r\nx\r\n--B--"), "B", "filename twice");
    bad_case("two Content-Type headers", S("--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: a/b\r\n"
                                           "Content-Type: c/d\r\n\r\nx\r\n--B--"), "B", "two Content-Type");
    bad_case("unterminated quote", S("--B\r\nContent-Disposition: form-data; name=\"file; filename=a\r\n\r\n"
                                     "x\r\n--B--"), "B", "malformed");
    bad_case("junk after a quoted value", S("--B\r\nContent-Disposition: form-data; name=\"file\"x\r\n\r\n"
                                            "x\r\n--B--"), "B", "malformed");
    bad_case("header line without a colon", S("--B\r\nContent-Disposition: form-data; name=a\r\nbogus line\r\n"
                                              "\r\nx\r\n--B--"), "B", "without ':'");
    bad_case("NUL in headers", S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\0b\"\r\n\r\n"
                                 "x\r\n--B--"), "B", "NUL byte");
    bad_case("decoded NUL in a file name", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                             "filename=\"a.txt%00.png\"\r\n\r\nx\r\n--B--"), "B", "NUL (%00)");
    bad_case("decoded NUL in filename*", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                           "filename*=UTF-8''a%00b\r\n\r\nx\r\n--B--"), "B", "holds a NUL");
    bad_case("filename* without its charset", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                                "filename*=in%202.csv\r\n\r\nx\r\n--B--"), "B", "charset'language'value");
    bad_case("filename* in another charset", S("--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                               "filename*=Shift_JIS''x\r\n\r\nx\r\n--B--"), "B", "charset other than");
    bad_case("a client's bytes shown printable", S("--B\r\nContent-Disposition: \xff\x01\033[2J\r\n\r\n--B--"),
             "B", "part 1 is Content-Disposition '???[2J', not form-data");
    bad_case("base64 transfer encoding", S("--B\r\nContent-Disposition: form-data; name=a\r\n"
                                           "Content-Transfer-Encoding: base64\r\n\r\neA==\r\n--B--"), "B",
             "Content-Transfer-Encoding 'base64'");
    bad_case("truncated last part", S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
                                      "some data"), "B", "ends inside part 1 ('file', 9 bytes in)");
    bad_case("truncated at the delimiter", S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\""
                                             "\r\n\r\ndata\r\n--B"), "B", "ends inside part 1");
    bad_case("missing closing boundary", S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n"
                                           "\r\ndata\r\n--B\r\n"), "B", "after its last part without its closing");
    bad_case("truncated in headers", S("--B\r\nContent-Disposition: form-data; name=\"fi"), "B",
             "ends inside the headers of part 1");
    bad_case("only a boundary line", S("--B\r\n"), "B", "after its first boundary line");
    bad_case("no boundary at all", S("{\"properties\": {\"code\": \"1\"}}"), "B", "holds no boundary line '--B'");
    bad_case("another boundary", S("--C\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--C--"), "B",
             "holds no boundary line");

    {
        buf body = { 0 };
        put(&body, S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\""));
        for (int i = 0; i < SESH_MULTIPART_MAX_HEADER; i++) put(&body, "a", 1);
        put(&body, S("\"\r\n\r\nx\r\n--B--"));
        bad_case("a header line longer than the header limit", body.p, body.n, "B", "headers are longer than 16384");
        body.n = 0;
        put(&body, S("--B\r\n"));
        for (int i = 0; i < 2000; i++) put(&body, S("X-Pad: 12345678\r\n"));
        bad_case("endless headers", body.p, body.n, "B", "headers are longer than 16384");
        body.n = 0;
        for (int i = 0; i < SESH_MULTIPART_MAX_PARTS + 1; i++)
            putf(&body, "--B\r\nContent-Disposition: form-data; name=p%d\r\n\r\nv\r\n", i);
        put(&body, S("--B--"));
        bad_case("too many parts", body.p, body.n, "B", "more than 100 parts");
        body.n = 0;
        for (int i = 0; i < SESH_MULTIPART_MAX_PREAMBLE / 8 + 1; i++) put(&body, S("preamble"));
        put(&body, S("\r\n--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--B--"));
        bad_case("preamble beyond its limit", body.p, body.n, "B", "in the body's first 65536 bytes");
        free(body.p);
    }
    free(w.p);
}

/* ---- bounds and the callback ---- */

static void endless_part(void)
{
    const char *label = "an endless part is streamed, never held (64 MiB)";
    if (!selected(label)) return;
    recorder r = { .discard = 1 };
    const char *why;
    sesh_multipart *mp = sesh_multipart_new("B", on_event, &r, &why);
    const char head[] = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n";
    sesh_multipart_feed(mp, head, sizeof head - 1);
    static char piece[65536];
    for (size_t i = 0; i < sizeof piece; i++) piece[i] = "x\r\n--B"[i % 6];   /* look-alikes galore */
    uint64_t fed = 0, worst = 0;
    int ok = 1;
    for (int i = 0; i < 2048 && ok; i++) {
        size_t n = 1 + (size_t)(next_random() % sizeof piece);
        ok = sesh_multipart_feed(mp, piece, n) == SESH_MULTIPART_OK && !r.problem[0];
        fed += n;
        if (fed - r.part_len > worst) worst = fed - r.part_len;
    }
    sesh_multipart_status st = sesh_multipart_finish(mp);
    check(ok && worst <= 3 + 4 && r.part_len > 60000000 && st == SESH_MULTIPART_MALFORMED && strstr(sesh_multipart_error(mp), "ends inside part 1"),
          label, "ok %d, at most %llu bytes held, finish %d (%s)", ok, (unsigned long long)worst, (int)st,
          sesh_multipart_error(mp));
    sesh_multipart_free(mp);
    recorder_free(&r);
}

/* Content goes out in runs: within a piece, one call between two boundary
 * lines, however many line ends (each one is a boundary line's start). */
static void runs(void)
{
    static const char *const fills[] = { "\n", "\r\n", "a,b\r\n", "\r\n--", "\n--B-\n", "\r", "\r\n--B \r" };
    for (size_t f = 0; f < sizeof fills / sizeof *fills; f++) {
        char label[100];
        snprintf(label, sizeof label, "content in runs, not line by line (fill %zu)", f);
        if (!selected(label)) continue;
        buf body = { 0 };
        put(&body, S("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"));
        size_t start = body.n;
        while (body.n - start < 300000) put(&body, fills[f], strlen(fills[f]));
        size_t data_len = body.n - start;
        put(&body, S("\r\n--B--\r\n"));
        recorder r = { .discard = 1 };
        const char *why;
        sesh_multipart *mp = sesh_multipart_new("B", on_event, &r, &why);
        sesh_multipart_status st = sesh_multipart_feed(mp, body.p, body.n);
        int whole = r.data_calls;
        if (st == SESH_MULTIPART_OK) st = sesh_multipart_finish(mp);
        sesh_multipart_free(mp);
        /* in 4 KiB pieces: about a call per piece, not per line */
        recorder q = { .discard = 1 };
        mp = sesh_multipart_new("B", on_event, &q, &why);
        for (size_t at = 0; at < body.n && st == SESH_MULTIPART_OK; at += 4096)
            st = sesh_multipart_feed(mp, body.p + at, body.n - at < 4096 ? body.n - at : 4096);
        if (st == SESH_MULTIPART_OK) st = sesh_multipart_finish(mp);
        sesh_multipart_free(mp);
        size_t pieces = (body.n + 4095) / 4096;
        check(st == SESH_MULTIPART_OK && whole <= 1 && q.data_calls <= (int)(2 * pieces) &&
              r.part_len == data_len && q.part_len == data_len && !r.problem[0] && !q.problem[0], label,
              "status %d, %d calls whole, %d calls in %zu pieces, %llu of %zu bytes %s%s", (int)st, whole,
              q.data_calls, pieces, (unsigned long long)q.part_len, data_len, r.problem, q.problem);
        free(body.p);
        recorder_free(&r);
        recorder_free(&q);
    }
}

static void stops(void)
{
    static const char body[] = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxyz\r\n"
                               "--B\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nq\r\n--B--";
    for (int at = 1; at <= 6; at++) {
        char label[100];
        snprintf(label, sizeof label, "a callback that stops at event %d is called no more", at);
        if (!selected(label)) continue;
        recorder r = { .stop_at = at };
        const char *why;
        sesh_multipart *mp = sesh_multipart_new("B", on_event, &r, &why);
        sesh_multipart_status st = SESH_MULTIPART_OK;
        for (size_t i = 0; i < sizeof body - 1 && st == SESH_MULTIPART_OK; i++)
            st = sesh_multipart_feed(mp, body + i, 1);
        sesh_multipart_status fin = sesh_multipart_finish(mp);
        check(st == SESH_MULTIPART_STOPPED && fin == SESH_MULTIPART_STOPPED && r.events == at &&
              sesh_multipart_feed(mp, body, sizeof body - 1) == SESH_MULTIPART_STOPPED && r.events == at,
              label, "status %d/%d after %d events", (int)st, (int)fin, r.events);
        sesh_multipart_free(mp);
        recorder_free(&r);
    }
}

static void constructor(void)
{
    const char *label = "unusable boundaries are refused";
    if (!selected(label)) return;
    char longer[202];
    memset(longer, 'x', 201);
    longer[201] = '\0';
    const char *bad[] = { "", "a\r\nb", "a\nb", longer };
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = NULL;
        sesh_multipart *mp = sesh_multipart_new(bad[i], on_event, NULL, &why);
        if (mp || !why) ok = 0;
        sesh_multipart_free(mp);
    }
    check(ok, label, "one was taken");
}

static void boundary_param(void)
{
    static const struct { const char *ct; int rc; const char *b; } cases[] = {
        { "multipart/form-data; boundary=abc", 1, "abc" },
        { "multipart/form-data;boundary=\"a b:c\"", 1, "a b:c" },
        { "Multipart/Form-Data; charset=utf-8; BOUNDARY = xyz ; x=y", 1, "xyz" },
        { "multipart/form-data; boundary=\"----=_Part_0\"", 1, "----=_Part_0" },
        { "multipart/form-data", 0, NULL },
        { "application/json", 0, NULL },
        { "multipart/form-data; boundary=", -1, NULL },
        { "multipart/form-data; boundary=\"\"", -1, NULL },
        { "multipart/form-data; boundary=\"abc", -1, NULL },
        { "multipart/form-data; charset", -1, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char label[200], out[SESH_MULTIPART_MAX_BOUNDARY + 1] = "";
        snprintf(label, sizeof label, "boundary of '%s'", cases[i].ct);
        if (!selected(label)) continue;
        int rc = sesh_multipart_boundary(cases[i].ct, out, sizeof out);
        check(rc == cases[i].rc && (rc != 1 || strcmp(out, cases[i].b) == 0), label, "%d '%s'", rc, out);
    }
    char ct[300] = "multipart/form-data; boundary=";
    memset(ct + strlen(ct), 'x', 201);
    char out[8];
    check(sesh_multipart_boundary(ct, out, sizeof out) == -1, "a boundary longer than the room is refused",
          "taken");
}

static void sniffing(void)
{
    static const struct { const char *label; const char *body; int complete; sesh_sniff want; const char *b; } cases[] = {
        { "sniff: JSON is no multipart", "{\"properties\": {}}", 0, SESH_SNIFF_NO, NULL },
        { "sniff: empty, incomplete", "", 0, SESH_SNIFF_MORE, NULL },
        { "sniff: empty, complete", "", 1, SESH_SNIFF_NO, NULL },
        { "sniff: a dash", "-", 0, SESH_SNIFF_MORE, NULL },
        { "sniff: boundary line only", "--abc\r\n", 0, SESH_SNIFF_MORE, NULL },
        { "sniff: boundary line only, complete", "--abc\r\n", 1, SESH_SNIFF_NO, NULL },
        { "sniff: form-data after another header",
          "--abc\r\nContent-Type: text/csv\r\ncontent-disposition:  Form-Data; name=file\r\n", 0,
          SESH_SNIFF_YES, "abc" },
        { "sniff: LF only", "--a.b=c\nContent-Disposition: form-data\n", 0, SESH_SNIFF_YES, "a.b=c" },
        { "sniff: padding after the boundary", "--abc \t\r\nContent-Disposition: form-data; name=\"f\"\r\n", 0,
          SESH_SNIFF_YES, "abc" },
        { "sniff: attachment is not form-data", "--abc\r\nContent-Disposition: attachment\r\n", 0, SESH_SNIFF_NO, NULL },
        { "sniff: form-database is not form-data", "--abc\r\nContent-Disposition: form-database\r\n", 0,
          SESH_SNIFF_NO, NULL },
        { "sniff: headers end without form-data", "--abc\r\nContent-Type: a/b\r\n\r\n--abc--", 0, SESH_SNIFF_NO, NULL },
        { "sniff: a line that is no header", "--abc\r\nhello world\r\n", 0, SESH_SNIFF_NO, NULL },
        { "sniff: no boundary", "--\r\nContent-Disposition: form-data\r\n", 0, SESH_SNIFF_NO, NULL },
        { "sniff: odd boundary characters", "--ab{c\r\nContent-Disposition: form-data\r\n", 0, SESH_SNIFF_NO, NULL },
        { "sniff: a preamble is not sniffed", "\r\n--abc\r\nContent-Disposition: form-data\r\n", 0, SESH_SNIFF_NO, NULL },
        { "sniff: a line not ended yet", "--abc\r\nContent-Disposition: form-da", 0, SESH_SNIFF_MORE, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (!selected(cases[i].label)) continue;
        char out[SESH_MULTIPART_MAX_BOUNDARY + 1] = "";
        sesh_sniff s = sesh_multipart_sniff(cases[i].body, strlen(cases[i].body), cases[i].complete, out, sizeof out);
        check(s == cases[i].want && (s != SESH_SNIFF_YES || strcmp(out, cases[i].b) == 0), cases[i].label,
              "%d '%s'", (int)s, out);
    }
    if (selected("sniff: bounded")) {
        buf body = { 0 };
        put(&body, S("--"));
        for (int i = 0; i < 201; i++) put(&body, "b", 1);
        char out[SESH_MULTIPART_MAX_BOUNDARY + 1];
        sesh_sniff a = sesh_multipart_sniff(body.p, body.n, 0, out, sizeof out);
        body.n = 0;
        put(&body, S("--abc\r\n"));
        while (body.n < SESH_MULTIPART_SNIFF_MAX + 100) put(&body, S("X-Long: 0123456789\r\n"));
        sesh_sniff b = sesh_multipart_sniff(body.p, body.n, 0, out, sizeof out);
        sesh_sniff c = sesh_multipart_sniff(body.p, SESH_MULTIPART_SNIFF_MAX - 10, 0, out, sizeof out);
        check(a == SESH_SNIFF_NO && b == SESH_SNIFF_NO && c == SESH_SNIFF_MORE, "sniff: bounded",
              "boundary of 201: %d, headers past the limit: %d, before it: %d", (int)a, (int)b, (int)c);
        free(body.p);
    }
}

/* ---- fuzz: whatever the bytes, no crash, no broken promise, and every
 * split gives what the whole gives ---- */

static const char *const seeds[] = {
    "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in%202.csv\"\r\nContent-Type: a/b\r\n\r\n"
    "data\r\n--B\r\nContent-Disposition: form-data; name=x; filename*=UTF-8''%C3%A9\r\n\r\n\r\n--B--\r\n",
    "pre\n--B \nContent-Disposition: form-data; name=a\n folded\n\n\n--Bx\n--B--",
    "--B\r\nContent-Disposition: form-data; name=\"a\\\"b\"; filename*=\"ISO-8859-1'x'%E9\"\r\n\r\n--B--",
    "--B\nContent-Disposition: form-data; name=f\n\n-\n--\n--Bx\r\n--B-\r\n--B \t!\r\r\n--B\r-\n\n--B  \r\n"
    "Content-Disposition: form-data; name=g\r\n\r\n\r\n--B--",
};

static void mutate(buf *b)
{
    static const char *const bits[] = { "\r\n", "\n", "\r", "--", "--B", "\r\n--B", "\r\n--B--", "\"", ";", "=",
                                        "%", "%00", "\\", "filename*=", "Content-Disposition: form-data; name=",
                                        " ", "\t", "\0", "\r\n\r\n", "'", "UTF-8''" };
    int rounds = 1 + (int)(next_random() % 4);
    for (int i = 0; i < rounds; i++) {
        size_t at = b->n ? (size_t)(next_random() % (b->n + 1)) : 0;
        switch (next_random() % 4) {
        case 0:                                          /* flip a byte */
            if (at < b->n) b->p[at] = (char)next_random();
            break;
        case 1: {                                        /* cut some out */
            size_t len = (size_t)(next_random() % 16);
            if (at + len > b->n) len = b->n - at;
            memmove(b->p + at, b->p + at + len, b->n - at - len);
            b->n -= len;
            break;
        }
        default: {                                       /* insert a telling piece */
            const char *s = bits[next_random() % (sizeof bits / sizeof *bits)];
            size_t len = *s ? strlen(s) : 1;
            put(b, s, len);                              /* room, then move it into place */
            memmove(b->p + at + len, b->p + at, b->n - len - at);
            memcpy(b->p + at, s, len);
            break;
        }
        }
    }
}

/* A second opinion on where parts lie, written the plain way (the whole
 * body in hand, RFC 2046 read literally): each part's content, in the
 * canonical form, into out. -1 when the body has no closing boundary line. */
static int delimiter_at(const char *b, size_t n, size_t i, const char *d, size_t dlen, size_t *line_end, int *closing)
{
    if (n - i < dlen || memcmp(b + i, d, dlen) != 0) return 0;
    size_t j = i + dlen;
    if (n - j >= 2 && b[j] == '-' && b[j + 1] == '-') { *closing = 1; *line_end = j + 2; return 1; }
    size_t pad = 0;
    while (j < n && (b[j] == ' ' || b[j] == '\t') && pad < 64) { j++; pad++; }
    if (j < n && b[j] == '\r') j++;
    if (j < n && b[j] == '\n') { *closing = 0; *line_end = j + 1; return 1; }
    return 0;
}

static int reference_data(const char *b, size_t n, const char *boundary, buf *out)
{
    char d[256];
    size_t dlen = (size_t)snprintf(d, sizeof d, "--%s", boundary);
    size_t i = 0, line_end = 0;
    int closing = 0, found = 0;
    for (; i < n; i++)                                  /* the first boundary line */
        if ((i == 0 || b[i - 1] == '\n') && delimiter_at(b, n, i, d, dlen, &line_end, &closing)) {
            found = 1;
            break;
        }
    while (found && !closing) {
        size_t k = line_end, start;                     /* headers: up to an empty line */
        for (;;) {
            const char *nl = memchr(b + k, '\n', n - k);
            if (!nl) return -1;
            size_t len = (size_t)(nl - (b + k));
            k += len + 1;
            if (len == 0 || (len == 1 && b[k - 2] == '\r')) break;
        }
        start = k;
        found = 0;
        for (i = start; i < n; i++)
            if ((i == start || b[i - 1] == '\n') && delimiter_at(b, n, i, d, dlen, &line_end, &closing)) {
                found = 1;
                break;
            }
        if (!found) return -1;
        size_t end = i;
        if (end > start && b[end - 1] == '\n') end--;
        if (end > start && b[end - 1] == '\r') end--;
        field(out, "data", b + start, end - start);
    }
    return found ? 0 : -1;
}

/* The data fields of a canonical form. */
static void canonical_data(const char *c, buf *out)
{
    for (const char *p = c; (p = strstr(p, "part\nname ")) != NULL;) {
        for (int f = 0; f < 4; f++) {                   /* name, filename, type, data */
            const char *sp = strchr(p, ' ');
            long len = strtol(sp + 1, NULL, 10);
            const char *v = strchr(sp, '\n') + 1;
            if (f == 3) field(out, "data", v, (size_t)len);
            p = len < 0 ? v : v + len + 1;
        }
    }
}

static void fuzz(int iterations)
{
    const char *label = "fuzz: mangled bodies parse the same at every split, as a plain reading does, "
                        "without a broken promise";
    if (!selected(label)) return;
    char *bad = NULL;
    for (int i = 0; i < iterations && !bad; i++) {
        buf b = { 0 };
        const char *seed = seeds[next_random() % (sizeof seeds / sizeof *seeds)];
        put(&b, seed, strlen(seed));
        mutate(&b);
        char *whole = parse_whole(b.p, b.n, "B");
        if (strstr(whole, "problem ")) {
            bad = malloc(b.n + strlen(whole) + 100);
            sprintf(bad, "%s", whole);
        } else if (strstr(whole, "status 0 ")) {        /* parsed: the plain reading agrees */
            buf want = { 0 }, got = { 0 };
            int rc = reference_data(b.p, b.n, "B", &want);
            canonical_data(whole, &got);
            if (rc != 0 || want.n != got.n || (want.n && memcmp(want.p, got.p, want.n) != 0)) {
                bad = malloc(b.n + strlen(whole) + want.n + 200);
                sprintf(bad, "the plain reading (%d) differs on:\n%.*s\nparser:\n%s\nplain:\n%.*s", rc,
                        (int)b.n, b.p, whole, (int)want.n, want.p ? want.p : "");
            }
            free(want.p);
            free(got.p);
        }
        if (!bad) {
            size_t cuts[64];
            for (int k = 0; k < 4 && !bad; k++) {
                int nc = random_cuts(b.n, cuts, 64);
                char *r = parse(b.p, b.n, "B", cuts, nc, NULL);
                if (strcmp(r, whole) != 0) {
                    bad = malloc(strlen(r) + strlen(whole) + 100);
                    sprintf(bad, "whole:\n%s\nsplit:\n%s", whole, r);
                }
                free(r);
            }
            if (!bad && i % 16 == 0) {
                char *why = split_invariant(b.p, b.n, "B", whole, 0, 0, NULL);
                if (why) bad = why;
            }
        }
        char out[SESH_MULTIPART_MAX_BOUNDARY + 1];
        sesh_multipart_sniff(b.p, b.n, i & 1, out, sizeof out);      /* must not crash */
        free(whole);
        free(b.p);
    }
    check(!bad, label, "%s", bad ? bad : "");
    free(bad);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: driver CASES_DIR [FILTER]\n");
        return 2;
    }
    filter = argc > 2 ? argv[2] : NULL;
    const char *f = getenv("MULTIPART_FUZZ");
    const char *p = getenv("MULTIPART_PAIRS");
    if (p) pairs_upto = (size_t)atol(p);
    int n = real_cases(argv[1]);
    if (!filter) check(n >= 40, "bodies of requests, httpx, aiohttp and Semantic Kernel", "only %d cases", n);
    hand_cases();
    endless_part();
    runs();
    stops();
    constructor();
    boundary_param();
    sniffing();
    fuzz(f ? atoi(f) : 4000);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
