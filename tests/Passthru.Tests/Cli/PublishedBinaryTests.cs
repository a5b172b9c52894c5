using System.Buffers.Binary;
using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>
/// The published binary is one static, position-dependent executable: under emulation that is what keeps each
/// bind or restore process at tens of milliseconds rather than a hundred (see src/Passthru/Passthru.csproj).
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public class PublishedBinaryTests
{
    private static string Binary => PublishedBinary.Path;

    [Fact]
    public void It_is_a_static_position_dependent_executable_that_runs()
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: the test command publishes it first (scripts/publish.sh)");
        var elf = File.ReadAllBytes(Binary);
        Assert.Equal("\x7f" + "ELF", System.Text.Encoding.ASCII.GetString(elf, 0, 4));
        Assert.Equal(2, elf[4]);                                           // ELFCLASS64
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(16)));   // e_type ET_EXEC, not ET_DYN (PIE)
        long phoff = BinaryPrimitives.ReadInt64LittleEndian(elf.AsSpan(32));
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(54)), phnum = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(56));
        for (int i = 0; i < phnum; i++)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)phoff + i * phentsize));
            Assert.True(type != 3, "the binary has a PT_INTERP header: it is dynamically linked");   // 3: PT_INTERP
        }
        var r = Repo.Exec(Binary, "--version");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", r.Stdout);
    }

    [Fact]
    public async Task Ctrl_c_and_sigterm_during_a_bind_roll_it_back_in_the_static_binary()
    {
        // The binary holds the signals with its own C handler (src/Passthru.Core/Host/interrupts.c), which the in-process
        // tests never reach: they run under the JIT, where .NET's signal registration stands in. A FIFO in the
        // unbind file's place makes the bind wait in the middle of its plan, driver_override written and the unbind's
        // open blocked until a reader comes, so the signals arrive there every time.
        var tree = Repo.CopyCapture("vhost");
        try
        {
            foreach (var module in new[] { "vfio_pci", "vfio_iommu_type1" }) Directory.CreateDirectory(Path.Combine(tree, "sys/module", module));
            var unbind = Path.Combine(tree, "sys/bus/pci/drivers/e1000e/unbind");
            Assert.Equal(0, Repo.Exec("mkfifo", unbind).ExitCode);
            var start = new System.Diagnostics.ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "--root", tree, "bind", "0000:00:02.0" }) start.ArgumentList.Add(a);
            using var bind = System.Diagnostics.Process.Start(start)!;
            var stdout = bind.StandardOutput.ReadToEndAsync();
            var stderr = bind.StandardError.ReadToEndAsync();
            var journal = Path.Combine(tree, "run/passthru/state.json");
            var deadline = DateTime.UtcNow.AddSeconds(30);
            // Journaled (the hold began before that), and its main thread in openat (257): the FIFO's.
            while (!(File.Exists(journal) && await StaysInOpenat(bind.Id)))
            {
                if (bind.HasExited) Assert.Fail($"the bind ended before it reached the FIFO: {await stdout}{await stderr}");
                Assert.True(DateTime.UtcNow < deadline, "the bind never reached the unbind step");
                await Task.Delay(20);
            }
            Assert.Equal(0, Repo.Exec("kill", "-INT", bind.Id.ToString()).ExitCode);
            Assert.Equal(0, Repo.Exec("kill", "-TERM", bind.Id.ToString()).ExitCode);
            await Task.Delay(200);
            Assert.False(bind.HasExited, "a held signal ended the bind before its step did");
            // A reader lets the blocked write finish; the bind then stops at its next step and rolls back.
            using (var reader = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(Open(unbind), ownsHandle: true), FileAccess.Read))
            {
                Assert.True(bind.WaitForExit(TimeSpan.FromSeconds(30)), "the bind did not end after its write");
                Assert.Equal("0000:00:02.0", new StreamReader(reader).ReadToEnd());
            }
            bind.WaitForExit();
            Assert.Equal(1, bind.ExitCode);   // its own error, not death by the signal (130, 143)
            Assert.Contains("interrupted; rolled back: gave 0000:00:02.0 to e1000e", await stderr);
            await stdout;
            Assert.False(File.Exists(journal), "the rollback left the journal behind");
        }
        finally { Directory.Delete(tree, true); }

        static async Task<bool> StaysInOpenat(int pid)
        {
            if (!InOpenat(pid)) return false;
            await Task.Delay(50);
            return InOpenat(pid);
        }

        static bool InOpenat(int pid)
        {
            try { return File.ReadAllText($"/proc/{pid}/syscall").StartsWith("257 ", StringComparison.Ordinal); }
            catch (IOException) { return false; }
        }

        // O_RDONLY | O_NONBLOCK: a FIFO's reader opens at once, and its writer's open returns.
        static nint Open(string fifo) => OpenFile(fifo, 0x800) is var fd and >= 0 ? fd : throw new IOException($"cannot open {fifo}");
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int OpenFile(string path, int flags);

    [Fact]
    public void Setup_apply_and_undo_work_in_the_static_binary()
    {
        // A static binary cannot dlopen OpenSSL, so .NET's own SHA256 crashed it in setup --apply: the record's
        // hashes are computed in managed code now. Run the real binary, not the in-process CLI the other tests use.
        var tree = Repo.CopyCapture("vhost");
        try
        {
            var apply = Repo.Exec(Binary, "setup", "--root", tree, "--boot-loader", "kernel-install", "--iommu-pt", "--apply");
            Assert.True(apply.ExitCode == 0, apply.Stdout + apply.Stderr);
            var cmdline = File.ReadAllBytes(Path.Combine(tree, "etc/kernel/cmdline"));
            var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(cmdline));
            Assert.Contains($"\"writtenSha256\": \"{sha}\"", File.ReadAllText(Path.Combine(tree, "var/lib/passthru/setup.json")));
            var undo = Repo.Exec(Binary, "setup", "--root", tree, "--undo");
            Assert.True(undo.ExitCode == 0, undo.Stdout + undo.Stderr);
            Assert.False(File.Exists(Path.Combine(tree, "etc/kernel/cmdline")));
        }
        finally { Directory.Delete(tree, true); }
    }
}
