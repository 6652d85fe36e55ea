/*
 * datadir.h — a session's /mnt/data on the host: a directory of the pool's
 * work directory, shown to sandboxes so that nothing of the host's layout
 * shows through.
 *
 * Why a mount of its own: a bind mount keeps its source's path within its
 * file system, and /proc/self/mountinfo shows that path (the "root" field;
 * no chroot hides it): a bound directory would tell the session's code the
 * state folder, the pool's pid and the directory's name. So each session
 * directory gets an overlay mount on top of itself: the directory is the
 * upper layer, an empty directory of the pool the lower one, a sibling
 * "w-<hex>" the overlay's work directory, and the layers are named
 * /proc/self/fd/N. Inside, mountinfo shows "/" of an overlay whose options
 * name only /proc/self/fd/N.
 *
 * An overlay's layers may not change under it (its caches would go stale),
 * so everything the pool does to the files goes through the overlay too:
 * the descriptor sesh_datadir_make() returns is the overlay's root. Seen
 * from outside the pool, the directory holds the files as they are.
 *
 * The overlays live in a mount namespace of the pool's own, entered by
 * sesh_datadir_setup(): a root pool unshares one; a pool that is not root
 * first unshares a user namespace that maps its uid and gid to themselves
 * (so it stays the user it was, with the right to mount there). They go
 * when the pool goes, however it ends. Where overlayfs cannot be used (a
 * kernel before 5.11 for a pool that is not root, a file system it does
 * not stack on, user namespaces not allowed), directories are plain ones
 * bound as they are, and the note sesh_datadir_setup() returns says so.
 */
#ifndef SESH_POOL_DATADIR_H
#define SESH_POOL_DATADIR_H

/* Once, at start, before any thread exists (unshare needs a single thread),
 * with work_dir made. Returns a malloc'd line for the log saying how
 * session directories are shown, and why when they are bound as they are. */
char *sesh_datadir_setup(const char *work_dir);

/* Makes a session directory "s-<16 hex>" in work_fd (with its overlay when
 * setup could give one); *name is malloc'd, *fd the directory as sandboxes
 * see it. 0, or -1 with a malloc'd *err. */
int sesh_datadir_make(int work_fd, char **name, int *fd, char **err);

/* Closes fd and removes the directory, its overlay and everything in it.
 * 0, or -1 when something was left. */
int sesh_datadir_drop(int work_fd, const char *name, int fd);

#endif
