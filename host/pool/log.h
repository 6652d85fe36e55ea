/*
 * log.h — the pool's log: one line per event on stderr (a file in daemon
 * mode), each written with a single write(2) so threads never interleave.
 * Never log a token, a session identifier or code: they are secrets.
 */
#ifndef SESH_POOL_LOG_H
#define SESH_POOL_LOG_H

void sesh_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
