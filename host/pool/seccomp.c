/*
 * seccomp.c — the system call filter of a sandbox (see seccomp.h).
 */
#include "pool/seccomp.h"
#include "pool/util.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <seccomp.h>

/* Denied outright: a notebook never needs them, and each is a door into the
 * kernel or out of the sandbox. Names unknown to this architecture (vm86 on
 * x86_64, say) resolve to pseudo numbers that libseccomp ignores. */
static const char *const denied[] = {
    /* other processes */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise",
    /* file systems and namespaces */
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
    "quotactl", "quotactl_fd", "swapon", "swapoff", "acct", "nfsservctl", "sysfs",
    "ustat", "_sysctl", "uselib", "vhangup",
    /* kernel attack surface */
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "move_pages",
    "migrate_pages", "modify_ldt",
    /* the machine itself */
    "kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module",
    "delete_module", "create_module", "query_module", "get_kernel_syms", "ioperm",
    "iopl", "vm86", "vm86old", "syslog", "settimeofday", "stime", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
};

/* clone() may make threads and processes but no namespace. */
static const unsigned long namespace_flags[] = {
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET,
};

static int fail(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    *err = sesh_xvprintf(fmt, ap);
    va_end(ap);
    return -1;
}

static int add_rules(scmp_filter_ctx ctx, char **err)
{
    int rc;
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc < 0 && rc != -EDOM)
            return fail(err, "seccomp: cannot deny %s: %s", denied[i], strerror(-rc));
    }
    for (size_t i = 0; i < sizeof namespace_flags / sizeof *namespace_flags; i++) {
        unsigned long f = namespace_flags[i];
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
        if (rc < 0)
            return fail(err, "seccomp: cannot filter clone flags: %s", strerror(-rc));
    }
    /* clone3 passes its flags in memory, out of the filter's sight: answer
     * ENOSYS so the C library falls back to clone(), which is checked. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc < 0)
        return fail(err, "seccomp: cannot filter clone3: %s", strerror(-rc));
    /* Typing into a terminal that is not ours (bwrap --new-session already
     * detaches us; this closes the door twice). */
    static const unsigned long tty_requests[] = { TIOCSTI, TIOCLINUX };
    for (size_t i = 0; i < 2; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, tty_requests[i]));
        if (rc < 0)
            return fail(err, "seccomp: cannot filter ioctl: %s", strerror(-rc));
    }
    return 0;
}

int sesh_seccomp_filter_fd(char **err)
{
    *err = NULL;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return fail(err, "seccomp: cannot create a filter");
    int fd = -1, rc;
    /* A system call of another architecture (int 0x80 on x86_64) kills: the
     * whole process where the kernel can, else the thread (libseccomp's
     * default, also what it falls back to when it cannot probe the kernel). */
    seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (add_rules(ctx, err) < 0)
        goto done;
    fd = memfd_create("sesh-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        fail(err, "seccomp: memfd_create: %s", strerror(errno));
        goto done;
    }
    rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        fail(err, "seccomp: cannot export the filter: %s", strerror(rc < 0 ? -rc : errno));
        close(fd);
        fd = -1;
    }
done:
    seccomp_release(ctx);
    return fd;
}
