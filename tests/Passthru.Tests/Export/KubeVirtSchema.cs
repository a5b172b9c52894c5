using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Passthru.Tests.Support;

namespace Passthru.Tests.Export;

/// <summary>One YAML document as KubeVirt's schema validator saw it.</summary>
public sealed record KubeDocument(string Kind, JsonObject Object, IReadOnlyList<string> SchemaErrors);

/// <summary>
/// KubeVirt's own CRD validation schemas (../shared/fixtures/kubevirt, read there), applied by python3-jsonschema
/// (kubevirt_schema.py, strict about unknown fields as a cluster with fieldValidation=Strict is), and the admission
/// rules KubeVirt's webhooks and scheduler enforce that the schema does not hold (<see cref="Admission"/>).
/// </summary>
public static class KubeVirtSchema
{
    public static string Fixtures => Repo.Shared("fixtures/kubevirt");
    private static string Script => Path.Combine(Repo.Root, "tests/Passthru.Tests/Export/kubevirt_schema.py");

    public static IReadOnlyList<KubeDocument> Validate(params string[] files)
    {
        if (!File.Exists("/usr/bin/python3"))
            throw new InvalidOperationException("/usr/bin/python3 is missing: scripts/install-deps.sh installs python3-jsonschema and python3-yaml");
        var r = Repo.Exec("/usr/bin/python3", [Script, Fixtures, .. files]);
        if (r.ExitCode != 0) throw new InvalidOperationException("kubevirt_schema.py failed: " + r.Stderr);
        return JsonNode.Parse(r.Stdout)!["documents"]!.AsArray().Select(d => new KubeDocument(
            (string?)d!["kind"] ?? "", d["object"]!.AsObject(), d["errors"]!.AsArray().Select(e => (string)e!).ToList())).ToList();
    }

    /// <summary>Validates YAML text (written to a scratch file).</summary>
    public static IReadOnlyList<KubeDocument> ValidateText(string yaml)
    {
        var file = Path.Combine(Path.GetTempPath(), $"passthru-kubevirt-{Guid.NewGuid():n}.yaml");
        File.WriteAllText(file, yaml);
        try { return Validate(file); }
        finally { File.Delete(file); }
    }
}

/// <summary>
/// What KubeVirt checks beyond its schema (pkg/virt-api/webhooks/validating-webhook/admitters, and the device plugins
/// the scheduler counts on), as far as an exported VM touches it.
/// </summary>
public static partial class Admission
{
    /// <summary>Every rule a VM (or VMI) breaks, given the cluster's KubeVirt CR; empty when KubeVirt would run it.</summary>
    public static List<string> Check(JsonObject vm, JsonObject? kubevirt)
    {
        var errors = new List<string>();
        var spec = (string?)vm["kind"] == "VirtualMachine" ? vm["spec"]?["template"]?["spec"] : vm["spec"];
        var domain = spec?["domain"];
        var hostDevices = domain?["devices"]?["hostDevices"]?.AsArray() ?? [];
        var configuration = kubevirt?["spec"]?["configuration"];
        if (hostDevices.Count > 0)
        {
            var gates = configuration?["developerConfiguration"]?["featureGates"]?.AsArray().Select(g => (string?)g) ?? [];
            if (!gates.Contains("HostDevices")) errors.Add("hostDevices need the HostDevices feature gate in the KubeVirt CR");
            var permitted = new[] { "pciHostDevices", "mediatedDevices", "usb" }
                .SelectMany(k => configuration?["permittedHostDevices"]?[k]?.AsArray() ?? [])
                .Select(p => (string?)p!["resourceName"]).ToHashSet();
            foreach (var d in hostDevices)
            {
                var deviceName = (string?)d!["deviceName"];
                if (deviceName is null || !permitted.Contains(deviceName))
                    errors.Add($"hostDevices {(string?)d["name"]}: deviceName {deviceName ?? "(none)"} is not in the KubeVirt CR's permittedHostDevices");
                if (deviceName is not null && !QualifiedResourceName().IsMatch(deviceName))
                    errors.Add($"hostDevices {(string?)d["name"]}: {deviceName} is not an extended resource name (prefix/name)");
            }
            var names = hostDevices.Select(d => (string?)d!["name"]).ToList();
            if (names.Distinct().Count() != names.Count) errors.Add("hostDevices names must be unique");
        }
        foreach (var p in configuration?["permittedHostDevices"]?["pciHostDevices"]?.AsArray() ?? [])
            if (!VendorSelector().IsMatch((string?)p!["pciVendorSelector"] ?? ""))
                errors.Add($"pciVendorSelector {(string?)p["pciVendorSelector"]} is not VVVV:DDDD");
        if (domain?["firmware"]?["kernelBoot"] is JsonNode kernelBoot)
        {
            var container = kernelBoot["container"];
            var kernel = (string?)container?["kernelPath"];
            var initrd = (string?)container?["initrdPath"];
            if (container is null) errors.Add("kernelBoot needs a container");
            else if (string.IsNullOrEmpty((string?)container["image"])) errors.Add("kernelBoot.container needs an image");
            if (string.IsNullOrEmpty(kernel) && string.IsNullOrEmpty(initrd)) errors.Add("kernelBoot.container needs kernelPath or initrdPath");
            foreach (var path in new[] { kernel, initrd })
                if (!string.IsNullOrEmpty(path) && (!path.StartsWith('/') || path.Split('/').Contains("..")))
                    errors.Add($"kernelBoot path {path} must be absolute, without '..'");
            if (kernelBoot["kernelArgs"] is not null && string.IsNullOrEmpty(kernel)) errors.Add("kernelArgs need a kernelPath");
        }
        return errors;
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex QualifiedResourceName();

    [GeneratedRegex("^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")]
    private static partial Regex VendorSelector();
}
