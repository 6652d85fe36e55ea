/*
 * listen.c — see listen.h.
 */
#include "pool/listen.h"
#include "pool/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int sesh_listen_tcp(const char *spec, int have_token_file, char **address, int *loopback, char **err)
{
    char *copy = sesh_xstrdup(spec ? spec : "127.0.0.1:0");
    char *host = copy, *port = strrchr(copy, ':');
    if (!port) {
        *err = sesh_printf("--listen wants HOST:PORT, not '%s'", copy);
        free(copy);
        return -1;
    }
    *port++ = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host++;
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        *err = sesh_printf("cannot resolve --listen %s: %s", spec, gai_strerror(rc));
        free(copy);
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr) && !have_token_file) {
            *err = sesh_printf("--listen %s is not a loopback address: give --token-file too, "
                               "so the token that guards it is one you chose to share", spec);
            break;
        }
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        *loopback = is_loopback(ai->ai_addr);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) break;
        free(*err);
        *err = sesh_printf("cannot listen on %s: %s", spec, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    free(copy);
    if (fd < 0) {
        if (!*err) *err = sesh_printf("cannot listen on %s", spec);
        return -1;
    }
    free(*err);
    *err = NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char name[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, name, sizeof name);
        p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        *address = sesh_printf("http://[%s]:%d", name, p);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, name, sizeof name);
        p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        *address = sesh_printf("http://%s:%d", name, p);
    }
    return fd;
}

int sesh_listen_unix(const char *path, char **err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        *err = sesh_printf("the socket path %s is too long (at most %zu bytes)", path, sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = sesh_printf("%s exists and is not a socket: not touching it", path);
            return -1;
        }
        /* A socket left by a pool that died: reuse the name unless someone answers. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            *err = sesh_printf("another pool already listens on %s", path);
            return -1;
        }
        if (probe >= 0) close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = sesh_printf("cannot create a socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);                  /* born 0600: no window where others may connect */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, SOMAXCONN) != 0) {
        *err = sesh_printf("cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
