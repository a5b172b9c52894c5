// Stack buffers (stackalloc) are not zeroed first: every one here is written before it is read (a read(2) into it,
// a path encoded into it), and `list` fills tens of thousands of them (4 KiB for links, 64 bytes for attributes) on a
// host with thousands of SR-IOV functions. A small saving: the memset that shows in list's profile is the GC clearing
// fresh allocation space, not these (bench/README.md).
[module: System.Runtime.CompilerServices.SkipLocalsInit]
