namespace Passthru.Check;

public enum Status { Pass, Note, Warn, Fail }

/// <summary>One line of `passthru check`: what was looked at, what was found, and how to fix it when it is not PASS.</summary>
public sealed record Finding(string Id, string Title, Status Status, string Message, string? Fix = null);
