/*
 * text.c — printf into a new string (common.h).
 */
#include "common/common.h"

#include <stdio.h>

char *sesh_vstrprintf(const char *fmt, va_list ap)
{
    char *s;
    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

char *sesh_strprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = sesh_vstrprintf(fmt, ap);
    va_end(ap);
    return s;
}
