/*
 * lprogress.c — the progress bar of sessions.http, drawn from the figures the
 * transport reports (its progress hook): one bar on stderr for every transfer
 * that asked for one, a single transfer showing its direction, several their
 * sum; cleared when none is left.
 */
#include "binding/binding.h"
#include "transport/http.h"

#include "common/common.h"

#include <stdio.h>
#include <unistd.h>

#define MIN_BYTES (4 << 20)         /* transfers smaller than this draw no bar */
#define REDRAW_S 0.2                /* at most five frames a second */

static struct {
    double last_draw;
    long long last_done;
    int drawn;
} bar = { 0, -1, 0 };

int sesh_progress_wanted(int asked)
{
    static int terminal = -1;       /* a terminal does not come or go under a program */
    if (asked >= 0)
        return asked;
    if (terminal < 0)
        terminal = isatty(STDERR_FILENO);
    return terminal;
}

static void clear(void)
{
    if (!bar.drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    bar.drawn = 0;
    bar.last_done = -1;
}

void sesh_progress_draw(const sesh_http_progress_figures *figures)
{
    sesh_http_progress_figures p = *figures;
    if (p.transfers == 0) {
        clear();
        return;
    }
    double at = sesh_monotonic();
    if (p.total < MIN_BYTES || p.done == bar.last_done ||
        (at - bar.last_draw < REDRAW_S && p.done < p.total))
        return;
    bar.last_draw = at;
    bar.last_done = p.done;
    char label[32], marks[21];
    if (p.transfers == 1)
        snprintf(label, sizeof label, "%s", p.uploading ? "upload  " : "download");
    else
        snprintf(label, sizeof label, "%d transfers", p.transfers);
    int filled = (int)(20.0 * p.done / p.total);
    for (int i = 0; i < 20; i++)
        marks[i] = i < filled ? '#' : '-';
    marks[20] = '\0';
    double rate = p.done / (at - p.started > 0.001 ? at - p.started : 0.001);
    fprintf(stderr, "\r%s [%s] %.1f / %.1f MiB %3d%% %.1f MiB/s ", label, marks,
            p.done / 1048576.0, p.total / 1048576.0, (int)(100.0 * p.done / p.total),
            rate / 1048576.0);
    fflush(stderr);
    bar.drawn = 1;
}
