using System.Buffers.Binary;
using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>
/// The published binary is one static, position-dependent executable: under emulation that is what keeps each
/// bind or restore process at tens of milliseconds rather than a hundred (see src/Passthru/Passthru.csproj).
/// </summary>
public class PublishedBinaryTests
{
    private static readonly string Binary = Path.Combine(Repo.Root, "artifacts", "bin", "passthru");

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
}
