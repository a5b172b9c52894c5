using System.Text;
using Passthru.Cli;

// Console.Out flushes on every line; a list of thousands of functions wants one buffered stream.
using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16) { AutoFlush = false };
return Cli.Run(args, stdout, Console.Error);
