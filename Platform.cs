// Passthru drives Linux's sysfs, vfio and QEMU: it runs on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
