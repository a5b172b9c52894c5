using System.Runtime.InteropServices;

namespace Passthru.Host;

/// <summary>
/// Ctrl-C, SIGTERM and SIGHUP held while a command changes the host: recorded, not obeyed, so that the change rolls
/// back at its next step (<see cref="Received"/> is polled there) instead of stopping half-way; a second one during
/// the rollback is held too. In the published binary a handler in C does it (interrupts.c beside this file, linked in
/// by src/Passthru/Passthru.csproj): it sets a flag, and starts no thread. Where that code is not linked in (the tests
/// run commands in-process under the JIT), .NET's PosixSignalRegistration does the same job, with a signal-handling
/// thread of its own: about 5 ms of every bind in the virtual host, where bind and restore are one process each.
/// </summary>
public sealed partial class InterruptHold : IDisposable
{
    private const string Library = "passthru-native";
    private readonly PosixSignalRegistration[] _registrations = [];
    private volatile bool _received;
    private readonly bool _native;

    private InterruptHold()
    {
        try
        {
            if (Hold() != 0) throw new UserError($"cannot hold Ctrl-C and SIGTERM while the host changes: {Marshal.GetLastPInvokeErrorMessage()}; nothing was changed");
            _native = true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            void Record(PosixSignalContext c) { c.Cancel = true; _received = true; }
            _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Record),
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, Record), PosixSignalRegistration.Create(PosixSignal.SIGHUP, Record)];
        }
    }

    /// <summary>Starts holding the signals, until disposed.</summary>
    public static InterruptHold Begin() => new();

    /// <summary>Whether one of the signals came since the hold began.</summary>
    public bool Received => _native ? ReceivedSignal() != 0 : _received;

    public void Dispose()
    {
        if (_native) Release();
        foreach (var r in _registrations) r.Dispose();
    }

    [LibraryImport(Library, EntryPoint = "passthru_interrupts_hold", SetLastError = true)]
    private static partial int Hold();

    [LibraryImport(Library, EntryPoint = "passthru_interrupts_received")]
    private static partial int ReceivedSignal();

    [LibraryImport(Library, EntryPoint = "passthru_interrupts_release")]
    private static partial void Release();
}
