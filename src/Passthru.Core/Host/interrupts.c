/*
 * Ctrl-C, SIGTERM and SIGHUP recorded, not obeyed, while Passthru changes the host (InterruptHold.cs): the
 * change then rolls back at its next step instead of stopping half-way. The handler only sets a flag, which is
 * async-signal-safe, and needs no thread: .NET's PosixSignalRegistration starts a signal-handling thread and a pipe
 * for the same job, about 5 ms of every bind in the virtual host (bench/README.md). Linked into the static binary by
 * src/Passthru/Passthru.csproj; the C# side polls the flag between steps.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

static const int watched[] = { SIGINT, SIGTERM, SIGHUP };
#define WATCHED (sizeof watched / sizeof watched[0])

static struct sigaction saved[WATCHED];
static int installed[WATCHED];
static volatile sig_atomic_t received;

static void record(int signal) { received = signal; }

/* Puts back the dispositions the hold found. A signal recorded stays readable. */
void passthru_interrupts_release(void)
{
    for (size_t i = 0; i < WATCHED; i++)
        if (installed[i])
        {
            sigaction(watched[i], &saved[i], NULL);
            installed[i] = 0;
        }
}

/*
 * Starts recording. A signal the process was started with ignored (nohup's SIGHUP, a background job's SIGINT) stays
 * ignored, as the one who started it asked. Returns 0, or -1 with errno set (nothing new is left installed then).
 */
int passthru_interrupts_hold(void)
{
    struct sigaction recorder;
    memset(&recorder, 0, sizeof recorder);
    recorder.sa_handler = record;
    sigemptyset(&recorder.sa_mask);
    /* A system call in progress (a sysfs write, a driver's probe) completes; the next step boundary sees the flag. */
    recorder.sa_flags = SA_RESTART;
    for (size_t i = 0; i < WATCHED; i++)
        if (installed[i])
        {
            errno = EBUSY; /* one hold at a time: a second would save the recorder as the disposition to put back */
            return -1;
        }
    received = 0;
    for (size_t i = 0; i < WATCHED; i++)
    {
        if (sigaction(watched[i], NULL, &saved[i]) != 0) goto failed;
        if (saved[i].sa_handler == SIG_IGN) continue;
        if (sigaction(watched[i], &recorder, NULL) != 0) goto failed;
        installed[i] = 1;
    }
    return 0;
failed:
    passthru_interrupts_release();
    return -1;
}

/* The signal recorded since the hold began, or 0. */
int passthru_interrupts_received(void) { return received; }
