using Passthru.Fuzz;
using Passthru.Tests.Support;

namespace Passthru.Tests.Fuzz;

/// <summary>
/// CI's share of the fuzzing (issue #25): every seed of fuzz/corpus/TARGET and every input the fuzzer found in
/// fuzz/regressions/TARGET runs through the same harness AFL++ drives (fuzz/Passthru.Fuzz/Targets.cs, compiled in
/// here), and must keep its contract: a one-line UserError or a result, no other exception, no hang. The long
/// afl-fuzz runs themselves stay out of CI (scripts/fuzz.sh).
/// </summary>
public sealed class FuzzCorpusTests : IDisposable
{
    private static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(10);

    public static TheoryData<string> Targets => new(FuzzTargets.All.Keys);

    private static string Fuzz(string kind, string target) => Path.Combine(Repo.Root, "fuzz", kind, target);

    private static IEnumerable<string> Files(string dir) =>
        Directory.Exists(dir) ? Directory.GetFiles(dir).Order(StringComparer.Ordinal) : [];

    [Theory]
    [MemberData(nameof(Targets))]
    public async Task Every_corpus_and_regression_input_keeps_the_contract(string target)
    {
        var corpus = Files(Fuzz("corpus", target)).ToList();
        Assert.NotEmpty(corpus);
        var inputs = corpus.Concat(Files(Fuzz("regressions", target))).ToList();
        // The Barrelfish menus of the shared fixtures are seeds too, read where they are.
        if (target == "menu") inputs.AddRange(Files(Repo.Shared("fixtures/barrelfish")).Where(f => Path.GetFileName(f).StartsWith("menu.lst", StringComparison.Ordinal)));

        var seeds = inputs.Select(f => (Name: f, Bytes: File.ReadAllBytes(f))).ToList();
        // The shared Barrelfish build's SKB RAM disk (gunzipped) and its device database are seeds too, read where they are.
        var ramfs = Repo.Shared("barrelfish/build/" + Passthru.Launch.BarrelfishDeviceDb.RamfsName);
        if (target == "cpio") seeds.Add((ramfs, Passthru.Launch.CpioArchive.Gunzip(File.ReadAllBytes(ramfs))));
        if (target == "devicedb")
            seeds.Add((ramfs + ":" + Passthru.Launch.BarrelfishDeviceDb.Member,
                Passthru.Launch.CpioArchive.Find(Passthru.Launch.CpioArchive.Gunzip(File.ReadAllBytes(ramfs)), Passthru.Launch.BarrelfishDeviceDb.Member)!));

        var broken = new List<string>();
        foreach (var (file, bytes) in seeds)
        {
            var run = Task.Run(() => FuzzTargets.Run(target, bytes));
            try { await run.WaitAsync(HangAfter); }
            catch (TimeoutException) when (!run.IsCompleted) { broken.Add($"{file}: still running after {HangAfter.TotalSeconds:0} s (a hang)"); }
            catch (Exception e) { broken.Add($"{file}: {e.GetType().Name}: {Shown.Value(e.Message)}"); }
        }
        Assert.True(broken.Count == 0, $"{broken.Count} of {seeds.Count} inputs break the contract:\n" + string.Join('\n', broken));
    }

    /// <summary>
    /// The harness's static fields are set up before Fuzzer.Run starts AFL's fork server. Passthru.Core is instrumented
    /// there, and instrumented code run before the coverage map exists dies (AccessViolationException, SIGABRT): one
    /// static PciAddress once stopped every target from starting. So no static field may hold a Passthru.Core value.
    /// </summary>
    [Fact]
    public void No_static_field_of_the_harness_runs_Passthru_Core_before_the_fuzzer_starts()
    {
        var core = typeof(Passthru.Pci.PciAddress).Assembly;
        // Targets.cs is compiled into this test assembly too: its types are the ones in the harness's namespace.
        var offending = typeof(FuzzTargets).Assembly.GetTypes().Where(t => t.Namespace == typeof(FuzzTargets).Namespace)
            .SelectMany(t => t.GetFields(System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.DeclaredOnly)
                .Where(f => !f.IsLiteral && f.FieldType.Assembly == core)
                .Select(f => $"{t.FullName}.{f.Name} ({f.FieldType.Name})"))
            .ToList();
        Assert.True(offending.Count == 0, "static fields of Passthru.Core types in the fuzzing harness: " + string.Join(", ", offending));
    }

    [Fact]
    public void Every_corpus_and_regression_folder_is_a_target()
    {
        foreach (var kind in new[] { "corpus", "regressions" })
        {
            var dir = Path.Combine(Repo.Root, "fuzz", kind);
            if (!Directory.Exists(dir)) continue;
            foreach (var folder in Directory.GetDirectories(dir))
                Assert.True(FuzzTargets.All.ContainsKey(Path.GetFileName(folder)), $"{folder} names no target of fuzz/Passthru.Fuzz/Targets.cs");
        }
    }

    public void Dispose() => FuzzTargets.Scratch.Remove();
}
