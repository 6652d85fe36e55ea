/*
 * spawn.c — see common.h: starting a program, the one way sesh does it.
 */
#include "common/common.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

extern char **environ;

static int plan_fds(posix_spawn_file_actions_t *fa, const sesh_child *c)
{
    static const int open_flags[3] = { O_RDONLY, O_WRONLY | O_CREAT | O_APPEND,
                                       O_WRONLY | O_CREAT | O_APPEND };
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (c->fd[i] >= 0)
            rc = posix_spawn_file_actions_adddup2(fa, c->fd[i], i);
        else if (c->path[i])
            rc = posix_spawn_file_actions_addopen(fa, i, c->path[i], open_flags[i], 0600);
    }
    if (rc == 0 && c->cwd)
        rc = posix_spawn_file_actions_addchdir_np(fa, c->cwd);
    /* Close-on-exec is not enough: the kernel lets the parent go on at exec
     * before it closes those descriptors in the child, so for a moment the
     * child still holds our files (a lock let go right after the spawn would
     * still be held). The child closes everything above stderr first. */
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
    return rc;
}

static int plan_signals(posix_spawnattr_t *attr, int new_group)
{
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);     /* what we ignore or handle, the child does not */
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    int rc = posix_spawnattr_setsigmask(attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(attr, &defaults);
    if (rc == 0 && new_group) {
        rc = posix_spawnattr_setpgroup(attr, 0);
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    if (rc == 0)
        rc = posix_spawnattr_setflags(attr, flags);
    return rc;
}

int sesh_spawn_child(const sesh_child *c, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    rc = plan_fds(&fa, c);
    if (rc == 0)
        rc = plan_signals(&attr, c->new_group);
    if (rc == 0)
        rc = posix_spawnp(pid, c->argv[0], &fa, &attr, c->argv, c->envp ? c->envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}
