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
