/*
 * python_env.h — the interpreter sandboxes run (--python): checked once at
 * start, and the directories a sandbox needs of the host to run it.
 *
 * The interpreter may be a virtual environment's (its bin/python, a link to
 * a base interpreter, with pyvenv.cfg and site-packages beside it) or any
 * other Python installation. The pool runs it once on the host, as the
 * sandboxes would (same flags and environment; a root pool runs it as
 * nobody, since sandboxes run as uids of their own and must be able to
 * read it too), and asks it where it lives: sys.prefix, sys.exec_prefix
 * and their base_ counterparts (a venv's base interpreter). Those outside
 * what every sandbox has (/usr and the /bin, /lib links) are bound
 * read-only at the same paths in each sandbox, so the venv's bin/python,
 * its site-packages and its base interpreter resolve inside as outside.
 * Paths that only the environment's .pth files add (editable installs) are
 * not bound: the sandbox shows no more of the host than the interpreter.
 *
 * It must be Python 3.8 or later (the runner's needs) with IPython; anything
 * else is a start-up error naming the path and what is missing.
 */
#ifndef SESH_POOL_PYTHON_ENV_H
#define SESH_POOL_PYTHON_ENV_H

typedef struct sesh_python_env {
    char *path;             /* the interpreter, absolute (not resolved: a venv's link stays) */
    char *version;          /* "3.11.2" */
    char *ipython;          /* IPython's version */
    char *prefix;           /* sys.prefix, for the log */
    char **bind;            /* NULL-terminated: host directories each sandbox binds read-only */
} sesh_python_env;

/* Runs `path` and fills env. 0, or -1 with a malloc'd message in *err
 * (the interpreter does not exist, does not run, is not Python 3.8+, has no
 * IPython, or lives in a directory a sandbox cannot bind). */
int sesh_python_env_probe(const char *path, sesh_python_env *env, char **err);
void sesh_python_env_free(sesh_python_env *env);

#endif
