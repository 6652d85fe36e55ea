/*
 * files.c — see files.h. Every lookup goes through open_beneath().
 */
#include "pool/files.h"
#include "pool/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_NAME_BYTES   1024      /* a whole relative path */
#define MAX_PART_BYTES   255       /* one component (NAME_MAX) */
#define MAX_LIST_ITEMS   10000
#define MAX_LIST_DEPTH   32
#define MAX_REMOVE_DEPTH 4096
#define UPLOAD_PREFIX    ".sesh-upload-"
#define UPLOAD_HEX       16        /* random hex digits after it */

#define MAX_LINKS 40                /* symlinks followed in one lookup, like the kernel */

/* The same walk as RESOLVE_BENEATH, by hand, for kernels before 5.6 (and
 * valgrind, which does not know openat2): one component at a time, never
 * following a link the kernel would follow for us (O_NOFOLLOW), links read
 * and resolved here, ".." never above the start, absolute links refused. */
static int open_beneath_walk(int dirfd, const char *rel, int flags)
{
    int stack[MAX_REMOVE_DEPTH > 256 ? 256 : MAX_REMOVE_DEPTH];
    int depth = 0, links = 0, rc = -EINVAL;
    char *path = sesh_xstrdup(rel && *rel ? rel : ".");
    int cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) { free(path); return -errno; }
    char *p = path;
    for (;;) {
        while (*p == '/') p++;
        char *end = strchrnul(p, '/');
        int last = true;
        for (char *q = end; *q; q++) if (*q != '/') { last = false; break; }
        char saved = *end;
        *end = '\0';
        if (*p == '\0' || strcmp(p, ".") == 0) {
            if (last) { rc = openat(cur, ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC); rc = rc < 0 ? -errno : rc; break; }
        } else if (strcmp(p, "..") == 0) {
            if (depth == 0) { rc = -EXDEV; break; }
            close(cur);
            cur = stack[--depth];
            if (last) { rc = openat(cur, ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC); rc = rc < 0 ? -errno : rc; break; }
        } else {
            struct stat st;
            if (fstatat(cur, p, &st, AT_SYMLINK_NOFOLLOW) != 0) { rc = -errno; break; }
            if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlinkat(cur, p, target, sizeof target - 1);
                if (n < 0) { rc = -errno; break; }
                target[n] = '\0';
                if (target[0] == '/') { rc = -EXDEV; break; }
                if (++links > MAX_LINKS) { rc = -ELOOP; break; }
                *end = saved;
                char *rest = sesh_printf("%s%s%s", target, saved ? "/" : "", saved ? end + 1 : "");
                free(path);
                path = p = rest;
                continue;
            }
            if (last) {
                rc = openat(cur, p, flags | O_NOFOLLOW | O_CLOEXEC);
                rc = rc < 0 ? -errno : rc;
                break;
            }
            if (!S_ISDIR(st.st_mode)) { rc = -ENOTDIR; break; }
            if (depth == (int)(sizeof stack / sizeof stack[0])) { rc = -ENAMETOOLONG; break; }
            int next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0) { rc = -errno; break; }
            stack[depth++] = cur;
            cur = next;
        }
        *end = saved;
        p = end;
    }
    close(cur);
    while (depth > 0) close(stack[--depth]);
    free(path);
    return rc;
}

static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
    /* SESH_POOL_NO_OPENAT2=1 takes the hand-made walk even where openat2
     * exists, so that the tests cover it too. */
    static atomic_int no_openat2 = -1;
    if (atomic_load(&no_openat2) < 0) {
        const char *v = getenv("SESH_POOL_NO_OPENAT2");
        atomic_store(&no_openat2, v && *v == '1');
    }
    if (!atomic_load(&no_openat2)) {
        struct open_how how = {
            .flags = (uint64_t)flags | O_CLOEXEC,
            .mode = (flags & O_CREAT) ? mode : 0,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dirfd, (rel && *rel) ? rel : ".", &how, sizeof how);
        if (fd >= 0) return (int)fd;
        if (errno != ENOSYS) return -errno;
        atomic_store(&no_openat2, 1);
    }
    return open_beneath_walk(dirfd, rel, flags);
}

static sesh_files_status fail(sesh_files_status st, char **err, const char *fmt, const char *name)
{
    if (err) *err = sesh_printf(fmt, name);
    return st;
}

/* Maps an errno from a lookup to a status and a message naming the file. */
static sesh_files_status lookup_error(int e, const char *rel, char **err)
{
    switch (e) {
    case ENOENT: case ENOTDIR:
        return fail(SESH_FILES_NOT_FOUND, err, "file '%s' does not exist", rel);
    case EXDEV:
        return fail(SESH_FILES_NOT_FOUND, err,
                    "file '%s' resolves outside /mnt/data (a symbolic link): refused", rel);
    case ELOOP:
        return fail(SESH_FILES_NOT_FOUND, err, "file '%s' is a loop of symbolic links", rel);
    case ENAMETOOLONG:
        return fail(SESH_FILES_BAD_NAME, err, "file name '%.64s...' is too long", rel);
    case EISDIR:
        return fail(SESH_FILES_CONFLICT, err, "'%s' is a directory", rel);
    default:
        if (err) *err = sesh_printf("cannot open '%s': %s", rel, strerror(e));
        return SESH_FILES_IO;
    }
}

sesh_files_status sesh_files_clean_name(const char *in, int allow_empty, char **out, char **err)
{
    *out = NULL;
    if (!in) in = "";
    if (strncmp(in, "/mnt/data", 9) == 0 && (in[9] == '/' || in[9] == '\0'))
        in += 9;
    else if (in[0] == '/')
        return fail(SESH_FILES_BAD_NAME, err, "file name '%.200s' is an absolute path outside /mnt/data", in);
    size_t len = strlen(in);
    if (len > MAX_NAME_BYTES)
        return fail(SESH_FILES_BAD_NAME, err, "file name '%.64s...' is too long (at most 1024 bytes)", in);
    char *res = sesh_xmalloc(len + 1);
    size_t n = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/') p++;
        const char *end = strchrnul(p, '/');
        size_t part = (size_t)(end - p);
        if (part == 0) break;
        for (const char *c = p; c < end; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                free(res);
                return fail(SESH_FILES_BAD_NAME, err, "file name '%.200s' holds a control character", in);
            }
        if (part == 2 && p[0] == '.' && p[1] == '.') {
            free(res);
            return fail(SESH_FILES_BAD_NAME, err, "file name '%.200s' climbs out with '..'", in);
        }
        if (part > MAX_PART_BYTES) {
            free(res);
            return fail(SESH_FILES_BAD_NAME, err, "a part of file name '%.64s...' is longer than 255 bytes", in);
        }
        if (!(part == 1 && p[0] == '.')) {
            if (n) res[n++] = '/';
            memcpy(res + n, p, part);
            n += part;
        }
        p = end;
    }
    res[n] = '\0';
    if (n == 0 && !allow_empty) {
        free(res);
        return fail(SESH_FILES_BAD_NAME, err, "file name '%s' is empty", in);
    }
    *out = res;
    return SESH_FILES_OK;
}

sesh_files_status sesh_files_check_new_name(const char *rel, char **err)
{
    if (!sesh_utf8_valid(rel, strlen(rel)))
        return fail(SESH_FILES_BAD_NAME, err, "%s",
                    "the file name is not UTF-8 text: the API could not list it");
    for (const char *p = rel; *p;) {
        if (strncmp(p, UPLOAD_PREFIX, sizeof UPLOAD_PREFIX - 1) == 0)
            return fail(SESH_FILES_BAD_NAME, err,
                        "file name '%.200s': names starting with '" UPLOAD_PREFIX "' are the "
                        "pool's own (uploads in progress)", rel);
        const char *slash = strchr(p, '/');
        if (!slash) break;
        p = slash + 1;
    }
    return SESH_FILES_OK;
}

/* ---- the temporary files of uploads in progress ----
 * Listings skip exactly these (by name: 16 random hex digits, unique in the
 * pool), so a file the session's code names like them is still listed. */

static pthread_mutex_t temps_lock = PTHREAD_MUTEX_INITIALIZER;
static char (*temps)[sizeof UPLOAD_PREFIX + UPLOAD_HEX];
static size_t ntemps, temps_cap;

static void temp_add(const char *name)
{
    pthread_mutex_lock(&temps_lock);
    if (ntemps == temps_cap) {
        temps_cap = temps_cap ? temps_cap * 2 : 16;
        temps = sesh_xrealloc(temps, temps_cap * sizeof *temps);
    }
    snprintf(temps[ntemps++], sizeof *temps, "%s", name);
    pthread_mutex_unlock(&temps_lock);
}

static void temp_remove(const char *name)
{
    pthread_mutex_lock(&temps_lock);
    for (size_t i = 0; i < ntemps; i++)
        if (strcmp(temps[i], name) == 0) {
            memcpy(temps[i], temps[--ntemps], sizeof *temps);
            break;
        }
    if (ntemps == 0) {              /* nothing in flight: nothing kept */
        free(temps);
        temps = NULL;
        temps_cap = 0;
    }
    pthread_mutex_unlock(&temps_lock);
}

static int temp_in_flight(const char *name)
{
    if (strncmp(name, UPLOAD_PREFIX, sizeof UPLOAD_PREFIX - 1) != 0 ||
        strlen(name) != sizeof UPLOAD_PREFIX - 1 + UPLOAD_HEX)
        return 0;
    int found = 0;
    pthread_mutex_lock(&temps_lock);
    for (size_t i = 0; i < ntemps && !found; i++)
        found = strcmp(temps[i], name) == 0;
    pthread_mutex_unlock(&temps_lock);
    return found;
}

char *sesh_files_join(const char *dir, const char *name)
{
    if (!dir || !*dir) return sesh_xstrdup(name);
    if (!name || !*name) return sesh_xstrdup(dir);
    return sesh_printf("%s/%s", dir, name);
}

static void split_path(const char *rel, char **dir, char **base)
{
    const char *slash = strrchr(rel, '/');
    if (slash) {
        *dir = strndup(rel, (size_t)(slash - rel));
        *base = sesh_xstrdup(slash + 1);
        if (!*dir) abort();
    } else {
        *dir = sesh_xstrdup("");
        *base = sesh_xstrdup(rel);
    }
}

static void fill_info(sesh_file_info *info, const char *name, const char *directory, const struct stat *st)
{
    info->name = sesh_xstrdup(name);
    info->directory = sesh_xstrdup(directory);
    info->is_dir = S_ISDIR(st->st_mode);
    info->size = (uint64_t)st->st_size;
    info->disk_bytes = (uint64_t)st->st_blocks * 512;
    info->mtime = st->st_mtim;
}

void sesh_file_info_free(sesh_file_info *i)
{
    if (!i) return;
    free(i->name);
    free(i->directory);
    i->name = i->directory = NULL;
}

sesh_files_status sesh_files_stat(int root, const char *rel, sesh_file_info *info, char **err)
{
    memset(info, 0, sizeof *info);
    int fd = open_beneath(root, rel, O_PATH, 0);
    if (fd < 0) return lookup_error(-fd, rel, err);
    struct stat st;
    int rc = fstat(fd, &st);
    close(fd);
    if (rc != 0) return lookup_error(errno, rel, err);
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return fail(SESH_FILES_NOT_FOUND, err, "'%s' is not a regular file", rel);
    char *dir, *base;
    split_path(rel, &dir, &base);
    fill_info(info, *base ? base : ".", dir, &st);
    free(dir);
    free(base);
    return SESH_FILES_OK;
}

static void list_push(sesh_file_list *l, const char *name, const char *dir, const struct stat *st)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = sesh_xrealloc(l->items, l->cap * sizeof *l->items);
    }
    fill_info(&l->items[l->n++], name, dir, st);
}

void sesh_file_list_free(sesh_file_list *l)
{
    for (size_t i = 0; i < l->n; i++) sesh_file_info_free(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Reads the names of a directory (without . and ..) and closes nothing. */
static char **read_names(int dirfd, size_t *count)
{
    *count = 0;
    int dup_fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup_fd < 0) return NULL;
    DIR *d = fdopendir(dup_fd);
    if (!d) { close(dup_fd); return NULL; }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = sesh_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = sesh_xstrdup(e->d_name);
    }
    closedir(d);
    *count = n;
    return names;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists dirfd, which is `base` below root; entries are named relative to
 * the listed top by `prefix`. Links are resolved from root, so one that goes
 * up and back down inside /mnt/data counts, and one that leaves does not. */
static void list_dir(int root, const char *base, int dirfd, const char *prefix, int recursive, int depth,
                     sesh_file_list *out)
{
    size_t n;
    char **names = read_names(dirfd, &n);
    if (n > 1) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        struct stat st;
        if (out->n >= MAX_LIST_ITEMS) break;
        if (temp_in_flight(name)) continue;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        int is_link = S_ISLNK(st.st_mode);
        if (is_link) {
            /* A link counts for what it points at, if that is inside. */
            char *full = sesh_files_join(base, name);
            int fd = open_beneath(root, full, O_PATH, 0);
            free(full);
            if (fd < 0) continue;
            int ok = fstat(fd, &st) == 0;
            close(fd);
            if (!ok) continue;
        }
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;
        list_push(out, name, prefix, &st);
        if (S_ISDIR(st.st_mode) && recursive && !is_link && depth < MAX_LIST_DEPTH) {
            int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                char *p = sesh_files_join(prefix, name), *b = sesh_files_join(base, name);
                list_dir(root, b, sub, p, recursive, depth + 1, out);
                free(p);
                free(b);
                close(sub);
            }
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

sesh_files_status sesh_files_list(int root, const char *rel_dir, int recursive,
                                  sesh_file_list *out, char **err)
{
    memset(out, 0, sizeof *out);
    int fd = open_beneath(root, rel_dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        if (fd == -ENOTDIR) return fail(SESH_FILES_CONFLICT, err, "'%s' is not a directory", rel_dir);
        return lookup_error(-fd, *rel_dir ? rel_dir : "/mnt/data", err);
    }
    list_dir(root, rel_dir, fd, "", recursive, 0, out);
    close(fd);
    return SESH_FILES_OK;
}

sesh_files_status sesh_files_open_read(int root, const char *rel, int *fdp, uint64_t *size, char **err)
{
    /* O_NONBLOCK: a FIFO planted by the session must not hang the pool. */
    int fd = open_beneath(root, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) return lookup_error(-fd, rel, err);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lookup_error(e, rel, err);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return fail(SESH_FILES_CONFLICT, err, "'%s' is a directory, not a file", rel);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(SESH_FILES_NOT_FOUND, err, "'%s' is not a regular file", rel);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *fdp = fd;
    *size = (uint64_t)st.st_size;
    return SESH_FILES_OK;
}

/* The blocks that go when this name goes: none while other links remain. */
static uint64_t blocks_freed(const struct stat *st)
{
    return S_ISDIR(st->st_mode) || st->st_nlink <= 1 ? (uint64_t)st->st_blocks * 512 : 0;
}

sesh_files_status sesh_files_delete(int root, const char *rel, uint64_t *freed, char **err)
{
    if (freed) *freed = 0;
    char *dir, *base;
    split_path(rel, &dir, &base);
    sesh_files_status st = SESH_FILES_OK;
    int pfd = open_beneath(root, dir, O_PATH | O_DIRECTORY, 0);
    if (pfd < 0) {
        st = lookup_error(-pfd, rel, err);
    } else {
        struct stat sb;
        if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            st = lookup_error(errno, rel, err);
        } else if (unlinkat(pfd, base, S_ISDIR(sb.st_mode) ? AT_REMOVEDIR : 0) != 0) {
            if (errno == ENOTEMPTY || errno == EEXIST)
                st = fail(SESH_FILES_CONFLICT, err, "directory '%s' is not empty", rel);
            else
                st = lookup_error(errno, rel, err);
        } else if (freed) {
            *freed = blocks_freed(&sb);
        }
        close(pfd);
    }
    free(dir);
    free(base);
    return st;
}

struct sesh_upload {
    int dirfd, fd;
    char *tmp, *base, *dir;
    uint64_t size, max;
};

/* Opens (creating as needed) each directory of rel below root. */
static int open_dirs(int root, const char *rel, uid_t uid, gid_t gid, int *out, char **err)
{
    int cur = open_beneath(root, "", O_PATH | O_DIRECTORY, 0);
    if (cur < 0) return lookup_error(-cur, "/mnt/data", err);
    char *copy = sesh_xstrdup(rel), *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        int next = open_beneath(cur, part, O_PATH | O_DIRECTORY, 0);
        if (next == -ENOENT) {
            if (mkdirat(cur, part, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                close(cur);
                free(copy);
                if (err) *err = sesh_printf("cannot create directory '%s': %s", rel, strerror(e));
                return SESH_FILES_IO;
            }
            if (uid != (uid_t)-1) {
                int r = fchownat(cur, part, uid, gid, AT_SYMLINK_NOFOLLOW);
                (void)r;
            }
            next = open_beneath(cur, part, O_PATH | O_DIRECTORY, 0);
        }
        close(cur);
        if (next < 0) {
            sesh_files_status st = next == -ENOTDIR
                ? fail(SESH_FILES_CONFLICT, err, "'%s' is not a directory", rel)
                : lookup_error(-next, rel, err);
            free(copy);
            return st;
        }
        cur = next;
    }
    free(copy);
    *out = cur;
    return SESH_FILES_OK;
}

sesh_files_status sesh_upload_begin(int root, const char *rel, uint64_t max, uid_t uid, gid_t gid,
                                    sesh_upload **upp, char **err)
{
    *upp = NULL;
    sesh_files_status st = sesh_files_check_new_name(rel, err);
    if (st != SESH_FILES_OK) return st;
    sesh_upload *up = sesh_xcalloc(1, sizeof *up);
    up->fd = up->dirfd = -1;
    up->max = max;
    split_path(rel, &up->dir, &up->base);
    st = open_dirs(root, up->dir, uid, gid, &up->dirfd, err);
    if (st != SESH_FILES_OK) {
        sesh_upload_abort(up);
        return st;
    }
    char hex[UPLOAD_HEX + 1];
    sesh_random_hex(hex, UPLOAD_HEX / 2);
    up->tmp = sesh_printf(UPLOAD_PREFIX "%s", hex);
    temp_add(up->tmp);              /* before it exists: no listing shows it */
    up->fd = openat(up->dirfd, up->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (up->fd < 0) {
        if (err) *err = sesh_printf("cannot create '%s': %s", rel, strerror(errno));
        sesh_upload_abort(up);
        return SESH_FILES_IO;
    }
    *upp = up;
    return SESH_FILES_OK;
}

sesh_files_status sesh_upload_write(sesh_upload *up, const void *data, size_t n, char **err)
{
    if (up->size + n > up->max) {
        if (err) *err = sesh_printf("the file is larger than the limit of %llu bytes",
                                    (unsigned long long)up->max);
        return SESH_FILES_TOO_LARGE;
    }
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(up->fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (err) *err = sesh_printf("cannot write the file: %s", strerror(errno));
            return SESH_FILES_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    up->size += n;
    return SESH_FILES_OK;
}

uint64_t sesh_upload_size(const sesh_upload *up) { return up->size; }

sesh_files_status sesh_upload_commit(sesh_upload *up, uid_t uid, gid_t gid, sesh_file_info *info,
                                     uint64_t *replaced, char **err)
{
    sesh_files_status st = SESH_FILES_OK;
    struct stat sb, old;
    if (replaced) *replaced = 0;
    if (uid != (uid_t)-1 && fchown(up->fd, uid, gid) != 0) {
        if (err) *err = sesh_printf("cannot hand the file to the session: %s", strerror(errno));
        st = SESH_FILES_IO;
    } else if (fstat(up->fd, &sb) != 0 || close(up->fd) != 0) {
        if (err) *err = sesh_printf("cannot finish writing the file: %s", strerror(errno));
        st = SESH_FILES_IO;
    } else {
        up->fd = -1;
        int had = fstatat(up->dirfd, up->base, &old, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(old.st_mode);
        if (renameat(up->dirfd, up->tmp, up->dirfd, up->base) != 0) {
            int e = errno;
            st = (e == EISDIR || e == ENOTEMPTY || e == EEXIST)
                ? fail(SESH_FILES_CONFLICT, err, "'%s' is a directory", up->base)
                : lookup_error(e, up->base, err);
        } else {
            temp_remove(up->tmp);
            free(up->tmp);
            up->tmp = NULL;      /* nothing left to remove */
            if (info) fill_info(info, up->base, up->dir, &sb);
            if (replaced && had) *replaced = blocks_freed(&old);
        }
    }
    sesh_upload_abort(up);
    return st;
}

void sesh_upload_abort(sesh_upload *up)
{
    if (!up) return;
    if (up->fd >= 0) close(up->fd);
    if (up->tmp && up->dirfd >= 0) unlinkat(up->dirfd, up->tmp, 0);
    if (up->tmp) temp_remove(up->tmp);
    if (up->dirfd >= 0) close(up->dirfd);
    free(up->tmp);
    free(up->base);
    free(up->dir);
    free(up);
}

static int remove_at(int parent, const char *name, int depth)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(parent, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    if (depth > MAX_REMOVE_DEPTH) return -1;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) {
        /* The session may have taken its own permissions away. */
        fchmodat(parent, name, 0700, 0);
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) return -1;
    if ((st.st_mode & 0700) != 0700) fchmod(fd, 0700);
    size_t n;
    char **names = read_names(fd, &n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (remove_at(fd, names[i], depth + 1) != 0) rc = -1;
        free(names[i]);
    }
    free(names);
    close(fd);
    if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT) rc = -1;
    return rc;
}

int sesh_files_remove_tree(int parent, const char *name)
{
    return remove_at(parent, name, 0);
}

const char *sesh_files_content_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        { "txt", "text/plain" },          { "csv", "text/csv" },
        { "tsv", "text/tab-separated-values" }, { "json", "application/json" },
        { "html", "text/html" },          { "htm", "text/html" },
        { "md", "text/markdown" },        { "xml", "application/xml" },
        { "yaml", "application/yaml" },   { "yml", "application/yaml" },
        { "py", "text/x-python" },        { "log", "text/plain" },
        { "png", "image/png" },           { "jpg", "image/jpeg" },
        { "jpeg", "image/jpeg" },         { "gif", "image/gif" },
        { "svg", "image/svg+xml" },       { "webp", "image/webp" },
        { "pdf", "application/pdf" },     { "zip", "application/zip" },
        { "gz", "application/gzip" },     { "tar", "application/x-tar" },
        { "parquet", "application/vnd.apache.parquet" },
        { "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash) && dot[1]) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
    }
    return "application/octet-stream";
}
