using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Passthru.Hotplug;

/// <summary>QEMU answered a command with an error: its class and its own words (quoted to users as they are).</summary>
public sealed class QmpError(string command, string errorClass, string description) : Exception($"{command}: {description}")
{
    public string Command { get; } = command;
    public string Class { get; } = errorClass;
    public string Description { get; } = description;
}

/// <summary>QEMU did not answer in time: the command may still be under way, so its effect is unknown.</summary>
public sealed class QmpTimeout(string message) : UserError(message);

/// <summary>
/// QEMU's machine protocol (QMP) over the guest's Unix socket: one JSON object per line each way. The server greets
/// first ({"QMP": ...}); nothing but `qmp_capabilities` is accepted until it is sent. Each command carries an id that
/// its answer ({"return": ...} or {"error": ...}) repeats; events ({"event": ...}) may arrive at any time in between
/// and are kept for <see cref="WaitForEvent"/>. Messages are built and read with System.Text.Json's writer-free
/// node API, which needs no reflection (NativeAOT).
/// </summary>
public sealed class QmpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly List<JsonObject> _events = [];
    private int _nextId;

    public string Path { get; }
    /// <summary>QEMU's version from the greeting ("7.2.0").</summary>
    public string QemuVersion { get; private set; } = "";

    private QmpClient(string path, Socket socket)
    {
        Path = path;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, new UTF8Encoding(false));
    }

    /// <summary>Connects and completes the handshake. A socket that does not greet within the wait is busy: QEMU serves one QMP client at a time.</summary>
    public static QmpClient Connect(string path, TimeSpan wait)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { socket.Connect(new UnixDomainSocketEndPoint(path)); }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new UserError($"cannot connect to the guest's control socket {path} ({e.Message}): is the guest still running? (passthru guests)");
        }
        var client = new QmpClient(path, socket);
        try
        {
            socket.ReceiveTimeout = (int)wait.TotalMilliseconds;
            JsonObject greeting;
            try { greeting = client.ReadMessage(); }
            catch (TimeoutException)
            {
                throw new UserError($"the guest's control socket {path} did not answer within {wait.TotalSeconds:0} s: another passthru attach or detach is talking to it (QEMU serves one at a time); try again");
            }
            client.QemuVersion = QmpMessages.Version(greeting);
            client.Execute("qmp_capabilities", null, wait);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>Sends a command and returns its "return" value; an "error" answer throws <see cref="QmpError"/>.</summary>
    public JsonNode? Execute(string command, JsonObject? arguments, TimeSpan wait)
    {
        var id = $"passthru-{++_nextId}";
        var message = new JsonObject { ["execute"] = command, ["id"] = id };
        if (arguments is not null) message["arguments"] = arguments;
        var bytes = Encoding.UTF8.GetBytes(message.ToJsonString() + "\n");
        _stream.Write(bytes);
        _stream.Flush();
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            JsonObject reply;
            try { reply = ReadMessage(deadline); }
            catch (TimeoutException)
            {
                throw new QmpTimeout($"QEMU did not answer {command} within {wait.TotalSeconds:0} s");
            }
            if (reply.ContainsKey("event")) { _events.Add(reply); continue; }
            if (QmpMessages.Answer(reply, id, command, out var result)) return result;
        }
    }

    /// <summary>Waits for an event (already received ones count) whose data matches; null when the wait ends first.</summary>
    public JsonObject? WaitForEvent(string name, Func<JsonObject?, bool> matches, TimeSpan wait)
    {
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            var seen = _events.FirstOrDefault(e => QmpMessages.EventName(e) == name && matches(e["data"] as JsonObject));
            if (seen is not null) { _events.Remove(seen); return seen; }
            if (DateTime.UtcNow >= deadline) return null;
            try
            {
                var message = ReadMessage(deadline);
                if (message.ContainsKey("event")) _events.Add(message);
            }
            catch (TimeoutException) { return null; }
        }
    }

    private JsonObject ReadMessage(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        if (left <= TimeSpan.Zero) throw new TimeoutException();
        _socket.ReceiveTimeout = Math.Max(1, (int)left.TotalMilliseconds);
        return ReadMessage();
    }

    private JsonObject ReadMessage()
    {
        string? line;
        try { line = _reader.ReadLine(); }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock })
        {
            throw new TimeoutException();
        }
        if (line is null) throw new UserError($"the guest's control socket {Path} closed: QEMU has exited");
        return QmpMessages.Parse(line, Path);
    }

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }
}

/// <summary>
/// QMP messages as <see cref="QmpClient"/> reads them, apart from the socket (the fuzzer and tests call these
/// directly): one line parsed, the greeting's version, an event's name, an answer to a command.
/// </summary>
public static class QmpMessages
{
    /// <summary>One line from the socket as a JSON object; anything else is an error naming the socket.</summary>
    public static JsonObject Parse(string line, string path)
    {
        // A key twice in one object is refused here: JsonObject would throw on first access, anywhere later.
        var options = new JsonDocumentOptions { AllowDuplicateProperties = false };
        try
        {
            return JsonNode.Parse(line, documentOptions: options) as JsonObject ?? throw new UserError($"QEMU sent a message that is not a JSON object on {path}: {Excerpt(line)}");
        }
        catch (JsonException e)
        {
            throw new UserError($"QEMU sent something that is not JSON on {path} ({Passthru.Host.StateFile.Where(e)}): {Excerpt(line)}");
        }
    }

    /// <summary>QEMU's version from the greeting ({"QMP": {"version": {"qemu": {"major": 7, ...}}}}), "" when it has none.</summary>
    public static string Version(JsonObject greeting)
    {
        // Indexing a value that is not an object throws: each level is matched as an object first.
        return greeting["QMP"] is JsonObject { } qmp && qmp["version"] is JsonObject version && version["qemu"] is JsonObject qemu
            ? Shown.Value($"{qemu["major"]}.{qemu["minor"]}.{qemu["micro"]}") : "";
    }

    /// <summary>
    /// A string value, or null for anything else: the explicit (string?) and (int?) conversions throw
    /// InvalidOperationException on an object, an array or a value of another type.
    /// </summary>
    public static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>An int value, or null for anything else (see <see cref="Text"/>).</summary>
    public static int? Int(JsonNode? node) => node is JsonValue v && v.TryGetValue<int>(out var i) ? i : null;

    /// <summary>A line as an error shows it: control characters escaped, at most 200 characters.</summary>
    private static string Excerpt(string line) => Shown.Value(line.Length > 200 ? line[..200] + "…" : line);

    /// <summary>An event's name ({"event": "DEVICE_DELETED", ...}); null for other messages.</summary>
    public static string? EventName(JsonObject message) => message.ContainsKey("event") ? Text(message["event"]) : null;

    /// <summary>
    /// Whether a message is the answer to the command with this id; if so its "return" value, or
    /// <see cref="QmpError"/> for an "error" answer. An answer to someone else's command is not ours.
    /// </summary>
    public static bool Answer(JsonObject reply, string id, string command, out JsonNode? result)
    {
        result = null;
        if (Text(reply["id"]) != id) return false;
        if (reply["error"] is JsonObject error)
            throw new QmpError(command, Shown.Value(Text(error["class"]) ?? "GenericError"), Shown.Value(Text(error["desc"]) ?? error.ToJsonString()));
        result = reply["return"];
        return true;
    }
}
