"""seccomp_deny.py — runs a command with some system calls refused (EPERM),
as a container runtime's seccomp profile refuses them.

    /usr/bin/python3 tests/support/seccomp_deny.py setns[,name...] -- COMMAND ARGS...

The filter (classic BPF) is inherited by everything the command starts.
Names known: setns, unshare, mount; on x86_64 and aarch64.
"""

import ctypes
import os
import platform
import struct
import sys

NUMBERS = {
    "x86_64": (0xC000003E, {"setns": 308, "unshare": 272, "mount": 165}),
    "aarch64": (0xC00000B7, {"setns": 268, "unshare": 97, "mount": 40}),
}
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
LD_ABS_W, JEQ_K, RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO, EPERM = 0x7FFF0000, 0x00050000, 1


def program(arch, numbers):
    """Other architectures pass; a listed call of ours gets EPERM."""
    ops = [(LD_ABS_W, 0, 0, 4), (JEQ_K, 1, 0, arch), (RET_K, 0, 0, RET_ALLOW),
           (LD_ABS_W, 0, 0, 0)]
    for n in numbers:
        ops += [(JEQ_K, 0, 1, n), (RET_K, 0, 0, RET_ERRNO | EPERM)]
    ops.append((RET_K, 0, 0, RET_ALLOW))
    return b"".join(struct.pack("HBBI", *op) for op in ops), len(ops)


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.exit(__doc__)
    arch, table = NUMBERS[platform.machine()]
    code, count = program(arch, [table[name] for name in argv[1].split(",")])

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    prog = Fprog(count, code)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        sys.exit("seccomp_deny.py: %s" % os.strerror(ctypes.get_errno()))
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv)
