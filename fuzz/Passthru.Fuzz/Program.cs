using Passthru.Fuzz;
using SharpFuzz;

// Passthru.Fuzz TARGET            run one harness under afl-fuzz (SharpFuzz's persistent fork server; input on stdin)
// Passthru.Fuzz list              the targets
// Passthru.Fuzz replay TARGET F.. run files through a harness once each and print what each one does (triage)
if (args is ["list"])
{
    foreach (var name in FuzzTargets.All.Keys) Console.WriteLine(name);
    return 0;
}
if (args is ["replay", var target, .. var files] && FuzzTargets.All.ContainsKey(target))
{
    int failed = 0;
    foreach (var file in files)
    {
        try { FuzzTargets.Run(target, File.ReadAllBytes(file)); Console.WriteLine($"ok    {file}"); }
        catch (Exception e) { failed++; Console.WriteLine($"CRASH {file}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}"); }
    }
    FuzzTargets.Scratch.Remove();
    return failed == 0 ? 0 : 1;
}
if (args is [var only] && FuzzTargets.All.ContainsKey(only))
{
    Fuzzer.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        FuzzTargets.Run(only, buffer.ToArray());
    });
    return 0;
}
Console.Error.WriteLine($"usage: Passthru.Fuzz TARGET | list | replay TARGET FILE...  (targets: {string.Join(", ", FuzzTargets.All.Keys)})");
return 2;
