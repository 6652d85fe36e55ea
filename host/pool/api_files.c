/*
 * api_files.c — the file operations of both generations: upload (streamed
 * to disk as the multipart body arrives), list, metadata, download, delete.
 * The safety of names and paths is files.c's; the shapes are here.
 */
#include "pool/api_ops.h"
#include "pool/multipart.h"
#include "pool/sandbox_disk.h"
#include "pool/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void files_error(sesh_reply *reply, sesh_files_status st, const char *target, char *msg)
{
    const char *m = msg ? msg : "file operation failed";
    switch (st) {
    case SESH_FILES_BAD_NAME: sesh_reply_error(reply, 400, "InvalidFileName", target, "%s", m); break;
    case SESH_FILES_NOT_FOUND: sesh_reply_error(reply, 404, "FileNotFound", target, "%s", m); break;
    case SESH_FILES_CONFLICT: sesh_reply_error(reply, 409, "Conflict", target, "%s", m); break;
    case SESH_FILES_TOO_LARGE: sesh_reply_error(reply, 413, "PayloadTooLarge", target, "%s", m); break;
    default: sesh_reply_error(reply, 500, "InternalServerError", target, "%s", m); break;
    }
    free(msg);
}


/* The second generation's optional `path` (a directory), cleaned. */
static int base_dir(sesh_call *call, char **dir, sesh_reply *reply)
{
    char *err = NULL;
    *dir = NULL;
    if (call->gen != 2 || !call->query_path) {
        *dir = sesh_xstrdup("");
        return 0;
    }
    sesh_files_status st = sesh_files_clean_name(call->query_path, 1, dir, &err);
    if (st != SESH_FILES_OK) {
        files_error(reply, st, "path", err);
        return -1;
    }
    return 0;
}

/* The file a path or query names, relative to /mnt/data. */
static int target_name(sesh_call *call, const char *name, char **rel, sesh_reply *reply)
{
    char *dir, *clean = NULL, *err = NULL;
    *rel = NULL;
    if (base_dir(call, &dir, reply) != 0) return -1;
    sesh_files_status st = sesh_files_clean_name(name, 0, &clean, &err);
    if (st != SESH_FILES_OK) {
        free(dir);
        files_error(reply, st, call->gen == 1 ? "filename" : "name", err);
        return -1;
    }
    *rel = sesh_files_join(dir, clean);
    free(dir);
    free(clean);
    return 0;
}

static json_t *gen1_entry(const sesh_file_info *f, int *next_id, const char *name)
{
    char when[48], a[16], b[16];
    sesh_format_time(when, f->mtime, 7);
    snprintf(a, sizeof a, "%d", (*next_id)++);
    snprintf(b, sizeof b, "%d", (*next_id)++);
    json_t *props = json_pack("{s:s, s:s, s:I, s:s}", "$id", b, "filename", name,
                              "size", (json_int_t)f->size, "lastModifiedTime", when);
    if (!props) return NULL;        /* a name that is not UTF-8 */
    return json_pack("{s:s, s:o}", "$id", a, "properties", props);
}

static json_t *gen2_resource(const sesh_call *call, const sesh_file_info *f)
{
    char when[48];
    sesh_format_time(when, f->mtime, 3);
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s}", "name", f->name,
                          "type", f->is_dir ? "Directory" : "File",
                          "contentType", f->is_dir ? "application/octet-stream" : sesh_files_content_type(f->name),
                          "sizeInBytes", (json_int_t)f->size, "lastModifiedAt", when);
    if (!j) return NULL;
    if (strcmp(call->api_version, "2025-10-02-preview") == 0) {
        json_t *d = json_string(f->directory);
        json_object_set_new(j, "directory", d ? d : json_string(""));
    }
    return j;
}

static int parse_bool(const char *s, int *out)
{
    if (!s) { *out = 0; return 0; }
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0) { *out = 1; return 0; }
    if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0 || !*s) { *out = 0; return 0; }
    return -1;
}

void sesh_op_list(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    int recursive = 0;
    if (call->gen == 2 && parse_bool(call->recursive, &recursive) != 0) {
        sesh_reply_error(reply, 400, "InvalidParameter", "recursive",
                         "recursive must be true or false, not '%.32s'", call->recursive);
        return;
    }
    char *dir;
    if (base_dir(call, &dir, reply) != 0) return;
    if (sesh_api_session(api, call, 1, reply) != 0) {
        free(dir);
        return;
    }
    sesh_file_list list;
    char *err = NULL;
    sesh_files_status st = sesh_files_list(sesh_session_dirfd(call->session), dir, recursive, &list, &err);
    free(dir);
    if (st != SESH_FILES_OK) {
        files_error(reply, st, "path", err);
        return;
    }
    json_t *value = json_array();
    int next_id = 2;
    for (size_t i = 0; i < list.n; i++) {
        json_t *entry = call->gen == 1
            ? (list.items[i].is_dir ? NULL : gen1_entry(&list.items[i], &next_id, list.items[i].name))
            : gen2_resource(call, &list.items[i]);
        if (entry) json_array_append_new(value, entry);
    }
    sesh_file_list_free(&list);
    if (call->gen == 1)
        sesh_reply_json(reply, 200, json_pack("{s:s, s:o}", "$id", "1", "value", value));
    else
        sesh_reply_json(reply, 200, json_pack("{s:o, s:n}", "value", value, "nextLink"));
}

void sesh_op_file_get(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    char *rel, *err = NULL;
    if (target_name(call, call->name, &rel, reply) != 0) return;
    if (sesh_api_session(api, call, 1, reply) != 0) {
        free(rel);
        return;
    }
    sesh_file_info info;
    sesh_files_status st = sesh_files_stat(sesh_session_dirfd(call->session), rel, &info, &err);
    free(rel);
    if (st != SESH_FILES_OK) {
        files_error(reply, st, "name", err);
        return;
    }
    json_t *j = gen2_resource(call, &info);
    sesh_file_info_free(&info);
    if (!j) sesh_reply_error(reply, 500, "InternalServerError", "name", "the file name is not UTF-8");
    else sesh_reply_json(reply, 200, j);
}

void sesh_op_file_delete(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    char *rel, *err = NULL;
    if (target_name(call, call->name, &rel, reply) != 0) return;
    if (sesh_api_session(api, call, 1, reply) != 0) {
        free(rel);
        return;
    }
    uint64_t freed = 0;
    sesh_files_status st = sesh_files_delete(sesh_session_dirfd(call->session), rel, &freed, &err);
    sesh_quota_freed(sesh_session_quota(call->session), freed);
    sesh_session_files_changed(call->session);
    free(rel);
    if (st != SESH_FILES_OK) {
        files_error(reply, st, "name", err);
        return;
    }
    reply->status = 204;
}

void sesh_op_download(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    char *rel, *err = NULL;
    if (target_name(call, call->name, &rel, reply) != 0) return;
    if (sesh_api_session(api, call, 1, reply) != 0) {
        free(rel);
        return;
    }
    int fd;
    uint64_t size;
    sesh_files_status st = sesh_files_open_read(sesh_session_dirfd(call->session), rel, &fd, &size, &err);
    if (st != SESH_FILES_OK) {
        free(rel);
        files_error(reply, st, call->gen == 1 ? "filename" : "name", err);
        return;
    }
    reply->status = 200;
    reply->fd = fd;
    reply->fd_size = size;
    reply->fd_type = sesh_files_content_type(rel);
    free(rel);
}

/* ---- the disk an upload may use ----
 * Two limits: the session's (--max-disk, quota.h), counting what its
 * /mnt/data holds and every upload of it in flight; and the host's
 * (--min-free-disk), the free space the sessions' file system keeps. Both
 * are checked before an upload writes (with the size the body announces) and
 * for each piece it writes, so a refused upload leaves nothing behind. */

int sesh_session_disk_room(sesh_session *s, uint64_t min_free, uint64_t n, int take,
                           uint64_t done, sesh_reply *reply)
{
    int dirfd = sesh_session_dirfd(s);
    sesh_quota *q = sesh_session_quota(s);
    sesh_quota_view v;
    sesh_quota_status st = take ? sesh_quota_take(q, dirfd, n, &v) : sesh_quota_check(q, dirfd, n, &v);
    if (st == SESH_QUOTA_UNKNOWN) {
        sesh_reply_error(reply, 413, "SessionDiskLimitExceeded", "file",
                         "/mnt/data holds more than %d files, or directories nested deeper than %d "
                         "levels, so the session's disk limit (--max-disk) cannot be checked: "
                         "uploads are refused until files are deleted",
                         SESH_DISK_MAX_ENTRIES, SESH_DISK_MAX_DEPTH);
        return -1;
    }
    if (st == SESH_QUOTA_OVER) {
        sesh_reply_error(reply, 413, "SessionDiskLimitExceeded", "file",
                         "the upload does not fit in the session's disk limit of %llu bytes "
                         "(--max-disk): /mnt/data holds %llu bytes and uploads in progress %llu, "
                         "and this one %s %llu bytes; delete files to make room",
                         (unsigned long long)v.limit, (unsigned long long)v.held,
                         (unsigned long long)v.in_flight, done ? "was stopped after" : "announces",
                         (unsigned long long)(done ? done : n));
        return -1;
    }
    uint64_t floor = min_free;
    unsigned long long avail = floor ? sesh_disk_available(dirfd) : 0;
    if (floor && (avail < floor || n > avail - floor)) {
        if (take) sesh_quota_done(q, n, 0, 0);
        sesh_reply_error(reply, 507, "InsufficientStorage", "file",
                         "the pool's disk has %llu bytes free and keeps at least %llu free for the "
                         "host (--min-free-disk): the upload%s was refused; retry later, or delete files",
                         avail, (unsigned long long)floor, done ? " was stopped and" : "");
        return -1;
    }
    return 0;
}

int sesh_op_upload_room(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    uint64_t announced = call->content_length > SESH_MULTIPART_FRAMING
        ? (uint64_t)call->content_length - SESH_MULTIPART_FRAMING : 0;
    return sesh_session_disk_room(call->session, api->cfg.min_free_disk, announced, 0, 0, reply);
}

/* The upload in flight is dropped: its file goes, its bytes are given back. */
static void upload_drop(sesh_call *call)
{
    sesh_upload_abort(call->upload);
    call->upload = NULL;
    sesh_quota_done(sesh_session_quota(call->session), call->upload_taken, 0, 0);
    call->upload_taken = 0;
}

int sesh_op_upload_data(sesh_api *api, sesh_call *call, const char *filename,
                        const char *data, uint64_t off, size_t size, sesh_reply *reply)
{
    if (call->upload_done) return 0;             /* only the first part named `file` counts */
    if (call->upload_seen && off == 0 && !call->upload) return 0;
    if (!call->upload) {
        if (call->upload_seen) return 0;
        call->upload_seen = 1;
        if (!filename || !*filename) {
            sesh_reply_error(reply, 400, "InvalidFileName", "file",
                             "the part 'file' has no filename: it names the file in /mnt/data");
            return -1;
        }
        char *rel;
        if (target_name(call, filename, &rel, reply) != 0) return -1;
        char *err = NULL;
        uid_t uid;
        gid_t gid;
        sesh_session_files_begin(call->session, &uid, &gid);
        sesh_files_status st = sesh_upload_begin(sesh_session_dirfd(call->session), rel, api->cfg.max_upload,
                                                 uid, gid, &call->upload, &err);
        sesh_session_files_end(call->session);
        if (st != SESH_FILES_OK) {
            free(rel);
            files_error(reply, st, "file", err);
            return -1;
        }
        call->upload_name = rel;
    } else if (off == 0 && size > 0 && sesh_upload_size(call->upload) > 0) {
        call->upload_done = 1;                   /* a second part named `file` */
        return 0;
    }
    if (size == 0) return 0;
    if (sesh_session_disk_room(call->session, api->cfg.min_free_disk, size, 1, call->upload_taken,
                               reply) != 0) {
        upload_drop(call);
        return -1;
    }
    call->upload_taken += size;
    char *err = NULL;
    sesh_files_status st = sesh_upload_write(call->upload, data, size, &err);
    if (st == SESH_FILES_TOO_LARGE) {
        free(err);
        err = sesh_printf("the file is larger than %llu bytes, the largest upload this pool takes "
                          "(sesh-pool --max-upload raises the limit)", (unsigned long long)api->cfg.max_upload);
    }
    if (st != SESH_FILES_OK) {
        upload_drop(call);
        files_error(reply, st, "file", err);
        return -1;
    }
    return 0;
}

/* ---- the raw body of an upload ----
 * Parsed here as it arrives (multipart.h); only the part named `file`
 * counts, the first one: a later one is read and ignored. */

struct sesh_upload_body {
    sesh_api *api;
    sesh_call *call;
    sesh_reply *reply;          /* of the piece being fed */
    sesh_multipart *mp;         /* NULL while the boundary is still sniffed */
    char *head;                 /* the body's first bytes, while sniffing */
    size_t nhead;
    uint64_t bytes;             /* of the body so far */
};

static int on_part(void *ctx, sesh_multipart_event ev, const sesh_multipart_part *part,
                   const char *data, uint64_t off, size_t size)
{
    struct sesh_upload_body *u = ctx;
    if (strcmp(part->name, "file") != 0) return 0;
    if (ev == SESH_MULTIPART_END) {
        if (u->call->upload) u->call->upload_done = 1;
        return 0;
    }
    /* BEGIN (no data) checks the name and opens the file, DATA writes. */
    return sesh_op_upload_data(u->api, u->call, part->filename, data, off, size, u->reply) != 0;
}

static int body_malformed(struct sesh_upload_body *u)
{
    if (u->call->upload) upload_drop(u->call);
    sesh_reply_error(u->reply, 400, "InvalidMultipartBody", NULL,
                     "the multipart/form-data body is malformed: %s", sesh_multipart_error(u->mp));
    return -1;
}

static int body_feed(struct sesh_upload_body *u, const char *data, size_t size)
{
    sesh_multipart_status st = sesh_multipart_feed(u->mp, data, size);
    if (st == SESH_MULTIPART_MALFORMED) return body_malformed(u);
    return st == SESH_MULTIPART_OK ? 0 : -1;        /* stopped: the reply says why */
}

static int body_parser(struct sesh_upload_body *u, const char *boundary)
{
    const char *why = NULL;
    u->mp = sesh_multipart_new(boundary, on_part, u, &why);
    if (!u->mp) {
        sesh_reply_error(u->reply, 400, "InvalidMultipartBody", NULL, "%s", why);
        return -1;
    }
    return 0;
}

/* Not sent as multipart/form-data with a boundary: the body is one only
 * when it starts as one (Semantic Kernel's uploads under application/json). */
static int body_sniff(struct sesh_upload_body *u, const char *data, size_t size, int complete)
{
    size_t take = size < SESH_MULTIPART_SNIFF_MAX - u->nhead ? size : SESH_MULTIPART_SNIFF_MAX - u->nhead;
    if (!u->head) u->head = sesh_xmalloc(SESH_MULTIPART_SNIFF_MAX);
    memcpy(u->head + u->nhead, data, take);
    u->nhead += take;
    char boundary[SESH_MULTIPART_MAX_BOUNDARY + 1];
    sesh_sniff s = sesh_multipart_sniff(u->head, u->nhead, complete, boundary, sizeof boundary);
    if (s == SESH_SNIFF_MORE) return 0;
    if (s == SESH_SNIFF_NO) {
        const char *ct = u->call->content_type;
        sesh_reply_error(u->reply, 415, "UnsupportedMediaType", NULL,
                         "an upload must be multipart/form-data with a part named 'file'; this one is "
                         "'%.100s' and its body does not start with a multipart boundary line and a "
                         "form-data part", ct ? ct : "(no Content-Type)");
        return -1;
    }
    int rc = body_parser(u, boundary);
    if (rc == 0) rc = body_feed(u, u->head, u->nhead);
    if (rc == 0 && take < size) rc = body_feed(u, data + take, size - take);
    free(u->head);
    u->head = NULL;
    return rc;
}

int sesh_op_upload_body(sesh_api *api, sesh_call *call, const char *data, size_t size, sesh_reply *reply)
{
    struct sesh_upload_body *u = call->upload_body;
    if (!u) {
        u = call->upload_body = sesh_xcalloc(1, sizeof *u);
        u->api = api;
        u->call = call;
        u->reply = reply;
        if (call->upload_boundary && body_parser(u, call->upload_boundary) != 0) return -1;
    }
    u->reply = reply;
    u->bytes += size;
    /* A body without Content-Length (chunked) is held to the same size. */
    if (u->bytes > api->cfg.max_upload + SESH_MULTIPART_FRAMING) {
        if (call->upload) upload_drop(call);
        sesh_reply_error(reply, 413, "PayloadTooLarge", NULL,
                         "the upload's body is over %llu bytes; files up to %llu bytes are accepted "
                         "(sesh-pool --max-upload raises the limit)",
                         (unsigned long long)(api->cfg.max_upload + SESH_MULTIPART_FRAMING),
                         (unsigned long long)api->cfg.max_upload);
        return -1;
    }
    if (!u->mp) return body_sniff(u, data, size, 0);
    return body_feed(u, data, size);
}

/* The body has ended: it must have been whole. 0, or -1 with the error. */
static int upload_body_end(struct sesh_upload_body *u, sesh_reply *reply)
{
    u->reply = reply;
    if (!u->mp && body_sniff(u, "", 0, 1) != 0) return -1;
    sesh_multipart_status st = sesh_multipart_finish(u->mp);
    if (st == SESH_MULTIPART_MALFORMED) return body_malformed(u);
    return st == SESH_MULTIPART_OK ? 0 : -1;
}

void sesh_op_upload_body_free(sesh_call *call)
{
    struct sesh_upload_body *u = call->upload_body;
    if (u) {
        sesh_multipart_free(u->mp);
        free(u->head);
        free(u);
        call->upload_body = NULL;
    }
    free(call->upload_boundary);
    call->upload_boundary = NULL;
}

void sesh_op_upload_finish(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    if (call->upload_body && upload_body_end(call->upload_body, reply) != 0) return;
    if (!call->upload) {
        sesh_reply_error(reply, 400, "MissingFile", "file",
                         "the multipart body has no part named 'file'");
        return;
    }
    char *err = NULL;
    sesh_upload *up = call->upload;
    call->upload = NULL;
    sesh_file_info info;
    memset(&info, 0, sizeof info);
    uid_t uid;
    gid_t gid;
    uint64_t replaced = 0;
    sesh_session_files_begin(call->session, &uid, &gid);
    sesh_files_status st = sesh_upload_commit(up, uid, gid, &info, &replaced, &err);
    sesh_session_files_end(call->session);
    sesh_quota_done(sesh_session_quota(call->session), call->upload_taken,
                    st == SESH_FILES_OK ? info.disk_bytes : 0, replaced);
    call->upload_taken = 0;
    sesh_session_files_changed(call->session);
    if (st != SESH_FILES_OK) {
        files_error(reply, st, "file", err);
        return;
    }
    json_t *j;
    if (call->gen == 1) {
        int next_id = 2;
        json_t *entry = gen1_entry(&info, &next_id, call->upload_name);
        j = entry ? json_pack("{s:s, s:[o]}", "$id", "1", "value", entry) : NULL;
    } else {
        j = gen2_resource(call, &info);
    }
    sesh_file_info_free(&info);
    if (!j) sesh_reply_error(reply, 400, "InvalidFileName", "file", "the file name is not UTF-8");
    else sesh_reply_json(reply, 200, j);
}
