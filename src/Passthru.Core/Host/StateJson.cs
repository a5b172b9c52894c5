using System.Buffers;
using System.Text.Json;

namespace Passthru.Host;

/// <summary>
/// One JSON object of a state file (the journal, a guest record), read field by field from a JsonDocument, as strictly
/// as the serializer read it before: a field this passthru does not know is refused (saving the file again would drop
/// what a newer passthru wrote there), a required one missing is refused, and so is a value of the wrong type; each
/// refusal names the place, as "$.functions[0].driver".
/// Why not the serializer: System.Text.Json builds a type's metadata once per process (its converters, its properties,
/// and a reflection scan of its attributes for polymorphism, which the static binary does through its metadata reader
/// and type loader). For the journal that was ~18 ms of every bind and every restore in the virtual host, more than
/// the rest of their own work (perf, 2026-12-02, bench/README.md); a JsonDocument needs none of it.
/// </summary>
public readonly struct StateObject
{
    private readonly JsonElement _element;

    /// <summary>Where this object is in its file: "$", "$.functions[0]".</summary>
    public string Path { get; }

    private StateObject(JsonElement element, string path)
    {
        _element = element;
        Path = path;
    }

    /// <summary>A file's top-level object; <paramref name="known"/> are the only fields it may have.</summary>
    public static StateObject Root(JsonDocument document, params ReadOnlySpan<string> known)
    {
        if (document.RootElement.ValueKind == JsonValueKind.Null) throw new StateDamage("it holds null");
        return Of(document.RootElement, "$", known);
    }

    private static StateObject Of(JsonElement element, string path, ReadOnlySpan<string> known)
    {
        if (element.ValueKind != JsonValueKind.Object) throw Wrong(path);
        foreach (var field in element.EnumerateObject())
        {
            var name = Text(() => field.Name, path);
            if (!known.Contains(name)) throw Wrong($"{path}.{name}");
        }
        return new StateObject(element, path);
    }

    /// <summary>The words every refusal of a field uses (a test of each file's damages names them).</summary>
    public static StateDamage Wrong(string path) =>
        new($"a field missing, unknown to this passthru (a newer one wrote it?) or of the wrong type at {Shown.Value(path)}");

    /// <summary>The field's value: null when it is absent and may be; a required one absent is refused.</summary>
    private JsonElement? Field(string name, bool required)
    {
        if (_element.TryGetProperty(name, out var value)) return value;
        return required ? throw Wrong(Path) : null;
    }

    /// <summary>
    /// A number that fits an int; null when absent or null. With <paramref name="nullable"/> false a null is refused
    /// (the field's type has no null, as an int's had for the serializer).
    /// </summary>
    public int? Int(string name, bool required = false, bool nullable = true)
    {
        if (Field(name, required) is not { } value || IsAllowedNull(value, name, nullable)) return null;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number) ? number : throw Wrong($"{Path}.{name}");
    }

    public bool? Bool(string name, bool required = false, bool nullable = true)
    {
        if (Field(name, required) is not { } value || IsAllowedNull(value, name, nullable)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong($"{Path}.{name}"),
        };
    }

    public string? String(string name, bool required = false)
    {
        if (Field(name, required) is not { } value || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String ? Text(value.GetString, $"{Path}.{name}") : throw Wrong($"{Path}.{name}");
    }

    /// <summary>A list of strings (an element may be null: the caller says whether that is damage); null when absent or null.</summary>
    public List<string?>? Strings(string name, bool required = false)
    {
        if (Array(name, required) is not { } array) return null;
        var list = new List<string?>(array.GetArrayLength());
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            list.Add(item.ValueKind switch
            {
                JsonValueKind.Null => null,
                JsonValueKind.String => Text(item.GetString, $"{Path}.{name}[{i}]"),
                _ => throw Wrong($"{Path}.{name}[{i}]"),
            });
            i++;
        }
        return list;
    }

    /// <summary>A list of objects with the fields <paramref name="known"/> (an element may be null); null when absent or null.</summary>
    public List<StateObject?>? Objects(string name, bool required, params ReadOnlySpan<string> known)
    {
        if (Array(name, required) is not { } array) return null;
        var list = new List<StateObject?>(array.GetArrayLength());
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            list.Add(item.ValueKind == JsonValueKind.Null ? null : Of(item, $"{Path}.{name}[{i}]", known));
            i++;
        }
        return list;
    }

    private JsonElement? Array(string name, bool required)
    {
        if (Field(name, required) is not { } value || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.Array ? value : throw Wrong($"{Path}.{name}");
    }

    // JsonDocument checks a string's bytes only when it is read: text that is not UTF-8, or an escaped lone
    // surrogate ("\ud800"), throws InvalidOperationException there, which is damage like any other (found by fuzzing).
    private static string? Text(Func<string?> read, string path)
    {
        try { return read(); }
        catch (InvalidOperationException) { throw new StateDamage($"a text that is not valid UTF-8 or UTF-16 at {Shown.Value(path)}"); }
    }

    private bool IsAllowedNull(JsonElement value, string name, bool nullable) =>
        value.ValueKind == JsonValueKind.Null && (nullable ? true : throw Wrong($"{Path}.{name}"));
}

/// <summary>A state file as written: indented JSON through Utf8JsonWriter, in the layout the serializer gave it.</summary>
public static class StateJsonWriter
{
    public static byte[] Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            write(json);
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A list of strings (each may be null).</summary>
    public static void Strings(this Utf8JsonWriter json, string name, IEnumerable<string?> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values) json.WriteStringValue(value);
        json.WriteEndArray();
    }

    public static void NumberOrNull(this Utf8JsonWriter json, string name, int? value)
    {
        if (value is int number) json.WriteNumber(name, number);
        else json.WriteNull(name);
    }
}
