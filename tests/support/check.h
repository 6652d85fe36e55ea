/*
 * check.h — the few lines every C test driver of the suites shares
 * (tests/multipart/driver.c, tests/sandbox/driver.c): a check that prints
 * "ok   NAME" or "FAIL NAME: why", the counts the driver ends with
 * ("N passed, N failed", which the suite's run.sh reads), and the filter
 * given on the command line (a test runs when its name contains it).
 * Header only: each driver is one program.
 */
#ifndef SESH_TEST_CHECK_H
#define SESH_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;
static const char *filter;

__attribute__((format(printf, 3, 4)))
static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        passed++;
        printf("ok   %s\n", name);
        return;
    }
    failed++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static int selected(const char *name)
{
    return !filter || strstr(name, filter);
}

#endif
