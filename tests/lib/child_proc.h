/* child_proc.h -- test helper: run a clusterf binary as a child process with stdout and stderr
 * in a log file, stop it with a signal (bounded wait, then SIGKILL), ask whether it is still up,
 * count and show lines of its log. Shared by the suites that drive the daemons from outside. */
#ifndef CLUSTERF_TEST_CHILD_PROC_H
#define CLUSTERF_TEST_CHILD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct child_proc {
    pid_t pid;       /* 0 when not running */
    char log[160];   /* its stdout + stderr */
} child_proc;

/* Fork and exec argv[0] with argv, output to log (truncated; appended when append). Returns
 * true when forked (an exec failure shows as exit status 127). */
bool child_start(child_proc *c, const char *log, bool append, char *const argv[]);

/* Send sig and wait up to timeout_ms; returns the exit status, 128 + signal, or -1 (it did not
 * end: then killed with SIGKILL and reaped). -1 also when it was not running. */
int child_stop(child_proc *c, int sig, int timeout_ms);

/* True while the child runs (reaps it, and clears pid, once it has ended). */
bool child_alive(child_proc *c);

/* Lines of the log holding a (and b when non-NULL). */
size_t child_log_count(const child_proc *c, const char *a, const char *b);

/* Print the last lines of the log, indented, to stdout. */
void child_log_tail(const child_proc *c, int lines);

#endif
