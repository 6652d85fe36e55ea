/*
 * token.c — see token.h.
 */
#include "pool/token.h"
#include "pool/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

char *sesh_token_read(const char *path, char **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *err = sesh_printf("cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        *err = sesh_printf("cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    buf[n] = '\0';
    char *start = buf;
    while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r') start++;
    size_t len = strcspn(start, "\r\n");
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t')) len--;
    if (len == 0) {
        *err = sesh_printf("the token file %s is empty", path);
        return NULL;
    }
    return strndup(start, len);
}

char *sesh_token_load(const char *path, char **err)
{
    char hex[65];
    sesh_random_hex(hex, 32);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return sesh_token_read(path, err);
        *err = sesh_printf("cannot create the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[80];
    int n = snprintf(line, sizeof line, "%s\n", hex);
    if (write(fd, line, (size_t)n) != n || close(fd) != 0) {
        *err = sesh_printf("cannot write the token file %s: %s", path, strerror(errno));
        unlink(path);
        return NULL;
    }
    return sesh_xstrdup(hex);
}
