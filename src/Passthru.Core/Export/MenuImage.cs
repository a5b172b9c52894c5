using Passthru.Host;
using Passthru.Launch;

namespace Passthru.Export;

/// <summary>
/// How an export carries a multiboot menu to a target with no multiboot loader of its own (libvirt's one initrd,
/// Proxmox, KubeVirt): as the bootable ISO `passthru image` builds, booted as a CD. Given --menu with either an ISO
/// already built (--image FILE.iso) or --image-out FILE.iso (built here), the export is written for the ISO instead.
/// </summary>
public static class MenuImage
{
    /// <summary>
    /// The export with the menu's image: the options it is written from boot the ISO (--cdrom) instead of the menu.
    /// With --image-out the export is first planned from the menu itself, so bad input (a device, a name, a machine)
    /// is refused before the ISO is built; only then is it built and the export written for it.
    /// </summary>
    public static T Carry<T>(HostRoot host, RunOptions o, string isoOption, string? iso, string? isoOut, Func<RunOptions, T> export, List<string> notes)
    {
        if (iso is null && isoOut is null) return export(o);
        var given = iso is not null ? isoOption : "--image-out";
        if (iso is not null && isoOut is not null)
            throw new UserError($"give {isoOption} FILE.iso (an image already built) or --image-out FILE.iso (build it now), not both", ExitCodes.Usage);
        if (o.Menu is null)
            throw new UserError($"{given} is the image of a menu: give --menu MENU with it (to boot an ISO of your own, give --cdrom FILE.iso)", ExitCodes.Usage);
        if (o.Cdrom is not null)
            throw new UserError($"{given} and --cdrom both name the VM's CD: give one", ExitCodes.Usage);
        if (o.Kernel is not null)
            throw new UserError("give either --menu (Barrelfish) or --kernel, not both", ExitCodes.Usage);
        string file;
        if (isoOut is not null)
        {
            var plan = BootImage.Plan(host, o.Menu, o.BuildDir, isoOut, BootImage.NewWorkDir());
            _ = export(o); // the menu's own export: every refusal before anything is written
            var bytes = BootImage.Apply(plan);
            file = Path.GetFullPath(isoOut);
            notes.Add($"wrote {file}: the image of {o.Menu} ({bytes} bytes, {plan.Files.Count} files), which the VM boots as its CD");
        }
        else
        {
            file = InputFile.FullPath(isoOption, iso!);
            InputFile.Require(isoOption, file);
            var menu = BarrelfishMenu.Load(o.Menu);
            menu.RequireFiles(o.BuildDir ?? menu.DefaultBuildDir(o.Menu));
            if (!IsIso9660(file))
                throw new UserError($"{isoOption} {Shown.Value(file)} is not an ISO 9660 image: build the menu's with --image-out FILE.iso (or passthru image --menu MENU -o FILE.iso)", ExitCodes.Usage);
            // Whether the ISO is this menu's: its grub.cfg against the one passthru image makes of the menu now.
            if (Programs.Find(host, "xorriso") is string xorriso)
            {
                var held = BootImage.ReadGrubConfig(xorriso, file);
                if (held is null)
                    notes.Add($"note: {file} holds no /boot/grub/grub.cfg, so it is not an image passthru image made of {o.Menu}: the VM boots it as it is (--image-out FILE.iso builds the menu's)");
                else if (held != BootImage.GrubConfig(menu, o.BuildDir ?? menu.DefaultBuildDir(o.Menu)))
                    notes.Add($"note: the grub.cfg in {file} is not the one passthru image makes of {o.Menu} now (another menu or build): the VM boots what the ISO holds (--image-out FILE.iso builds it afresh)");
            }
            else notes.Add($"note: no xorriso on this host (apt-get install xorriso), so {file} was not compared with {o.Menu}");
        }
        // Named, unless --name says otherwise, after the ISO's file, as any VM that boots a CD.
        return export(o with { Menu = null, BuildDir = null, Cdrom = file });
    }

    /// <summary>An ISO 9660 volume: the primary volume descriptor's "CD001" at byte 32769 (sector 16, after its type byte).</summary>
    public static bool IsIso9660(string file)
    {
        try
        {
            using var f = File.OpenRead(file);
            if (f.Length < 32774) return false;
            f.Seek(32769, SeekOrigin.Begin);
            Span<byte> id = stackalloc byte[5];
            return f.Read(id) == 5 && id.SequenceEqual("CD001"u8);
        }
        catch (IOException) { return false; }
    }
}
