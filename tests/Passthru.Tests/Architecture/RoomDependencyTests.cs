using System.Text;
using System.Text.RegularExpressions;
using Passthru.Tests.Support;

namespace Passthru.Tests.Architecture;

/// <summary>
/// The rooms of Passthru.Core (its folders, one namespace each) depend on each other in one direction only: low rooms
/// never call high ones. Read from the sources, so it needs no build of anything else and runs in well under a second.
/// A room depends on another when it has `using Passthru.X;`, names `Passthru.X.` or `X.Type`, or names a type that
/// the other room declares at its top level.
/// </summary>
public sealed partial class RoomDependencyTests
{
    /// <summary>
    /// The rooms, lowest first; a room may depend only on rooms of an earlier tier. Issue #21's order
    /// (Host ← Pci ← Discovery/Check/Binding ← Launch/Hotplug/Export/Setup ← commands), with Launch a tier of its own
    /// under Hotplug and Export, which build on its QEMU command line, profiles and failure explanations.
    /// </summary>
    private static readonly string[][] Tiers =
    [
        ["Host"],
        ["Pci"],
        ["Discovery", "Check", "Binding"],
        ["Launch"],
        ["Hotplug", "Export", "Setup"],
    ];

    /// <summary>
    /// Dependencies against the order that are known and scheduled to go (none now: Launch → Hotplug went when the guest
    /// records moved into custody, in Binding). The test below fails while an exception listed here no longer exists.
    /// </summary>
    private static readonly (string From, string To)[] KnownExceptions = [];

    private static readonly string CoreDirectory = Path.Combine(Repo.Root, "src", "Passthru.Core");
    private static readonly Lazy<RoomGraph> Graph = new(() => RoomGraph.Read(CoreDirectory));

    [Fact]
    public void Every_room_has_its_place_in_the_order_and_its_own_namespace()
    {
        var rooms = Graph.Value.Rooms;
        Assert.Equal(Tiers.SelectMany(t => t).Order(StringComparer.Ordinal), rooms.Order(StringComparer.Ordinal));
        var wrong = Graph.Value.Files.Where(f => f.Namespace != "Passthru." + f.Room).Select(f => $"{f.Path}: namespace {f.Namespace ?? "(none, or not file-scoped)"}").ToList();
        Assert.True(wrong.Count == 0, "every file of a room is in the file-scoped namespace Passthru.<room>:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void No_room_depends_on_a_room_that_depends_back_on_it()
    {
        var cycles = Graph.Value.Cycles(except: KnownExceptions);
        Assert.True(cycles.Count == 0, "rooms in a cycle (an arrow is a using, a qualified name or a type of the other room):\n"
            + string.Join("\n", cycles.Select(c => string.Join(" → ", c) + "\n" + string.Join("\n", Pairs(c).Select(e => "  " + Graph.Value.Evidence(e.From, e.To))))));
    }

    [Fact]
    public void Rooms_depend_only_on_lower_tiers()
    {
        int Tier(string room) => Array.FindIndex(Tiers, t => t.Contains(room));
        var upward = Graph.Value.Edges
            .Where(e => Tier(e.To) >= Tier(e.From) && !KnownExceptions.Contains((e.From, e.To)))
            .Select(e => $"{e.From} → {e.To} (tier {Tier(e.From)} → {Tier(e.To)}): {Graph.Value.Evidence(e.From, e.To)}")
            .ToList();
        Assert.True(upward.Count == 0, "a room depends on one of its own tier or a higher one:\n" + string.Join("\n", upward));
    }

    [Fact]
    public void Every_known_exception_still_exists()
    {
        var gone = KnownExceptions.Where(x => !Graph.Value.Edges.Contains(x)).Select(x => $"{x.From} → {x.To}").ToList();
        Assert.True(gone.Count == 0, "no longer a dependency, remove it from KnownExceptions: " + string.Join(", ", gone));
    }

    [Fact]
    public void Libc_is_called_from_Host_only()
    {
        var outside = new List<string>();
        foreach (var project in new[] { "Passthru.Core", "Passthru" })
        {
            var dir = Path.Combine(Repo.Root, "src", project);
            foreach (var file in SourceFiles(dir))
            {
                var code = CSharpText.CodeOnly(File.ReadAllText(file));
                if (project == "Passthru.Core" && Path.GetRelativePath(dir, file).StartsWith("Host/", StringComparison.Ordinal)) continue;
                foreach (Match m in NativeImport().Matches(code))
                    outside.Add($"{Path.GetRelativePath(Repo.Root, file)}:{CSharpText.LineOf(code, m.Index) + 1}: {m.Value}");
            }
        }
        Assert.True(outside.Count == 0, "libc imports belong in src/Passthru.Core/Host:\n" + string.Join("\n", outside));
    }

    [Fact]
    public void The_reader_counts_code_and_not_comments_or_strings()
    {
        var code = CSharpText.CodeOnly(""""
            // HostFacts in a comment
            /* JournalX */ var a = "HostFacts in a string"; var c = '"'; var v = @"a "" b";
            var s = $"{Format(Probe.X)} and {{Literal}}"; var e = '\'';
            var r = $$"""{{Raw.Y}} {Braces}""";
            """");
        Assert.DoesNotContain("HostFacts", code);
        Assert.DoesNotContain("JournalX", code);
        Assert.DoesNotContain("Literal", code);
        Assert.DoesNotContain("Braces", code);
        Assert.Contains("Probe.X", code);
        Assert.Contains("Raw.Y", code);
        Assert.Contains("var c =", code);
        Assert.Equal(4, CSharpText.LineOf(code, code.IndexOf("Raw", StringComparison.Ordinal)) + 1);
        Assert.Contains("var e =", code);

        var graph = RoomGraph.FromSources([
            ("Low/A.cs", "namespace Passthru.Low;\npublic sealed class Alpha { public void Run() { } }\n"),
            ("High/B.cs", "namespace Passthru.High;\npublic static class Beta { static void F(Alpha a) { } }\n"),
            ("Low/C.cs", "namespace Passthru.Low;\ninternal static class Gamma { static void F() { Run(); x.Beta = 1; var s = \"Beta\"; } }\n"),
            ("Low/D.cs", "namespace Passthru.Low;\ninternal static class Delta { const int Zero = 0, Beta = 1; static bool G(int x) => x == Beta; }\n"),
        ]);
        Assert.Equal([("High", "Low")], graph.Edges);
        Assert.Equal("High → Low: High/B.cs:2 names Alpha", graph.Evidence("High", "Low"));
        var cyclic = RoomGraph.FromSources([
            ("Low/A.cs", "using Passthru.High;\nnamespace Passthru.Low;\npublic sealed class Alpha;\n"),
            ("High/B.cs", "namespace Passthru.High;\npublic static class Beta { static object F() => Low.Alpha.Zero; }\n"),
        ]);
        Assert.Equal([["High", "Low", "High"]], cyclic.Cycles(except: []));
    }

    private static IEnumerable<(string From, string To)> Pairs(IReadOnlyList<string> cycle) =>
        cycle.Zip(cycle.Skip(1), (a, b) => (a, b));

    internal static IEnumerable<string> SourceFiles(string directory) =>
        Directory.EnumerateFiles(directory, "*.cs", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(directory, f).Split('/').Any(p => p is "bin" or "obj"))
            .Order(StringComparer.Ordinal);

    [GeneratedRegex(@"\[\s*(DllImport|LibraryImport)\s*\([^)]*\)")]
    private static partial Regex NativeImport();
}

/// <summary>The rooms of a source tree and which depends on which, each dependency with where it was seen first.</summary>
internal sealed partial class RoomGraph
{
    public sealed record SourceFile(string Path, string Room, string? Namespace, string Code);

    public List<SourceFile> Files { get; } = [];
    public SortedSet<string> Rooms { get; } = new(StringComparer.Ordinal);
    private readonly SortedDictionary<(string From, string To), string> _edges = new();

    public IReadOnlyList<(string From, string To)> Edges => _edges.Keys.ToList();

    public string Evidence(string from, string to) => $"{from} → {to}: {_edges[(from, to)]}";

    public static RoomGraph Read(string directory) =>
        FromSources(RoomDependencyTests.SourceFiles(directory)
            .Select(f => (Path.GetRelativePath(directory, f), File.ReadAllText(f)))
            .Where(f => f.Item1.Contains('/')));   // files at the top (UserError.cs) belong to no room

    public static RoomGraph FromSources(IEnumerable<(string Path, string Text)> sources)
    {
        var graph = new RoomGraph();
        foreach (var (path, text) in sources)
        {
            var code = CSharpText.CodeOnly(text);
            var ns = FileScopedNamespace().Match(code) is { Success: true } m ? m.Groups[1].Value : null;
            var room = path.Split('/')[0];
            graph.Files.Add(new SourceFile(path, room, ns, code));
            graph.Rooms.Add(room);
        }
        // Top-level types (column 0 under a file-scoped namespace) by name; a name two rooms declare tells nothing.
        var declared = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var f in graph.Files)
            foreach (Match m in TopLevelType().Matches(f.Code))
            {
                if (!declared.TryGetValue(m.Groups[1].Value, out var rooms)) declared[m.Groups[1].Value] = rooms = [];
                rooms.Add(f.Room);
            }
        var typeRoom = declared.Where(d => d.Value.Count == 1).ToDictionary(d => d.Key, d => d.Value.Single(), StringComparer.Ordinal);

        foreach (var f in graph.Files)
        {
            var members = MemberNames(f.Code);
            void Add(string to, int index, string what)
            {
                if (to == f.Room || !graph.Rooms.Contains(to)) return;
                graph._edges.TryAdd((f.Room, to), $"{f.Path}:{CSharpText.LineOf(f.Code, index) + 1} {what}");
            }
            foreach (Match m in QualifiedRoom().Matches(f.Code))
                if (!IsNamespaceDeclaration(f.Code, m.Index)) Add(m.Groups[1].Value, m.Index, $"names {m.Value}");
            foreach (Match m in Identifier().Matches(f.Code))
            {
                if (!typeRoom.TryGetValue(m.Value, out var room) || room == f.Room) continue;
                var before = PreviousToken(f.Code, m.Index);
                // x.Name is a member; Room.Name and Passthru.Room.Name are the room's type.
                if (before.Token == "." && !(graph.Rooms.Contains(PreviousToken(f.Code, before.Index).Token) || PreviousToken(f.Code, before.Index).Token == "Passthru")) continue;
                // Name(...) is a method of the same name, unless it follows new.
                char next = NextChar(f.Code, m.Index + m.Length);
                if (next == '(' && before.Token != "new") continue;
                // A member the file declares with the name (PciTopology's RootPort constant beside Launch's RootPort
                // record) is meant, unless the name stands where a type does: before a name, ?, <, [ or a dot.
                if (before.Token != "." && members.Contains(m.Value) && !(char.IsLetter(next) || next is '_' or '?' or '<' or '[' or '.')) continue;
                Add(room, m.Index, $"names {m.Value}");
            }
        }
        return graph;
    }

    /// <summary>Each cycle once, as the rooms along it with the first repeated at the end, the edges in <paramref name="except"/> left out.</summary>
    public List<List<string>> Cycles(IReadOnlyCollection<(string From, string To)> except)
    {
        var next = _edges.Keys.Where(e => !except.Contains(e)).ToLookup(e => e.From, e => e.To);
        var found = new List<List<string>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var start in Rooms)
        {
            // The shortest way back to start, breadth first.
            var cameFrom = new Dictionary<string, string>(StringComparer.Ordinal);
            var queue = new Queue<string>([start]);
            List<string>? cycle = null;
            while (queue.Count > 0 && cycle is null)
            {
                var room = queue.Dequeue();
                foreach (var to in next[room].Order(StringComparer.Ordinal))
                {
                    if (to == start)
                    {
                        cycle = [start];
                        for (var r = room; r != start; r = cameFrom[r]) cycle.Insert(1, r);
                        cycle.Add(start);
                        break;
                    }
                    if (to != start && cameFrom.TryAdd(to, room)) queue.Enqueue(to);
                }
            }
            if (cycle is not null && seen.Add(string.Join(",", cycle.Skip(1).Order(StringComparer.Ordinal)))) found.Add(cycle);
        }
        return found;
    }

    private static readonly HashSet<string> NotTypes = new(StringComparer.Ordinal)
    {
        "new", "return", "is", "as", "in", "case", "throw", "await", "typeof", "nameof", "else", "yield", "out", "ref", "using",
        "namespace", "class", "record", "struct", "interface", "enum", "when", "and", "or", "not", "goto", "default",
    };

    /// <summary>Names a file declares as fields, constants, properties or methods: after a type, before =, =>, ;, { or (.</summary>
    private static HashSet<string> MemberNames(string code)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in MemberDeclaration().Matches(code))
            if (!NotTypes.Contains(m.Groups[1].Value)) names.Add(m.Groups[2].Value);
        foreach (Match m in ConstDeclaration().Matches(code))
            foreach (var declarator in m.Groups[1].Value.Split(','))
                if (declarator.Split('=')[0].Trim() is { Length: > 0 } name) names.Add(name);
        return names;
    }

    private static bool IsNamespaceDeclaration(string code, int index)
    {
        int lineStart = code.LastIndexOf('\n', Math.Max(0, index - 1)) + 1;
        return code.AsSpan(lineStart, index - lineStart).Trim().SequenceEqual("namespace");
    }

    private static (string Token, int Index) PreviousToken(string code, int index)
    {
        int i = index - 1;
        while (i >= 0 && char.IsWhiteSpace(code[i])) i--;
        if (i < 0) return ("", 0);
        if (!char.IsLetterOrDigit(code[i]) && code[i] != '_') return (code[i].ToString(), i);
        int end = i + 1;
        while (i >= 0 && (char.IsLetterOrDigit(code[i]) || code[i] == '_')) i--;
        return (code[(i + 1)..end], i + 1);
    }

    private static char NextChar(string code, int index)
    {
        while (index < code.Length && char.IsWhiteSpace(code[index])) index++;
        return index < code.Length ? code[index] : '\0';
    }

    [GeneratedRegex(@"^namespace\s+([\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex FileScopedNamespace();

    [GeneratedRegex(@"^(?:(?:public|internal|file|static|sealed|abstract|partial|readonly|unsafe|ref)\s+)*(?:class|struct|interface|enum|record(?:\s+(?:class|struct))?|delegate\s+[\w<>?,\[\]\s]+?)\s+([A-Z]\w*)", RegexOptions.Multiline)]
    private static partial Regex TopLevelType();

    [GeneratedRegex(@"(\w+[>\]?]*)\s+([A-Z]\w*)\s*(?:=(?!=)|;|\{|\()")]
    private static partial Regex MemberDeclaration();

    /// <summary>Every name of a declaration such as const int A = 4, B = 6.</summary>
    [GeneratedRegex(@"\bconst\s+\w+\s+([^;]*);")]
    private static partial Regex ConstDeclaration();

    [GeneratedRegex(@"\bPassthru\.(\w+)\b")]
    private static partial Regex QualifiedRoom();

    [GeneratedRegex(@"(?<![\w@])[A-Z]\w*")]
    private static partial Regex Identifier();
}

/// <summary>C# source with comments, and the text of string and character literals, blanked (line breaks kept); the code in interpolation holes stays.</summary>
internal static class CSharpText
{
    public static int LineOf(string code, int index) => code.AsSpan(0, index).Count('\n');

    public static string CodeOnly(string source)
    {
        var output = new StringBuilder(source.Length);
        int i = 0;
        Code(source, ref i, output, inHole: false);
        return output.ToString();
    }

    /// <summary>Copies code from <paramref name="i"/> on; in an interpolation hole, stops at its closing brace.</summary>
    private static void Code(string s, ref int i, StringBuilder output, bool inHole)
    {
        int depth = 0;
        while (i < s.Length)
        {
            char c = s[i];
            char next = i + 1 < s.Length ? s[i + 1] : '\0';
            if (c == '/' && next == '/')
            {
                while (i < s.Length && s[i] != '\n') i++;
                continue;
            }
            if (c == '/' && next == '*')
            {
                int end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                end = end < 0 ? s.Length : end + 2;
                Blank(s, i, end, output);
                i = end;
                continue;
            }
            if (c == '\'')
            {
                int j = i + 1;
                while (j < s.Length && s[j] != '\'') j += s[j] == '\\' ? 2 : 1;
                output.Append("' '");
                i = Math.Min(j + 1, s.Length);
                continue;
            }
            if (c is '"' or '$' or '@')
            {
                int j = i, dollars = 0;
                bool verbatim = false;
                while (j < s.Length && s[j] is '$' or '@') { if (s[j] == '$') dollars++; else verbatim = true; j++; }
                if (j < s.Length && s[j] == '"')
                {
                    i = Literal(s, j, dollars, verbatim, output);
                    continue;
                }
            }
            if (inHole && c == '{') depth++;
            if (inHole && c == '}' && depth-- == 0) return;
            output.Append(c);
            i++;
        }
    }

    /// <summary>A string literal starting at the quote at <paramref name="start"/>; returns the index after it.</summary>
    private static int Literal(string s, int start, int dollars, bool verbatim, StringBuilder output)
    {
        int quotes = 0;
        while (start + quotes < s.Length && s[start + quotes] == '"') quotes++;
        output.Append('"');
        if (quotes == 2) { output.Append('"'); return start + 2; }
        bool raw = quotes >= 3;
        int i = start + (raw ? quotes : 1);
        while (i < s.Length)
        {
            char c = s[i];
            if (raw && string.CompareOrdinal(s, i, new string('"', quotes), 0, quotes) == 0) { output.Append('"'); return i + quotes; }
            if (!raw && !verbatim && c == '\\') { i += 2; continue; }
            if (!raw && c == '"')
            {
                if (verbatim && i + 1 < s.Length && s[i + 1] == '"') { i += 2; continue; }
                output.Append('"');
                return i + 1;
            }
            if (c == '\n') output.Append('\n');
            if (dollars > 0 && c == '{')
            {
                int run = 0;
                while (i + run < s.Length && s[i + run] == '{') run++;
                int needed = raw ? dollars : 1;
                if (!raw && run >= 2) { i += 2; continue; }   // {{ is a brace in a regular interpolated string
                if (run >= needed)
                {
                    i += run;
                    output.Append(" (");
                    Code(s, ref i, output, inHole: true);
                    output.Append(") ");
                    i += needed;   // the closing braces
                    continue;
                }
                i += run;
                continue;
            }
            i++;
        }
        return i;
    }

    private static void Blank(string s, int from, int to, StringBuilder output)
    {
        for (int k = from; k < to; k++) output.Append(s[k] == '\n' ? '\n' : ' ');
    }
}
