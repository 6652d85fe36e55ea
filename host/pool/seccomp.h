/*
 * seccomp.h — the system call filter of a sandbox, built with libseccomp.
 *
 * The filter allows by default and denies, with EPERM, what a notebook never
 * needs and what would widen the attack surface of the kernel: tracing other
 * processes, mounting, new namespaces, BPF, keyrings, perf, module loading,
 * rebooting, io_uring and the like. bubblewrap loads it (--seccomp FD) as the
 * last step before it executes the interpreter, so bwrap's own setup is not
 * filtered.
 */
#ifndef SESH_SECCOMP_H
#define SESH_SECCOMP_H

/* Writes the filter as a classic BPF program into a new memory file and
 * returns its descriptor (close-on-exec, offset 0), ready for bwrap.
 * Returns -1 with a malloc'd message in *err. */
int sesh_seccomp_filter_fd(char **err);

#endif
