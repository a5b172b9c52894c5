namespace Passthru.Tests.Support;

/// <summary>
/// Scratch directories for the files a test guest boots (kernels, scripts, disks). `passthru run` as root starts QEMU
/// as passthru-qemu, which must be able to read them: like a user's build directory (and unlike
/// Directory.CreateTempSubdirectory's 0700), these are 0755.
/// </summary>
public static class GuestFiles
{
    public static DirectoryInfo Directory(string prefix)
    {
        var dir = System.IO.Directory.CreateTempSubdirectory(prefix);
        File.SetUnixFileMode(dir.FullName, (UnixFileMode)0x1ED); // 0755
        return dir;
    }

    /// <summary>
    /// A shell script standing in for QEMU (DIR/qemu, running BODY whatever its arguments) and the empty kernel it is
    /// given (DIR/kernel): for the tests of what `run` does with the guest's console and QEMU's end.
    /// </summary>
    public static string StandInQemu(string dir, string body)
    {
        var qemu = Path.Combine(dir, "qemu");
        File.WriteAllText(qemu, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(dir, "kernel"), "");
        return qemu;
    }
}
