/* child_proc.c -- run a clusterf binary as a child with its output in a log file, stop it with a
 * signal and a bounded wait, count and show lines of its log. No checks here: callers judge. */
#include "child_proc.h"

#include "common/timeutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Fork, point stdout and stderr at the log, exec. */
bool child_start(child_proc *c, const char *log, bool append, char *const argv[])
{
    snprintf(c->log, sizeof(c->log), "%s", log);
    c->pid = fork();
    if (c->pid == 0) {
        int fd = open(c->log, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    if (c->pid < 0)
        c->pid = 0;
    return c->pid > 0;
}

/* Signal, then poll waitpid until it ends or the time is up (then SIGKILL). */
int child_stop(child_proc *c, int sig, int timeout_ms)
{
    int st = 0;
    if (c->pid <= 0)
        return -1;
    kill(c->pid, sig);
    int64_t end = clock_now_ms() + timeout_ms;
    while (clock_now_ms() < end) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(20000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &st, 0);
    c->pid = 0;
    return -1;
}

/* waitpid(WNOHANG): 0 means it still runs. */
bool child_alive(child_proc *c)
{
    int st;
    if (c->pid <= 0)
        return false;
    if (waitpid(c->pid, &st, WNOHANG) == 0)
        return true;
    c->pid = 0;
    return false;
}

/* Scan the log line by line. */
size_t child_log_count(const child_proc *c, const char *a, const char *b)
{
    FILE *f = fopen(c->log, "r");
    char line[8192];
    size_t n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, a) && (!b || strstr(line, b));
    if (f)
        fclose(f);
    return n;
}

/* tail | sed through the shell: the log is ours, its name has no quote. */
void child_log_tail(const child_proc *c, int lines)
{
    char cmd[256];
    if (!c->log[0])
        return;
    printf("    --- tail of %s\n", c->log);
    fflush(stdout);
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' | sed 's/^/    /'", lines, c->log);
    if (system(cmd) != 0) {
        /* nothing to show */
    }
}
