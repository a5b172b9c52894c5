namespace Passthru.Export;

/// <summary>An export's text and what the target could not express (one line each, for stderr).</summary>
public sealed record ExportResult(string Text, IReadOnlyList<string> Notes);
