/*
 * One malloc arena for the whole process, set before the runtime starts (a constructor runs before main). glibc
 * gives every thread that first calls malloc an arena of its own: the runtime's finalizer thread, started by every
 * Passthru process, reserved 128 MiB for one, then trimmed it (an mmap and two munmaps, made while the main thread
 * runs on the other CPU). The runtime's managed heap is its own; malloc serves only the runtime's bookkeeping and
 * libc, so one arena brings no contention worth the name. A dry-run restore took 0.3 ms less in the virtual host with
 * MALLOC_ARENA_MAX=1, and 0.5 ms less with this file built in (paired, 150 and 120 rounds; bench/README.md, "The
 * sixth pass"). Linked into the static binary by src/Passthru/Passthru.csproj; under the JIT (the tests' in-process
 * runs) it is absent, and nothing depends on it.
 */
#include <malloc.h>

__attribute__((constructor)) static void passthru_one_malloc_arena(void)
{
    mallopt(M_ARENA_MAX, 1);
}
