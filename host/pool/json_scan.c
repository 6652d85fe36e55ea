/*
 * json_scan.c — see json_scan.h.
 */
#include "pool/json_scan.h"

void sesh_json_scan_init(sesh_json_scan *s, unsigned max_depth, size_t max_values)
{
    *s = (sesh_json_scan){ .max_depth = max_depth, .max_values = max_values };
}

/* One more value: a string, a container, or the first byte of a number or
 * literal (a "word"). */
static sesh_scan_status count_value(sesh_json_scan *s)
{
    if (++s->values > s->max_values)
        s->status = SESH_SCAN_TOO_MANY;
    return s->status;
}

sesh_scan_status sesh_json_scan_feed(sesh_json_scan *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && s->status == SESH_SCAN_OK) {
        if (s->in_string) {
            if (s->escaped) {           /* the byte after a backslash is never a quote */
                s->escaped = 0;
                i++;
                continue;
            }
            while (i < n && p[i] != '"' && p[i] != '\\')
                i++;
            if (i == n)
                break;
            if (p[i] == '\\')
                s->escaped = 1;
            else
                s->in_string = 0;
            i++;
            continue;
        }
        char c = p[i++];
        switch (c) {
        case ' ': case '\t': case '\n': case '\r': case ',': case ':':
            s->in_word = 0;
            break;
        case '"':
            s->in_word = 0;
            s->in_string = 1;
            count_value(s);
            break;
        case '{': case '[':
            s->in_word = 0;
            if (++s->depth > s->max_depth)
                s->status = SESH_SCAN_TOO_DEEP;
            else
                count_value(s);
            break;
        case '}': case ']':
            s->in_word = 0;
            if (s->depth)
                s->depth--;
            break;
        default:
            if (!s->in_word) {
                s->in_word = 1;
                count_value(s);
            }
        }
    }
    return s->status;
}
