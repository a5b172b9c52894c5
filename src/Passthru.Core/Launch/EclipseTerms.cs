using System.Globalization;
using System.Text;

namespace Passthru.Launch;

/// <summary>An ECLiPSe term as far as a fact database needs: numbers, atoms, strings, variables, lists, compounds and structs.</summary>
public abstract record Term(int Line);
public sealed record IntTerm(int Line, long Value) : Term(Line);
public sealed record FloatTerm(int Line, double Value) : Term(Line);
public sealed record AtomTerm(int Line, string Name) : Term(Line);
public sealed record StringTerm(int Line, string Value) : Term(Line);
/// <summary>A variable (`_` or a capitalized name): in a fact, it matches anything.</summary>
public sealed record VarTerm(int Line, string Name) : Term(Line);
public sealed record ListTerm(int Line, IReadOnlyList<Term> Items, Term? Tail) : Term(Line);
/// <summary>`name(arg, ...)`, or an operator term such as `a/9` (name "/").</summary>
public sealed record CompoundTerm(int Line, string Name, IReadOnlyList<Term> Args) : Term(Line);
/// <summary>ECLiPSe's struct notation `name{ field: value, ... }`: fields not written are unbound.</summary>
public sealed record StructTerm(int Line, string Name, IReadOnlyList<(string Field, Term Value)> Fields) : Term(Line)
{
    public Term? this[string field] => Fields.FirstOrDefault(f => f.Field == field).Value;
}

/// <summary>One clause of a program: its head term (the whole term for a fact), and whether it is a fact, a rule or a directive.</summary>
public sealed record Clause(int Line, Term? Head, bool IsFact, bool IsDirective, Term Whole);

/// <summary>
/// A reader for ECLiPSe Prolog source as found in Barrelfish's SKB programs: comments (% and /* */), atoms, quoted
/// atoms, strings, variables, numbers (decimal, floats, ECLiPSe's base'digits such as 16'8086, 0'c character codes),
/// lists, compound terms, struct terms (name{...}) and the standard infix operators, so that a whole file (rules too)
/// reads; facts are what callers use. Input is bounded: a term nested deeper than <see cref="MaxDepth"/> or a file of
/// more than <see cref="MaxTokens"/> tokens is refused. Any mistake is a <see cref="FormatException"/> naming the line.
/// </summary>
public static class EclipseTerms
{
    public const int MaxDepth = 500;
    public const int MaxTokens = 2_000_000;

    private enum Kind { Atom, QuotedAtom, Var, Int, Float, Str, Punct, End, Eof }

    private readonly record struct Token(Kind Kind, string Text, int Line, long Int = 0, double Float = 0, bool SpaceBefore = false);

    private const string SymbolChars = "+-*/\\^<>=~:.?@#&$";

    /// <summary>Infix operators (priority, left and right argument priority) from ECLiPSe's standard table, those the SKB's programs use.</summary>
    private static readonly Dictionary<string, (int P, int L, int R)> Infix = new(StringComparer.Ordinal)
    {
        [":-"] = (1200, 1199, 1199), ["-->"] = (1200, 1199, 1199),
        [";"] = (1100, 1099, 1100), ["|"] = (1100, 1099, 1100), ["->"] = (1050, 1049, 1050), ["*->"] = (1050, 1049, 1050),
        [","] = (1000, 999, 1000),
        ["="] = (700, 699, 699), ["\\="] = (700, 699, 699), ["=="] = (700, 699, 699), ["\\=="] = (700, 699, 699),
        ["@<"] = (700, 699, 699), ["@>"] = (700, 699, 699), ["@=<"] = (700, 699, 699), ["@>="] = (700, 699, 699),
        ["=.."] = (700, 699, 699), ["is"] = (700, 699, 699), ["=:="] = (700, 699, 699), ["=\\="] = (700, 699, 699),
        ["<"] = (700, 699, 699), [">"] = (700, 699, 699), ["=<"] = (700, 699, 699), [">="] = (700, 699, 699),
        ["#="] = (700, 699, 699), ["#\\="] = (700, 699, 699), ["#<"] = (700, 699, 699), ["#>"] = (700, 699, 699),
        ["#=<"] = (700, 699, 699), ["#>="] = (700, 699, 699), ["$="] = (700, 699, 699), ["$>="] = (700, 699, 699),
        ["$=<"] = (700, 699, 699), ["::"] = (700, 699, 699), ["~="] = (700, 699, 699), ["&="] = (700, 699, 699),
        ["of"] = (650, 649, 650), ["with"] = (650, 649, 650), ["@"] = (200, 199, 199),
        [":"] = (200, 199, 200), ["+"] = (500, 500, 499), ["-"] = (500, 500, 499), ["/\\"] = (500, 500, 499), ["\\/"] = (500, 500, 499),
        ["xor"] = (500, 500, 499), ["*"] = (400, 400, 399), ["/"] = (400, 400, 399), ["//"] = (400, 400, 399),
        ["rem"] = (400, 400, 399), ["mod"] = (400, 400, 399), ["div"] = (400, 400, 399), ["<<"] = (400, 400, 399), [">>"] = (400, 400, 399),
        ["**"] = (200, 199, 199), ["^"] = (200, 199, 200), ["..."] = (200, 199, 200),
    };

    /// <summary>Prefix operators: priority and argument priority.</summary>
    private static readonly Dictionary<string, (int P, int A)> Prefix = new(StringComparer.Ordinal)
    {
        [":-"] = (1200, 1199), ["?-"] = (1200, 1199), ["\\+"] = (900, 900), ["-"] = (200, 200), ["+"] = (200, 200), ["\\"] = (200, 200),
        ["local"] = (1180, 1180), ["export"] = (1180, 1180), ["dynamic"] = (1000, 1000), ["not"] = (900, 900), ["once"] = (900, 900),
        ["?"] = (200, 200), ["spy"] = (900, 900), ["nospy"] = (900, 900), ["mode"] = (1000, 1000), ["delay"] = (1150, 1150),
    };

    /// <summary>Every clause of the program text, in order.</summary>
    public static IReadOnlyList<Clause> ReadProgram(string text)
    {
        var tokens = Tokenize(text);
        var clauses = new List<Clause>();
        int pos = 0;
        while (tokens[pos].Kind != Kind.Eof)
        {
            var parser = new Parser(tokens, pos);
            var term = parser.Parse(1200, 0);
            pos = parser.Position;
            if (tokens[pos].Kind != Kind.End)
                throw new FormatException($"line {tokens[pos].Line}: expected the end of a clause ('.') before {Describe(tokens[pos])}");
            pos++;
            clauses.Add(term switch
            {
                CompoundTerm { Name: ":-", Args.Count: 1 } => new Clause(term.Line, null, false, true, term),
                CompoundTerm { Name: ":-" or "-->", Args.Count: 2 } c => new Clause(term.Line, c.Args[0], false, false, term),
                _ => new Clause(term.Line, term, true, false, term),
            });
        }
        return clauses;
    }

    /// <summary>A name from the input inside a message: escaped, and cut at 40 characters.</summary>
    private static string Name(string name) => Shown.Value(name.Length > 40 ? name[..40] + "..." : name);

    private static string Describe(Token t) => t.Kind switch
    {
        Kind.Eof => "the end of the file",
        Kind.End => "'.'",
        _ => $"'{Name(t.Text)}'",
    };

    private static List<Token> Tokenize(string s)
    {
        var tokens = new List<Token>();
        int i = 0, line = 1;
        bool space = true;
        void Add(Token t)
        {
            if (tokens.Count >= MaxTokens) throw new FormatException($"line {line}: more than {MaxTokens} tokens: far larger than any SKB program");
            tokens.Add(t with { SpaceBefore = space });
            space = false;
        }
        while (i < s.Length)
        {
            char c = s[i];
            if (c == '\n') { line++; i++; space = true; continue; }
            if (char.IsWhiteSpace(c)) { i++; space = true; continue; }
            if (c == '%') { while (i < s.Length && s[i] != '\n') i++; space = true; continue; }
            if (c == '/' && i + 1 < s.Length && s[i + 1] == '*')
            {
                int start = line;
                int end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (end < 0) throw new FormatException($"line {start}: a /* comment that never ends");
                line += s.AsSpan(i, end - i).Count('\n');
                i = end + 2; space = true; continue;
            }
            int tokLine = line;
            if (char.IsAsciiDigit(c)) { i = Number(s, i, tokLine, Add); continue; }
            if (char.IsAsciiLetterLower(c))
            {
                int start = i;
                while (i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] == '_')) i++;
                Add(new Token(Kind.Atom, s[start..i], tokLine));
                continue;
            }
            if (char.IsAsciiLetterUpper(c) || c == '_')
            {
                int start = i;
                while (i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] == '_')) i++;
                Add(new Token(Kind.Var, s[start..i], tokLine));
                continue;
            }
            if (c is '\'' or '"')
            {
                var (text, next, lines) = Quoted(s, i, tokLine);
                line += lines;
                Add(new Token(c == '"' ? Kind.Str : Kind.QuotedAtom, text, tokLine));
                i = next;
                continue;
            }
            if (c is '(' or ')' or '[' or ']' or '{' or '}' or ',' or '|')
            {
                Add(new Token(Kind.Punct, c.ToString(), tokLine));
                i++;
                continue;
            }
            if (c is '!' or ';')
            {
                Add(new Token(Kind.Atom, c.ToString(), tokLine));
                i++;
                continue;
            }
            if (SymbolChars.Contains(c))
            {
                // A lone '.' followed by layout, a comment or the end is the end of a clause.
                if (c == '.' && (i + 1 == s.Length || char.IsWhiteSpace(s[i + 1]) || s[i + 1] == '%'))
                {
                    Add(new Token(Kind.End, ".", tokLine));
                    i++;
                    continue;
                }
                int start = i;
                while (i < s.Length && SymbolChars.Contains(s[i])) i++;
                Add(new Token(Kind.Atom, s[start..i], tokLine));
                continue;
            }
            throw new FormatException($"line {tokLine}: unexpected character {Shown.Value(c.ToString())}");
        }
        tokens.Add(new Token(Kind.Eof, "", line, SpaceBefore: true));
        return tokens;
    }

    private static int Number(string s, int i, int line, Action<Token> add)
    {
        int start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        var digits = s[start..i];
        if (i < s.Length && s[i] == '\'')
        {
            if (digits == "0")
            {
                // 0'c: the character code of c.
                if (i + 1 >= s.Length) throw new FormatException($"line {line}: 0' at the end of the file");
                char ch = s[i + 1];
                if (ch == '\\' || char.IsSurrogate(ch)) throw new FormatException($"line {line}: an escaped or non-BMP 0' character code is not supported");
                add(new Token(Kind.Int, s[start..(i + 2)], line, Int: ch));
                return i + 2;
            }
            if (!int.TryParse(digits, CultureInfo.InvariantCulture, out int radix) || radix is < 2 or > 36)
                throw new FormatException($"line {line}: base {Shown.Value(digits)} in {Shown.Value(digits)}'...: ECLiPSe's bases are 2 to 36");
            int j = i + 1;
            long value = 0;
            while (j < s.Length && Digit(s[j]) is int d && d < radix)
            {
                if (value > (long.MaxValue - d) / radix) throw new FormatException($"line {line}: the number {Shown.Value(s[start..Math.Min(s.Length, j + 1)])}... does not fit in 64 bits");
                value = value * radix + d;
                j++;
            }
            if (j == i + 1) throw new FormatException($"line {line}: {Shown.Value(digits)}' is followed by no base-{radix} digit");
            add(new Token(Kind.Int, s[start..j], line, Int: value));
            return j;
        }
        if (i + 1 < s.Length && s[i] == '.' && char.IsAsciiDigit(s[i + 1]))
        {
            i++;
            while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
            if (i < s.Length && (s[i] is 'e' or 'E'))
            {
                int e = i + 1;
                if (e < s.Length && s[e] is '+' or '-') e++;
                if (e < s.Length && char.IsAsciiDigit(s[e]))
                {
                    i = e;
                    while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
                }
            }
            var text = s[start..i];
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) || !double.IsFinite(f))
                throw new FormatException($"line {line}: {Shown.Value(text)} is not a number");
            add(new Token(Kind.Float, text, line, Float: f));
            return i;
        }
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            throw new FormatException($"line {line}: the number {Shown.Value(digits.Length > 40 ? digits[..40] + "..." : digits)} does not fit in 64 bits");
        add(new Token(Kind.Int, digits, line, Int: n));
        return i;
    }

    private static int? Digit(char c) =>
        char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiLetterLower(c) ? c - 'a' + 10 : char.IsAsciiLetterUpper(c) ? c - 'A' + 10 : null;

    private static (string Text, int Next, int Lines) Quoted(string s, int i, int line)
    {
        char q = s[i];
        var sb = new StringBuilder();
        int lines = 0;
        i++;
        while (true)
        {
            if (i >= s.Length) throw new FormatException($"line {line}: a {(q == '"' ? "string" : "quoted atom")} that never ends");
            char c = s[i];
            if (c == q)
            {
                if (i + 1 < s.Length && s[i + 1] == q) { sb.Append(q); i += 2; continue; }
                return (sb.ToString(), i + 1, lines);
            }
            if (c == '\n') lines++;
            if (c == '\\' && i + 1 < s.Length)
            {
                char e = s[i + 1];
                sb.Append(e switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '\\' => '\\', '\'' => '\'', '"' => '"', '\n' => '\0', _ => e });
                if (e == '\n') { lines++; sb.Length--; }
                i += 2;
                continue;
            }
            sb.Append(c);
            i++;
        }
    }

    private sealed class Parser(List<Token> tokens, int position)
    {
        public int Position { get; private set; } = position;

        private Token Peek => tokens[Position];
        private Token Next() => tokens[Position++];

        private FormatException Error(string what) => new($"line {Peek.Line}: {what} at {Describe(Peek)}");

        private bool IsPunct(string p) => Peek.Kind == Kind.Punct && Peek.Text == p;

        private void Expect(string p)
        {
            if (!IsPunct(p)) throw Error($"expected '{p}'");
            Position++;
        }

        /// <summary>A term of at most priority <paramref name="max"/>.</summary>
        public Term Parse(int max, int depth)
        {
            if (depth > MaxDepth) throw Error($"terms nested more than {MaxDepth} deep");
            var (left, leftP) = Primary(max, depth);
            return InfixLoop(left, leftP, max, depth);
        }

        private Term InfixLoop(Term left, int leftP, int max, int depth)
        {
            while (true)
            {
                var t = Peek;
                string? op = t.Kind switch
                {
                    Kind.Atom => t.Text,
                    Kind.Punct when t.Text is "," or "|" => t.Text,
                    _ => null,
                };
                if (op is null || !Infix.TryGetValue(op, out var o) || o.P > max || leftP > o.L) return left;
                Position++;
                var right = Parse(o.R, depth + 1);
                left = new CompoundTerm(left.Line, op == "|" ? ";" : op, [left, right]);
                leftP = o.P;
            }
        }

        private (Term, int) Primary(int max, int depth)
        {
            var t = Next();
            switch (t.Kind)
            {
                case Kind.Int: return (new IntTerm(t.Line, t.Int), 0);
                case Kind.Float: return (new FloatTerm(t.Line, t.Float), 0);
                case Kind.Str: return (new StringTerm(t.Line, t.Text), 0);
                case Kind.Var: return (new VarTerm(t.Line, t.Text), 0);
                case Kind.Punct when t.Text == "(":
                    {
                        var inner = Parse(1200, depth + 1);
                        Expect(")");
                        return (inner, 0);
                    }
                case Kind.Punct when t.Text == "[":
                    {
                        if (IsPunct("]")) { Position++; return (Named(t, "[]", depth), 0); }
                        var items = new List<Term> { Parse(999, depth + 1) };
                        Term? tail = null;
                        while (IsPunct(",")) { Position++; items.Add(Parse(999, depth + 1)); }
                        if (IsPunct("|")) { Position++; tail = Parse(999, depth + 1); }
                        Expect("]");
                        return (new ListTerm(t.Line, items, tail), 0);
                    }
                case Kind.Punct when t.Text == "{":
                    {
                        if (IsPunct("}")) { Position++; return (new AtomTerm(t.Line, "{}"), 0); }
                        var inner = Parse(1200, depth + 1);
                        Expect("}");
                        return (new CompoundTerm(t.Line, "{}", [inner]), 0);
                    }
                case Kind.Atom or Kind.QuotedAtom:
                    {
                        // A name directly followed by '(' or '{' is a compound or a struct.
                        if (IsPunct("(") && !Peek.SpaceBefore || IsPunct("{") && !Peek.SpaceBefore || t.Kind == Kind.Atom && (IsPunct("(") || IsPunct("{")) && !Prefix.ContainsKey(t.Text))
                            return (Named(t, t.Text, depth), 0);
                        if (t.Kind == Kind.Atom && t.Text == "-" && Peek.Kind is Kind.Int or Kind.Float && !Peek.SpaceBefore)
                        {
                            var n = Next();
                            return (n.Kind == Kind.Int ? new IntTerm(t.Line, -n.Int) : new FloatTerm(t.Line, -n.Float), 0);
                        }
                        if (t.Kind == Kind.Atom && Prefix.TryGetValue(t.Text, out var p) && StartsTerm(Peek))
                        {
                            int pri = p.P, arg = p.A;
                            if (pri > max) { pri = 999; arg = 999; }
                            var operand = Parse(arg, depth + 1);
                            return (new CompoundTerm(t.Line, t.Text, [operand]), pri);
                        }
                        int atomP = t.Kind == Kind.Atom && (Infix.TryGetValue(t.Text, out var io) ? io.P : Prefix.TryGetValue(t.Text, out var po) ? po.P : 0) is int ap && ap <= max ? ap : 0;
                        return (new AtomTerm(t.Line, t.Text), atomP);
                    }
                case Kind.Punct when t.Text == ",":
                    throw new FormatException($"line {t.Line}: unexpected ','");
                default:
                    Position--;
                    throw Error("expected a term");
            }
        }

        private bool StartsTerm(Token t) => t.Kind switch
        {
            Kind.Int or Kind.Float or Kind.Str or Kind.Var or Kind.QuotedAtom => true,
            Kind.Atom => !Infix.ContainsKey(t.Text) || Prefix.ContainsKey(t.Text),
            Kind.Punct => t.Text is "(" or "[" or "{",
            _ => false,
        };

        /// <summary>name(...) or name{...} after the name, or the atom itself.</summary>
        private Term Named(Token t, string name, int depth)
        {
            if (name == "[]") return new AtomTerm(t.Line, "[]");
            if (IsPunct("("))
            {
                Position++;
                var args = new List<Term> { Parse(999, depth + 1) };
                while (IsPunct(",")) { Position++; args.Add(Parse(999, depth + 1)); }
                Expect(")");
                return new CompoundTerm(t.Line, name, args);
            }
            if (IsPunct("{"))
            {
                Position++;
                var fields = new List<(string, Term)>();
                if (!IsPunct("}"))
                {
                    while (true)
                    {
                        var f = Next();
                        if (f.Kind is not (Kind.Atom or Kind.QuotedAtom)) { Position--; throw Error($"expected a field name in {Name(name)}{{...}}"); }
                        if (!(Peek.Kind == Kind.Atom && Peek.Text == ":")) throw Error($"expected ':' after the field {Name(f.Text)} of {Name(name)}{{...}}");
                        Position++;
                        fields.Add((f.Text, Parse(999, depth + 1)));
                        if (IsPunct(",")) { Position++; continue; }
                        break;
                    }
                }
                Expect("}");
                return new StructTerm(t.Line, name, fields);
            }
            return new AtomTerm(t.Line, name);
        }
    }
}
