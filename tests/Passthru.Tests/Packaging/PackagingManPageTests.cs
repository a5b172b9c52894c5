namespace Passthru.Tests.Packaging;

/// <summary>passthru(1) as the package ships it, rendered by man-db.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("Packaging")]
public class PackagingManPageTests(PackagingFixture package)
{
    private static readonly string[] Commands = ["check", "list", "show", "bind", "unbind", "restore", "run", "setup", "export libvirt", "export kubevirt", "export nova", "export cloud-hypervisor", "export proxmox", "completion"];

    private (int ExitCode, string Stdout, string Stderr) Man(params string[] options) =>
        PackagingFixture.Run("man", [.. options, "-l", package.File("usr/share/man/man1/passthru.1.gz")],
            new Dictionary<string, string> { ["MANWIDTH"] = "80", ["LC_ALL"] = "C.UTF-8" });

    [Fact]
    public void Man_renders_it_without_warnings()
    {
        var (code, _, stderr) = Man("--warnings");
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
    }

    [Fact]
    public void It_has_the_sections_and_every_command()
    {
        var text = Man().Stdout;
        foreach (var section in new[] { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS", "FILES", "SEE ALSO" })
            Assert.Matches($"(?m)^{section}$", text);
        foreach (var command in Commands) Assert.Matches($"(?m)^   {command}$", text);   // its subsection
        Assert.Contains("passthru - pass PCIe devices through to QEMU guests", text);
        Assert.Contains("/run/passthru/state.json", text);
        Assert.Contains("/var/lib/passthru", text);
        Assert.Contains("qemu-system-x86_64(1), lspci(8)", text);
        Assert.Matches(@"(?m)^       -v, --verbose$", text);
        Assert.Matches(@"(?m)^       --accel ACCEL$", text);
    }
}
