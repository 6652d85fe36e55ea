/*
 * sandbox_oom.c — a library every program a forked sandbox executes loads
 * first (/etc/ld.so.preload inside), so that, when the session runs out of
 * memory, the kernel weighs the processes its code started as it weighs
 * the interpreter.
 *
 * The kernel kills the process with the most resident pages. A forked
 * runner's count includes the pages it shares with the fork server (about
 * 120 MB, see zygote.h), which no other process of the session has: left
 * alone, the kernel would kill the interpreter, and the session's state,
 * for children using less memory of their own. So a program executed in
 * the sandbox raises its own oom_score_adj (which any process may) by those
 * shared pages, in thousandths of the session's memory: the number in this
 * library's file name, /etc/sesh-oom-N.so, set by zygote_enter.c. Processes
 * forked without exec share the runner's pages, and keep its weight.
 *
 * Built on its own into a shared object and embedded in sesh-pool, like
 * zygote_enter.c.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void sesh_oom_weigh(void)
{
    Dl_info self;
    if (!dladdr((void *)sesh_oom_weigh, &self) || !self.dli_fname)
        return;
    const char *name = strrchr(self.dli_fname, '/');
    if (!name || strncmp(name, "/sesh-oom-", 10) != 0)
        return;
    char *end;
    long weight = strtol(name + 10, &end, 10);
    if (strcmp(end, ".so") != 0 || weight <= 0 || weight > 1000)
        return;
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char text[8];
    int len = 0;
    for (long d = 1000; d; d /= 10)             /* no printf: nothing but what is needed */
        if (weight >= d || len)
            text[len++] = (char)('0' + weight / d % 10);
    if (write(fd, text, (size_t)len) < 0) { /* the kernel's own choice stands */ }
    close(fd);
}
