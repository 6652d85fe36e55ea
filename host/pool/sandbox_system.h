/*
 * sandbox_system.h — what a sandbox sees of the host's system, whichever
 * path started it: the lists bwrap's command line is made from
 * (sandbox_spawn.c) and the fork server's sandboxes mount themselves
 * (zygote_enter.c). Read-only, and nothing else: no home, no /root, no
 * /var, no file of the pool.
 */
#ifndef SESH_SANDBOX_SYSTEM_H
#define SESH_SANDBOX_SYSTEM_H

#define SESH_SANDBOX_HOSTNAME "sesh"

/* /lib, /bin and friends: a symlink into /usr on merged-/usr systems (the
 * same link inside), else bound read-only when they exist. */
#define SESH_SANDBOX_TOPS { "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin" }

/* Files of /etc that Python and its packages read, bound read-only where
 * they exist; /etc/python3* too. */
#define SESH_SANDBOX_ETC { \
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/alternatives", "/etc/localtime", \
    "/etc/fonts", "/etc/matplotlibrc", "/etc/mime.types", "/etc/os-release" }

/* With --network, what name resolution and TLS read. */
#define SESH_SANDBOX_NET { \
    "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf", \
    "/etc/ssl/certs", "/etc/ca-certificates", "/etc/protocols", "/etc/services" }

/* Device nodes bound from the host's /dev into a /dev of its own. */
#define SESH_SANDBOX_DEVICES { "null", "zero", "full", "random", "urandom", "tty" }

#endif
