using System.Text;
using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>The console script language: what it accepts, and each mistake as the one line `run` prints for it.</summary>
public sealed class ConsoleScriptParserTests
{
    private static string Error(string text) =>
        Assert.Throws<UserError>(() => ConsoleScript.Parse("boot.script", text)) is var e && e.ExitCode == ExitCodes.Usage
            ? e.Message : throw new Xunit.Sdk.XunitException($"exit code {e.ExitCode}");

    [Theory]
    [InlineData("expect ok\nfrobnicate now\n", "boot.script:2: unknown command 'frobnicate' (use expect, send or timeout; # starts a comment)")]
    [InlineData("send a\\qb", "boot.script:1: send: unknown escape '\\q' (use \\r, \\n, \\t, \\e, \\xHH or \\\\)")]
    [InlineData("send \\x4", "boot.script:1: send: \\x needs two hex digits (e.g. \\x03 for Ctrl-C)")]
    [InlineData("send \\xg1", "boot.script:1: send: \\x needs two hex digits (e.g. \\x03 for Ctrl-C)")]
    [InlineData("send abc\\", "boot.script:1: send: a lone '\\' at the end (write \\\\ for a backslash)")]
    [InlineData("# comment\n\ntimeout 0\n", "boot.script:3: timeout '0': give a positive number of seconds")]
    [InlineData("timeout -3", "boot.script:1: timeout '-3': give a positive number of seconds")]
    [InlineData("timeout soon", "boot.script:1: timeout 'soon': give a positive number of seconds")]
    [InlineData("expect", "boot.script:1: expect needs a regular expression")]
    [InlineData("expect   ", "boot.script:1: expect needs a regular expression")]
    [InlineData("send", "boot.script:1: send needs the text to type (e.g. send ps\\r)")]
    [InlineData("timeout", "boot.script:1: timeout needs a number of seconds")]
    public void A_malformed_line_is_named_with_what_is_wrong(string script, string message) => Assert.Equal(message, Error(script));

    [Fact]
    public void A_bad_regular_expression_is_named_with_the_regex_engines_reason()
    {
        var message = Error("expect fish\nexpect (unclosed\n");
        Assert.StartsWith("boot.script:2: expect: '(unclosed' is not a .NET regular expression: ", message);
        Assert.DoesNotContain("\n", message);
    }

    [Fact]
    public void Escapes_become_the_bytes_they_name_and_no_newline_is_added()
    {
        var s = ConsoleScript.Parse("s", "send ps\\r\nsend a\\tb\\n\\e[A\\x03\\\\ é\\xff");
        var steps = s.Steps.Cast<SendStep>().ToList();
        Assert.Equal("ps\r"u8.ToArray(), steps[0].Data);
        Assert.Equal([.. "a\tb\n\u001b[A\u0003\\ "u8.ToArray(), .. Encoding.UTF8.GetBytes("é"), 0xff], steps[1].Data);
    }

    [Fact]
    public void Comments_blank_lines_and_timeouts_shape_the_steps()
    {
        var s = ConsoleScript.Parse("s", "# boot to the shell\r\n\n  expect fish v0\\.2\ntimeout 2.5\n   # indented comment\nexpect > \nsend free\\r\ntimeout 300\nexpect Free memory: \\d+\n");
        Assert.Collection(s.Steps,
            e => { Assert.Equal((3, "expect fish v0\\.2", 60.0), (e.Line, e.Text, e.Timeout.TotalSeconds)); Assert.Matches(((ExpectStep)e).Pattern, "fish v0.2 --"); },
            // The argument keeps its trailing space: a prompt is matched as written.
            e => { Assert.Equal((6, "expect >", 2.5), (e.Line, e.Text, e.Timeout.TotalSeconds)); Assert.Equal("> ", ((ExpectStep)e).Pattern.ToString()); },
            e => Assert.Equal((7, 2.5), (e.Line, e.Timeout.TotalSeconds)),
            e => Assert.Equal((9, 300.0), (e.Line, e.Timeout.TotalSeconds)));
    }

    [Fact]
    public void An_empty_script_has_no_steps() => Assert.Empty(ConsoleScript.Parse("s", "# nothing yet\n\n").Steps);

    [Fact]
    public void Run_refuses_a_malformed_script_before_qemu_starts_in_one_line_exit_2()
    {
        var dir = GuestFiles.Directory("passthru-script-").FullName;
        try
        {
            var script = Path.Combine(dir, "boot.script");
            File.WriteAllText(script, "expect fish\nsend ps\\q\n");
            var kernel = Path.Combine(dir, "kernel");
            File.WriteAllText(kernel, "");
            // A QEMU that would leave a mark if it ran.
            var qemu = Path.Combine(dir, "qemu");
            File.WriteAllText(qemu, $"#!/bin/sh\ntouch {dir}/ran\n");
            File.SetUnixFileMode(qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var r = CliRunner.OnCapture("vhost", "run", "--qemu", qemu, "--kernel", kernel, "--accel", "tcg", "--script", script);
            Assert.Equal(ExitCodes.Usage, r.ExitCode);
            Assert.Equal($"passthru: {script}:2: send: unknown escape '\\q' (use \\r, \\n, \\t, \\e, \\xHH or \\\\)\n", r.Stderr);
            Assert.False(File.Exists(Path.Combine(dir, "ran")));

            File.WriteAllText(script, "expect fish\n");
            foreach (var (args, message) in new (string[], string)[]
            {
                (["--script", script, "--expect", "fish"], "passthru: give either --script or --expect, not both (a script's `expect` lines do what --expect does)\n"),
                (["--script", Path.Combine(dir, "missing")], $"passthru: --script {Path.Combine(dir, "missing")}: no such file\n"),
            })
            {
                r = CliRunner.OnCapture("vhost", ["run", "--qemu", qemu, "--kernel", kernel, "--accel", "tcg", .. args]);
                Assert.Equal((ExitCodes.Usage, message), (r.ExitCode, r.Stderr));
            }
            r = CliRunner.OnCapture("vhost", "run", "--qemu", qemu, "--kernel", kernel, "--junit", Path.Combine(dir, "j.xml"));
            Assert.Equal((ExitCodes.Usage, "passthru: --junit goes with --script\n"), (r.ExitCode, r.Stderr));
        }
        finally { Directory.Delete(dir, true); }
    }
}
