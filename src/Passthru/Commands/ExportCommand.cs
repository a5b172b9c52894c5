using System.CommandLine;
using Passthru.Export;

namespace Passthru.Cli.Commands;

/// <summary>`passthru export libvirt [run options | -f PROFILE] [-o FILE]`: the VM `run` starts, as a libvirt domain.</summary>
public static class ExportCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout, TextWriter stderr)
    {
        var vm = new RunCliOptions();
        var output = new Option<string?>("--output", "-o") { Description = "Write the domain XML here (default: standard output)" };
        var libvirt = new Command("libvirt", "Export the VM `passthru run` would start as a libvirt domain definition") { output };
        vm.AddTo(libvirt);
        libvirt.SetAction(p =>
        {
            if (p.GetValue(output) is string target && Path.GetDirectoryName(Path.GetFullPath(target)) is string dir && !Directory.Exists(dir))
                throw new UserError($"--output {target}: the directory {dir} does not exist", ExitCodes.Usage);
            var (definition, notes) = DomainExport.Define(globals.Host(p), vm.Read(p));
            foreach (var n in notes) stderr.WriteLine(n);
            var xml = LibvirtDomain.ToXml(LibvirtDomain.Build(definition));
            if (p.GetValue(output) is string file)
            {
                DomainExport.WriteFile(file, xml);
                stderr.WriteLine($"wrote {file}: `virsh define {file}` to add it to libvirt");
            }
            else stdout.Write(xml);
            return ExitCodes.Ok;
        });
        return new Command("export", "Hand the VM over to other tools") { libvirt };
    }
}
