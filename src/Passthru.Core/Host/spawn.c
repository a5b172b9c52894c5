/*
 * Starts a program (QEMU) as an unprivileged account without a wrapper process: the child made here drops to the
 * account itself, between its fork and its exec, as libvirt's forked child does, and then execs the program. Before,
 * run exec'd setpriv(1), which did the same drop and exec'd QEMU: one more exec of a dynamically linked program, its
 * locale and its NSS, 4-5 ms of every run on the project's VMs (bench/README.md, "The eleventh pass"). The drop is
 * setpriv's --reuid=U --regid=G --groups=...|--clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs,
 * step for step, and any step that fails ends the child before the exec, with the step and errno reported to the
 * parent: QEMU never runs with more than was asked for.
 *
 * The child is made with vfork: it shares the parent's memory until its exec, so that a .NET process's large heap is
 * not copied (nor its pages write-faulted afterwards). Hence the rules libc's posix_spawn keeps:
 *   - every signal is blocked in the calling thread across the vfork, and the child puts every handler of the
 *     parent's back to the default before it unblocks them (its signal table is its own copy: vfork shares memory,
 *     not handlers), so no handler of the runtime's ever runs on the child's borrowed stack;
 *   - the credentials change through raw system calls: libc's setresuid/setgroups would broadcast the change to every
 *     thread of the (shared-memory) parent, whose credentials must stay root's;
 *   - nothing in the child allocates or takes a lock.
 * Linked into the static binary by src/Passthru/Passthru.csproj; under the JIT (the tests' in-process runs) it is
 * absent and Host/ChildProcess.cs starts setpriv through .NET's Process instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

extern char **environ;

/* Which step failed, reported with its errno through the exec pipe (Host/ChildProcess.cs names them). */
enum
{
    STEP_DESCRIPTORS = 1,
    STEP_BOUNDING_SET = 2,
    STEP_GROUPS = 3,
    STEP_GID = 4,
    STEP_UID = 5,
    STEP_CAPABILITIES = 6,
    STEP_AMBIENT = 7,
    STEP_NO_NEW_PRIVS = 8,
    STEP_EXEC = 9,
};

struct failure
{
    int32_t step;
    int32_t error;
};

static void fail(int pipe_fd, int step)
{
    struct failure f = { step, errno };
    /* A short or failed write leaves the parent with "exited before its exec", still a failure. */
    ssize_t written = write(pipe_fd, &f, sizeof f);
    (void)written;
    _exit(127);
}

/* fd onto target for the program; -1 leaves target as inherited. dup2 clears close-on-exec on the copy. */
static int place(int fd, int target)
{
    if (fd < 0) return 0;
    if (fd == target) return fcntl(target, F_SETFD, 0);
    return dup2(fd, target) < 0 ? -1 : 0;
}

/* The drop, in setpriv's terms. Runs in the child only, still as root. */
static void drop(int pipe_fd, uint32_t uid, uint32_t gid, const uint32_t *groups, int group_count)
{
    /* --bounding-set=-all: while the child still has CAP_SETPCAP; past the last capability the kernel says EINVAL. */
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
        {
            if (errno == EINVAL && cap > 0) break;
            fail(pipe_fd, STEP_BOUNDING_SET);
        }
    /* --groups=... or --clear-groups, then --regid, then --reuid: groups and gid while the uid may still change them. */
    if (syscall(SYS_setgroups, (size_t)group_count, groups) != 0) fail(pipe_fd, STEP_GROUPS);
    if (syscall(SYS_setresgid, gid, gid, gid) != 0) fail(pipe_fd, STEP_GID);
    if (syscall(SYS_setresuid, uid, uid, uid) != 0) fail(pipe_fd, STEP_UID);
    /*
     * Leaving uid 0 for good cleared the permitted, effective and ambient sets; --inh-caps=-all clears the
     * inheritable one, which a uid change keeps. All three sets to nothing is always allowed.
     */
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &header, none) != 0) fail(pipe_fd, STEP_CAPABILITIES);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail(pipe_fd, STEP_AMBIENT);
    /* --no-new-privs: no set-uid program or file capability gives anything back after the exec. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(pipe_fd, STEP_NO_NEW_PRIVS);
}

/*
 * Starts path with argv (NULL-terminated) and this process's environment. in/out/err become the child's 0/1/2 (-1:
 * inherited). With drop_privileges, the child drops to uid/gid with exactly the given supplementary groups first.
 * Every descriptor of the parent's that is close-on-exec is not the program's; the others are (the QMP socket).
 * Returns the pid; or -1 with *step (0 when the child could not be made) and *error (an errno) set.
 */
int passthru_spawn(const char *path, char *const argv[], int in, int out, int err, int drop_privileges, uint32_t uid,
                   uint32_t gid, const uint32_t *groups, int group_count, int *step, int *error)
{
    *step = 0;
    *error = 0;
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
    {
        *error = errno;
        return -1;
    }
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &before);
    pid_t pid = vfork();
    if (pid == 0)
    {
        /* The child: the parent's handlers back to the default (ignored signals stay ignored, as exec keeps them). */
        struct sigaction standard;
        memset(&standard, 0, sizeof standard);
        standard.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++)
        {
            struct sigaction current;
            if (s == SIGKILL || s == SIGSTOP || sigaction(s, NULL, &current) != 0) continue;
            if (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN) sigaction(s, &standard, NULL);
        }
        if (place(in, 0) != 0 || place(out, 1) != 0 || place(err, 2) != 0) fail(report[1], STEP_DESCRIPTORS);
        if (drop_privileges) drop(report[1], uid, gid, groups, group_count);
        sigprocmask(SIG_SETMASK, &before, NULL);
        execve(path, argv, environ);
        fail(report[1], STEP_EXEC);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    close(report[1]);
    if (pid < 0)
    {
        close(report[0]);
        *error = saved;
        return -1;
    }
    /* Nothing to read: the exec closed the pipe's other end. A failure: which step, and why; the child is reaped. */
    struct failure f;
    ssize_t n;
    do n = read(report[0], &f, sizeof f);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == 0) return pid;
    *step = n == (ssize_t)sizeof f ? f.step : STEP_EXEC;
    *error = n == (ssize_t)sizeof f ? f.error : EIO;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) { }
    return -1;
}

/* 1: this code is linked in (Host/ChildProcess.cs asks once, and uses .NET's Process where it is not). */
int passthru_spawn_linked(void) { return 1; }
