/*
 * cgroup.h — the pool's control groups: each sandbox in a group of its own,
 * so that everything a session holds is bounded together (its processes'
 * memory and its files in the memory-backed /tmp and /dev/shm, whose pages
 * are charged to whoever wrote them; its share of the CPU; its processes),
 * and so that the kernel, when a session reaches its memory, kills one of
 * that session's processes and nobody else's.
 *
 * sesh_cgroup_setup() finds what the pool can have, once, at start:
 *
 *   cgroup v2, when the pool's own group has the memory controller and the
 *   pool may write to it (root, or a group delegated to the pool's user).
 *   A group that hands controllers down may hold no process itself, so the
 *   pool moves into a leaf of its own first:
 *       <own>/sesh-pool-<pid>/pool              the pool process
 *       <own>/sesh-pool-<pid>/sessions/sb-<n>   one sandbox each
 *
 *   else cgroup v1 (machines that mount the memory controller there): the
 *   memory hierarchy, and cpu and pids where mounted; the pool stays put:
 *       <own, in each hierarchy>/sesh-pool-<pid>/sb-<n>
 *
 * Each sandbox's group holds: the memory (v2 memory.max and no swap; v1
 * memory.limit_in_bytes, and memsw where swap is accounted), a CPU weight
 * (every session the same; all sessions together weigh as much as the pool
 * itself; a warm sandbox starting weighs a third until it is taken) and the
 * number of tasks (pids.max) where those controllers are. Its processes
 * enter it between fork and exec (sandbox_spawn.c writes "0" to the
 * cgroup.procs descriptors of sesh_cgroup_procs()), before dropping root, so
 * nothing of the sandbox ever runs outside it.
 *
 * A group is removed when its sandbox is freed, or later once its last
 * process is gone; the pool's groups at teardown; groups left by a killed
 * pool (sesh-pool-<pid> of a pid that no longer runs) at the next setup.
 * Where no group can be had, the pool runs without, and says why.
 *
 * Thread rules: setup and teardown from one thread while no sandbox exists;
 * everything else from any thread.
 */
#ifndef SESH_POOL_CGROUP_H
#define SESH_POOL_CGROUP_H

#include <stddef.h>

typedef struct sesh_cgroup sesh_cgroup;

/* 0 when sandboxes get groups; -1 when not, with the reason in *why
 * (malloc'd, one sentence that says what to do). */
int sesh_cgroup_setup(char **why);

/* Removes the pool's groups, waiting a moment for sandboxes' last processes
 * to go; leftovers are removed by the next pool's setup. */
void sesh_cgroup_teardown(void);

/* "v2" or "v1" once set up, else NULL; the controllers in use ("memory cpu
 * pids"); why there are none (NULL when there are). Valid until teardown. */
const char *sesh_cgroup_version(void);
const char *sesh_cgroup_controllers(void);
const char *sesh_cgroup_problem(void);

/* What the host can give the pool's sessions: its memory (MemTotal), or the
 * memory limit of the pool's own group and its parents when lower. 0 when
 * unknown. */
size_t sesh_cgroup_host_memory(void);

typedef struct sesh_cgroup_limits {
    size_t memory;             /* bytes of memory of the whole group, tmpfs pages included */
    int tasks;                 /* processes and threads (pids.max); 0: not limited here */
    int background;            /* a third of the CPU weight until sesh_cgroup_foreground */
} sesh_cgroup_limits;

/* A new group for one sandbox. NULL with *err NULL when the pool has no
 * groups; NULL with *err (malloc'd) when it has but this one failed. */
sesh_cgroup *sesh_cgroup_new(const sesh_cgroup_limits *limits, char **err);

/* The group's cgroup.procs, open for writing (close-on-exec), one per
 * hierarchy: writing "0" to each moves the writer in. Returns how many
 * (at most max) were put in fds; 0 for NULL. */
int sesh_cgroup_procs(const sesh_cgroup *cg, int *fds, int max);

/* A sandbox's processes are about to be moved into its group by a write
 * that is not in their own start (a forked sandbox's init, zygote.h): the
 * first move in a while waits for an RCU grace period (the kernel's
 * cgroup_threadgroup_rwsem; 4 to 16 ms on a small machine), and the moves
 * that follow within one are quick. This starts one now, in the background:
 * a move of the pool into the group it is in already, which moves nothing.
 * Any thread; cheap, and a no-op where the pool has no groups. */
void sesh_cgroup_prepare_move(void);

/* Processes the kernel killed in the group for want of memory so far; -1
 * when unknown (no group, or no count on this kernel). */
long long sesh_cgroup_oom_kills(const sesh_cgroup *cg);

/* The whole CPU weight, for a warm sandbox taken by a session. */
void sesh_cgroup_foreground(sesh_cgroup *cg);

/* Removes the group (once its processes are gone: later if some are still
 * exiting). NULL is fine. */
void sesh_cgroup_free(sesh_cgroup *cg);

/* ---- for tests ---- */

/* sesh_cgroup_setup() from given texts of /proc/self/cgroup and
 * /proc/self/mountinfo (NULL: the real ones), trying only `version` (1 or
 * 2; 0: v2, then v1). `memory` names the controller that must bound the
 * groups (NULL: "memory"): a test of the v2 mechanics on a host whose memory
 * controller is on v1 names one that v2 has; then no memory limit is
 * written. */
int sesh_cgroup_setup_from(const char *self_cgroup, const char *mountinfo, int version,
                           const char *memory, char **why);

/* The directory of the group of `controller` ("memory", "cpu"...; NULL: the
 * v2 group) given the texts of /proc/self/cgroup and /proc/self/mountinfo;
 * malloc'd, or NULL when it is not mounted or not visible. */
char *sesh_cgroup_own_dir(const char *self_cgroup, const char *mountinfo, const char *controller);

/* The value of the line "key N" in a file such as memory.events; -1 if none. */
long long sesh_cgroup_count(const char *text, const char *key);

#endif
