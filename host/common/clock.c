/*
 * clock.c — the monotonic clock and sleeping (common.h).
 */
#include "common/common.h"

#include <errno.h>
#include <time.h>

double sesh_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t sesh_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sesh_sleep(double seconds)
{
    if (!(seconds > 0))             /* also NaN */
        return 0;
    if (seconds > 1e9)
        seconds = 1e9;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;                 /* truncates: the whole seconds */
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec > 999999999)
        ts.tv_nsec = 999999999;
    return nanosleep(&ts, NULL) == 0 ? 0 : -1;   /* EINTR: let the caller look */
}
