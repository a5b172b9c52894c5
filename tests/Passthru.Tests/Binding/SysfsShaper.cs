namespace Passthru.Tests.Binding;

/// <summary>Edits a scratch copy of a real capture into the cases a capture of one machine lacks.</summary>
internal static class SysfsShaper
{
    public static void Rebind(string tree, string address, string driver)
    {
        var link = Path.Combine(tree, "sys/bus/pci/devices", address, "driver");
        File.Delete(link);
        Directory.CreateDirectory(Path.Combine(tree, "sys/bus/pci/drivers", driver));
        File.CreateSymbolicLink(link, $"../../../bus/pci/drivers/{driver}");
        if (driver is "vfio-pci" or "pci-stub")
            File.WriteAllText(Path.Combine(tree, "sys/bus/pci/devices", address, "driver_override"), driver + "\n");
    }

    public static void NetInterface(string tree, string name, string address, bool defaultRoute)
    {
        var dir = Path.Combine(tree, "sys/class/net", name);
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, "device"), $"../../../bus/pci/devices/{address}");
        // The kernel lists an interface under its parent device too (net/NAME), where bind looks for it.
        Directory.CreateDirectory(Path.Combine(tree, "sys/bus/pci/devices", address, "net", name));
        if (defaultRoute)
        {
            Directory.CreateDirectory(Path.Combine(tree, "proc/net"));
            File.WriteAllText(Path.Combine(tree, "proc/net/route"),
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
                $"{name}\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
        }
    }

    public static void MountedDisk(string tree, string disk, string address, string mountPoint)
    {
        Directory.CreateDirectory(Path.Combine(tree, "sys/class/block"));
        File.CreateSymbolicLink(Path.Combine(tree, "sys/class/block", disk + "p1"), $"../../devices/pci0000:00/{address}/nvme/nvme0/{disk}/{disk}p1");
        Directory.CreateDirectory(Path.Combine(tree, "proc/self"));
        File.WriteAllText(Path.Combine(tree, "proc/self/mounts"), $"/dev/{disk}p1 {mountPoint} ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n");
    }

    /// <summary>
    /// Stands in for the kernel on a scratch tree while commands run against it, so that a plan can be applied there
    /// and its outcome read back from the files: a background thread watches the files the kernel acts on and does
    /// what the kernel would. A write to drivers_probe binds a function without a driver to its driver_override, or
    /// else to its own driver (<paramref name="native"/>: the driver the capture had, which its modalias matches);
    /// an address written to drivers/NAME/unbind unbinds it; sriov_numvfs set to 0 removes the PF's VFs (their bus
    /// entries, directories, virtfn links and group entries). What it did is in <see cref="Done"/>.
    /// </summary>
    public sealed class Kernel : IDisposable
    {
        private readonly string _tree;
        private readonly IReadOnlyDictionary<string, string> _native;
        private readonly Thread _thread;
        private readonly Dictionary<string, string> _numVfs = [];
        private volatile bool _stop;
        private readonly List<string> _done = [];
        private Exception? _failed;

        public Kernel(string tree, IReadOnlyDictionary<string, string> native)
        {
            _tree = tree;
            _native = native;
            Touch(Path.Combine(Bus, "drivers_probe"));
            foreach (var driver in Directory.GetDirectories(Path.Combine(Bus, "drivers"))) Driver(Path.GetFileName(driver));
            foreach (var pf in Directory.GetFileSystemEntries(Path.Combine(Bus, "devices")).Where(d => File.Exists(Path.Combine(d, "sriov_numvfs"))))
                _numVfs[Path.GetFileName(pf)] = File.ReadAllText(Path.Combine(pf, "sriov_numvfs")).Trim();
            _thread = new Thread(Loop) { IsBackground = true, Name = "scratch kernel" };
            _thread.Start();
        }

        private string Bus => Path.Combine(_tree, "sys/bus/pci");

        /// <summary>What the kernel did, in order: "bind 0000:00:02.0 e1000e", "unbind 0000:03:00.1 vfio-pci", "remove 0000:03:00.1".</summary>
        public IReadOnlyList<string> Done { get { lock (_done) return [.. _done]; } }

        private static void Touch(string file) { if (!File.Exists(file)) File.WriteAllText(file, ""); }

        /// <summary>The last part of a link's target ("e1000e" for driver); null when there is no link.</summary>
        private static string? LinkName(string link)
        {
            try { return new FileInfo(link).LinkTarget is string t ? Path.GetFileName(t.TrimEnd('/')) : null; }
            catch (IOException) { return null; }
        }

        /// <summary>The directory a bus entry or a device's link leads to.</summary>
        private static string RealDirectory(string path) => new DirectoryInfo(path).ResolveLinkTarget(true)?.FullName ?? path;

        private string Driver(string name)
        {
            var dir = Path.Combine(Bus, "drivers", name);
            Directory.CreateDirectory(dir);
            Touch(Path.Combine(dir, "unbind"));
            return dir;
        }

        /// <summary>An address written to a file: read whole, and the file emptied again (sysfs files hold no data).</summary>
        private static string? Written(string file)
        {
            var text = File.Exists(file) ? File.ReadAllText(file).Trim() : "";
            if (!System.Text.RegularExpressions.Regex.IsMatch(text, @"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")) return null;
            File.WriteAllText(file, "");
            return text;
        }

        private void Did(string what) { lock (_done) _done.Add(what); }

        private void Loop()
        {
            try
            {
                while (!_stop)
                {
                    Step();
                    Thread.Sleep(5);
                }
            }
            catch (Exception e) { _failed = e; }
        }

        private void Step()
        {
            Unbinds();
            if (Written(Path.Combine(Bus, "drivers_probe")) is string probed)
            {
                // Passthru writes the unbind before the probe: a probe seen here may have come after this step's first
                // look at the unbind files, so look again first (the real kernel acts on each write as it comes).
                Unbinds();
                Probe(probed);
            }
            VfCounts();
        }

        private void Unbinds()
        {
            foreach (var dir in Directory.GetDirectories(Path.Combine(Bus, "drivers")))
                if (Written(Path.Combine(dir, "unbind")) is string address)
                {
                    var link = Path.Combine(Bus, "devices", address, "driver");
                    if (LinkName(link) == Path.GetFileName(dir))
                    {
                        File.Delete(link);
                        Did($"unbind {address} {Path.GetFileName(dir)}");
                    }
                }
        }

        private void Probe(string probed)
        {
            var device = Path.Combine(Bus, "devices", probed);
            if (LinkName(Path.Combine(device, "driver")) is null)
            {
                var over = File.Exists(Path.Combine(device, "driver_override")) ? File.ReadAllText(Path.Combine(device, "driver_override")).Trim() : "";
                var driver = over is "" or "(null)" ? _native.GetValueOrDefault(probed) : over;
                if (driver is not null && Directory.Exists(Path.Combine(Bus, "drivers", driver)))
                {
                    var real = RealDirectory(device);
                    File.CreateSymbolicLink(Path.Combine(real, "driver"), Path.GetRelativePath(real, Path.Combine(Bus, "drivers", driver)));
                    Did($"bind {probed} {driver}");
                }
            }
        }

        private void VfCounts()
        {
            foreach (var (pf, before) in _numVfs.ToList())
            {
                var now = File.ReadAllText(Path.Combine(Bus, "devices", pf, "sriov_numvfs")).Trim();
                if (now == before || now.Length == 0) continue;
                _numVfs[pf] = now;
                if (now != "0") throw new NotSupportedException($"the scratch kernel only removes VFs, it does not create them ({pf}: {before} -> {now})");
                var pfDir = Path.Combine(Bus, "devices", pf);
                // In VF order, as the kernel removes them.
                foreach (var virtfn in Directory.GetFileSystemEntries(pfDir, "virtfn*").OrderBy(v => int.Parse(Path.GetFileName(v)["virtfn".Length..])))
                {
                    var vf = LinkName(virtfn)!;
                    var vfBus = Path.Combine(Bus, "devices", vf);
                    var real = RealDirectory(vfBus);
                    if (LinkName(Path.Combine(real, "iommu_group")) is not null)
                    {
                        var entry = Path.Combine(RealDirectory(Path.Combine(real, "iommu_group")), "devices", vf);
                        if (LinkName(entry) is not null) File.Delete(entry);
                    }
                    Directory.Delete(real, true);
                    File.Delete(vfBus);
                    File.Delete(virtfn);
                    Did($"remove {vf}");
                }
            }
        }

        /// <summary>Stops the thread; what went wrong in it fails the test.</summary>
        public void Dispose()
        {
            _stop = true;
            _thread.Join();
            if (_failed is not null) throw new InvalidOperationException("the scratch kernel failed", _failed);
        }
    }
}
