using System.CommandLine;
using Passthru.Host;
using Passthru.Launch;

namespace Passthru.Cli.Commands;

/// <summary>`passthru image`: a bootable ISO (GRUB 2) of a multiboot menu, for the places run's -kernel/-initrd cannot go.</summary>
public static class ImageCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout, TextWriter stderr)
    {
        var menu = new Option<string?>("--menu") { Description = "The multiboot menu.lst (Barrelfish's): the kernel, modules and arguments the image boots", Required = true };
        var buildDir = new Option<string?>("--build-dir") { Description = "The build directory the menu's paths start from (default: found from the menu, as run finds it)" };
        var output = new Option<string?>("--output", "-o") { Description = "Write the ISO here", Required = true };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan (files, grub.cfg, the grub-mkrescue command); build nothing" };
        var command = new Command("image", "Build a bootable ISO (GRUB 2, via grub-mkrescue) of a multiboot menu: the kernel and every module with its arguments, as run boots them")
        {
            menu, buildDir, output, dryRun,
        };
        command.SetAction(p =>
        {
            var plan = BootImage.Plan(globals.Host(p), InputFile.FullPath("--menu", p.GetValue(menu)!),
                p.GetValue(buildDir) is string d ? InputFile.FullPath("--build-dir", d) : null, p.GetValue(output)!, BootImage.NewWorkDir());
            if (p.GetValue(dryRun))
            {
                foreach (var line in plan.Describe()) stdout.WriteLine(line);
                return ExitCodes.Ok;
            }
            var bytes = BootImage.Apply(plan);
            stderr.WriteLine($"wrote {plan.Output}: {bytes} bytes, {plan.Files.Count} files; boot it with `passthru run --cdrom {plan.Output}`");
            return ExitCodes.Ok;
        });
        return command;
    }
}
