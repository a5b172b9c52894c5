namespace Passthru.Host;

/// <summary>
/// The host's processes as /proc shows them, read through the host root. Here in Host because bind's VF planning, run
/// and QEMU's failure explanations all ask "who holds this vfio group?", and a low room must not call a high one for it.
/// </summary>
public static class ProcessScan
{
    /// <summary>Processes that have a device node open, by /proc/PID/fd, as "qemu-system-x86 (pid 123)".</summary>
    public static List<string> Holders(HostRoot host, string node)
    {
        var found = new List<string>();
        foreach (var pid in host.List("proc"))
        {
            if (!pid.All(char.IsAsciiDigit)) continue;
            foreach (var fd in host.List($"proc/{pid}/fd"))
                if (host.ReadLink($"proc/{pid}/fd/{fd}") == node)
                {
                    found.Add($"{host.ReadAttribute($"proc/{pid}/comm") ?? "?"} (pid {pid})");
                    break;
                }
        }
        return found;
    }
}
