/*
 * files.h — the operations on a session's files, done on the host side
 * inside the session directory (the sandbox's /mnt/data).
 *
 * The sandboxed code owns that directory and is hostile: it can plant
 * symlinks, FIFOs and odd modes there. So every path is resolved with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) from the directory's own
 * descriptor: nothing outside it is ever read or written, whatever the names.
 * Uploads are written to a hidden temporary file and renamed into place, so
 * a reader never sees half a file.
 */
#ifndef SESH_POOL_FILES_H
#define SESH_POOL_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef enum {
    SESH_FILES_OK = 0,
    SESH_FILES_BAD_NAME,      /* 400: .., absolute, empty, too long */
    SESH_FILES_NOT_FOUND,     /* 404: missing, or resolves outside the directory */
    SESH_FILES_CONFLICT,      /* 409: a directory where a file is expected, or the reverse */
    SESH_FILES_TOO_LARGE,     /* 413 */
    SESH_FILES_IO             /* 500 */
} sesh_files_status;

typedef struct sesh_file_info {
    char *name;               /* base name */
    char *directory;          /* parent, relative to the listed directory ("" at its top) */
    int is_dir;
    uint64_t size;
    uint64_t disk_bytes;      /* the blocks it holds, in bytes (what the disk limit counts) */
    struct timespec mtime;
} sesh_file_info;

typedef struct sesh_file_list {
    sesh_file_info *items;
    size_t n, cap;
} sesh_file_list;

/* Normalizes a client's file or directory name into a path relative to
 * /mnt/data: a leading "/mnt/data/" is stripped, "." parts dropped. Refuses
 * "..", other absolute paths, control characters and over-long names.
 * allow_empty: "" (the top directory) is acceptable. */
sesh_files_status sesh_files_clean_name(const char *in, int allow_empty, char **out, char **err);

/* The whole check of a name an upload would create (a cleaned relative
 * path, directories included), before anything is created: UTF-8 (a name
 * the API could not list is refused), and no part named like the pool's
 * own temporary files (UPLOAD_PREFIX, ".sesh-upload-"). */
sesh_files_status sesh_files_check_new_name(const char *rel, char **err);

/* Joins two cleaned relative paths ("" is the top). malloc'd. */
char *sesh_files_join(const char *dir, const char *name);

sesh_files_status sesh_files_stat(int root, const char *rel, sesh_file_info *info, char **err);
sesh_files_status sesh_files_list(int root, const char *rel_dir, int recursive,
                                  sesh_file_list *out, char **err);
void sesh_file_list_free(sesh_file_list *l);
void sesh_file_info_free(sesh_file_info *i);

/* Opens a regular file for reading; *size is its size. */
sesh_files_status sesh_files_open_read(int root, const char *rel, int *fd, uint64_t *size, char **err);

/* Removes a file, or an empty directory; *freed (may be NULL): the blocks
 * that went with it, in bytes. */
sesh_files_status sesh_files_delete(int root, const char *rel, uint64_t *freed, char **err);

/* Streaming upload: begin checks the name (sesh_files_check_new_name),
 * then creates the parent directories and a temporary file beside the
 * target (".sesh-upload-" and 16 hex digits; listings skip it while the
 * upload runs, and only it); write appends (refusing beyond max bytes);
 * commit renames it over the final name; abort removes it. Owner (uid, gid)
 * is applied when the pool runs as root, to what begin creates and to the
 * file at commit (the owner may have changed in between); -1 leaves it.
 * Commit's *replaced (may be NULL): the blocks, in bytes, of the file the
 * upload replaced (0 when there was none, or it has other links). */
typedef struct sesh_upload sesh_upload;
sesh_files_status sesh_upload_begin(int root, const char *rel, uint64_t max, uid_t uid, gid_t gid,
                                    sesh_upload **up, char **err);
sesh_files_status sesh_upload_write(sesh_upload *up, const void *data, size_t n, char **err);
sesh_files_status sesh_upload_commit(sesh_upload *up, uid_t uid, gid_t gid, sesh_file_info *info,
                                     uint64_t *replaced, char **err);
void sesh_upload_abort(sesh_upload *up);
uint64_t sesh_upload_size(const sesh_upload *up);

/* Removes a directory tree without following any symlink in it; the
 * directory itself too. 0 on success. */
int sesh_files_remove_tree(int parent, const char *name);

/* A Content-Type for a file name, from its extension. */
const char *sesh_files_content_type(const char *name);

#endif
