using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// A host tree for setup tests: the dev-VM capture (its PCI devices, cpuinfo, cmdline) plus the configuration files
/// and programs a test puts in. Programs are empty files: against a tree, setup lists commands and never runs them.
/// </summary>
public sealed class ScratchHost(string capture = "devvm") : IDisposable
{
    public string Root { get; } = Repo.CopyCapture(capture);

    public static string Fixture(string name) => Path.Combine(Repo.Root, "tests", "fixtures", "setup", name);

    public ScratchHost With(string relative, byte[] bytes)
    {
        var path = Path.Combine(Root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return this;
    }

    public ScratchHost With(string relative, string text) => With(relative, System.Text.Encoding.UTF8.GetBytes(text));

    public ScratchHost WithFixture(string relative, string fixture) => With(relative, File.ReadAllBytes(Fixture(fixture)));

    public ScratchHost WithPrograms(params string[] names)
    {
        foreach (var n in names) With("usr/sbin/" + n, "");
        return this;
    }

    /// <summary>
    /// A Debian host with GRUB: etc/default/grub, update-grub, update-initramfs, and initramfs-tools' modules list
    /// as its package installs it (from the template initramfs-tools-core ships). Its virtio_pci is a module, as in
    /// Debian's kernel (CONFIG_VIRTIO_PCI=m; the virtual host's capture has it in proc/modules): the devvm capture's
    /// own kernel loads no modules and has it built in, which makes setup claim its devices by address.
    /// </summary>
    public static ScratchHost DebianGrub(byte[] grub, string capture = "devvm")
    {
        var host = new ScratchHost(capture).With("etc/default/grub", grub).WithPrograms("update-grub", "update-initramfs")
            .With("etc/initramfs-tools/modules", DebianPackage.File("initramfs-tools-core", "usr/share/initramfs-tools/modules"));
        return capture == "devvm" ? host.WithVirtioPciModule() : host;
    }

    /// <summary>virtio_pci as a loadable module (as distributions build it), where the devvm capture has it built in.</summary>
    public ScratchHost WithVirtioPciModule() => With("sys/module/virtio_pci/initstate", "live\n");

    public void Remove(string relative) => File.Delete(Path.Combine(Root, relative));

    public ScratchHost WithCpuVendor(string vendor)
    {
        var cpuinfo = File.ReadAllText(Path.Combine(Root, "proc/cpuinfo")).Replace("GenuineIntel", vendor);
        return With("proc/cpuinfo", cpuinfo);
    }

    public string Read(string relative) => File.ReadAllText(Path.Combine(Root, relative));
    public byte[] Bytes(string relative) => File.ReadAllBytes(Path.Combine(Root, relative));
    public bool Exists(string relative) => Path.Exists(Path.Combine(Root, relative));

    public CliResult Setup(params string[] args) => CliRunner.Run(["setup", "--root", Root, .. args]);

    /// <summary>Every file under etc/ and var/ with its bytes: what apply may change and undo must restore.</summary>
    public SortedDictionary<string, string> Snapshot()
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var top in new[] { "etc", "var" })
        {
            var dir = Path.Combine(Root, top);
            if (!Directory.Exists(dir)) continue;
            foreach (var entry in Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories))
                files[Path.GetRelativePath(Root, entry)] = Directory.Exists(entry) ? "<dir>" : Convert.ToHexString(File.ReadAllBytes(entry));
        }
        return files;
    }

    public void Dispose() => Directory.Delete(Root, true);
}
