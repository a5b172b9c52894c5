namespace Passthru.Setup;

/// <summary>
/// One word of a kernel command line as it sits in a configuration file: its text and where it is, so that an edit
/// touches only that word. <see cref="Opaque"/> words (a shell reference such as $GRUB_CMDLINE_LINUX_DEFAULT) are kept
/// as they are and never read as parameters.
/// </summary>
public sealed record CmdlineWord(string Text, string File, int Start, bool Opaque = false)
{
    public int Length => Text.Length;

    /// <summary>The parameter's name as the kernel compares it: '-' and '_' are the same character.</summary>
    public string Name => KernelParameters.NormalName(Text.Split('=', 2)[0]);

    /// <summary>The value after '=', "" for a flag.</summary>
    public string Value => Text.Contains('=') ? Text[(Text.IndexOf('=') + 1)..] : "";
}

/// <summary>A change to the kernel command line, with the reason shown to the user.</summary>
public abstract record ParameterChange(string Reason)
{
    /// <summary>Append a parameter that is not there.</summary>
    public sealed record Add(string Text, string Reason) : ParameterChange(Reason);
    /// <summary>Rewrite a parameter that is there with a value that does not do what passthrough needs.</summary>
    public sealed record Replace(CmdlineWord Word, string Text, string Reason) : ParameterChange(Reason);
    /// <summary>Drop a parameter that works against passthrough (amd_iommu=off, a pci-stub claim, a duplicate).</summary>
    public sealed record Remove(CmdlineWord Word, string Reason) : ParameterChange(Reason);

    public string Describe() => this switch
    {
        Add a => $"add {a.Text}",
        Replace r => $"replace {r.Word.Text} with {r.Text}",
        Remove r => $"remove {r.Word.Text}",
        _ => "",
    };
}

/// <summary>What this host's kernel command line needs, decided from host facts and the user's request. Pure.</summary>
public static class KernelParameters
{
    public const string UnsafeInterrupts = "vfio_iommu_type1.allow_unsafe_interrupts";

    public static string NormalName(string name) => name.Replace('-', '_');

    /// <summary>
    /// The changes that make <paramref name="words"/> (the current command line, in order) carry what passthrough
    /// needs. Parameters already there with a good value are left alone, so a second run changes nothing.
    /// </summary>
    public static IReadOnlyList<ParameterChange> Decide(IReadOnlyList<CmdlineWord> words, SetupDecisions d)
    {
        var changes = new List<ParameterChange>();
        // Words after "--" go to init, not to the kernel.
        var live = words.TakeWhile(w => w.Text != "--" || w.Opaque).Where(w => !w.Opaque).ToList();
        List<CmdlineWord> Named(string name) => live.Where(w => w.Name == NormalName(name)).ToList();

        // Sets name to a value when the effective (last) occurrence does not satisfy: the last is rewritten and
        // earlier ones dropped, so the parameter ends up once; absent, it is appended.
        void Require(string name, Func<string, bool> satisfied, Func<string?, string> value, string reason)
        {
            var found = Named(name);
            if (found.Count > 0 && satisfied(found[^1].Value)) return;
            if (found.Count == 0) { changes.Add(new ParameterChange.Add($"{name}={value(null)}", reason)); return; }
            foreach (var earlier in found.SkipLast(1)) changes.Add(new ParameterChange.Remove(earlier, "duplicate: the kernel uses only the last one"));
            changes.Add(new ParameterChange.Replace(found[^1], $"{found[^1].Text.Split('=')[0]}={value(found[^1].Value)}", reason));
        }

        if (d.Vendor == IommuVendor.Intel)
            Require("intel_iommu", v => v.Split(',').Contains("on"), IntelIommuValue,
                "turns on the Intel IOMMU (VT-d), which vfio needs");
        if (d.Vendor == IommuVendor.Amd)
            foreach (var off in Named("amd_iommu").Where(w => w.Value.Split(',').Contains("off")))
                changes.Add(new ParameterChange.Remove(off, "turns AMD's IOMMU off; it is on by default"));
        if (d.IommuPassThrough)
            Require("iommu", v => v == "pt", _ => "pt", "host devices skip IOMMU translation (--iommu-pt): host I/O performance");
        // On the kernel command line rather than as a modprobe option: it holds whether vfio_iommu_type1 is built in,
        // loaded from the initramfs or later (modprobe reads module parameters from /proc/cmdline too), and it is
        // where the seed and most guides put it, visible in /proc/cmdline to `passthru check` and to admins.
        if (d.AllowUnsafeInterrupts)
            Require(UnsafeInterrupts, v => v is "1" or "Y" or "y" or "on", _ => "1",
                "vfio may use devices although this IOMMU does not remap interrupts (--allow-unsafe-interrupts); the risk: a guest's device can forge interrupts (MSI) against the host, so pass devices only to guests you trust");
        if (d.BootFramebufferOff == FramebufferOff.SysfbBlacklist)
            Require("initcall_blacklist", v => v.Split(',').Contains("sysfb_init"), v => string.Join(',', (v ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Append("sysfb_init")),
                "no firmware framebuffer (efifb, vesafb, simplefb) holds a GPU's memory from boot on (--no-boot-framebuffer): vfio can reserve its BARs");
        if (d.BootFramebufferOff == FramebufferOff.VideoOff)
            foreach (var fb in new[] { "efifb", "vesafb" })
                if (!Named("video").Any(w => w.Value == $"{fb}:off"))
                    changes.Add(new ParameterChange.Add($"video={fb}:off", $"{fb} does not take a GPU's memory at boot (--no-boot-framebuffer): vfio can reserve its BARs"));
        if (d.BootIds.Count > 0)
        {
            var wanted = d.BootIds.ToList();
            Require("vfio-pci.ids", v => wanted.All(IdList(v).Contains), v => string.Join(',', IdList(v ?? "").Concat(wanted).Distinct()),
                "vfio-pci claims these devices at boot, before their usual drivers");
            foreach (var stub in Named("pci-stub.ids"))
            {
                var kept = IdList(stub.Value).Where(id => !wanted.Contains(id)).ToList();
                if (kept.Count == IdList(stub.Value).Count) continue;
                const string why = "pci-stub would hold the device first, and QEMU's vfio cannot use a device held by pci-stub";
                changes.Add(kept.Count == 0
                    ? new ParameterChange.Remove(stub, why)
                    : new ParameterChange.Replace(stub, $"{stub.Text.Split('=')[0]}={string.Join(',', kept)}", why));
            }
        }
        return changes;
    }

    /// <summary>intel_iommu takes a comma list (on, off, igfx_off, sm_on...): off becomes on, other settings stay.</summary>
    private static string IntelIommuValue(string? current)
    {
        if (string.IsNullOrEmpty(current)) return "on";
        var settings = current.Split(',').ToList();
        int off = settings.IndexOf("off");
        if (off >= 0) settings[off] = "on"; else settings.Insert(0, "on");
        return string.Join(',', settings.Distinct());
    }

    private static List<string> IdList(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => s.ToLowerInvariant()).ToList();

    /// <summary>Splits a plain command line (proc/cmdline, etc/kernel/cmdline) into words with their offsets.</summary>
    public static List<CmdlineWord> SplitPlain(string text, string file)
    {
        var words = new List<CmdlineWord>();
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
            if (i >= text.Length) break;
            int start = i;
            bool quoted = false;
            while (i < text.Length && (quoted || !char.IsWhiteSpace(text[i])))
            {
                if (text[i] == '"') quoted = !quoted;
                i++;
            }
            words.Add(new CmdlineWord(text[start..i], file, start));
        }
        return words;
    }
}
