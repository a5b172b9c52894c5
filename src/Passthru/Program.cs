using System.Text;
using Passthru.Cli;

// Console.Out flushes on every line; a list of thousands of functions wants one buffered stream. 16K characters
// amortize the writes; a larger buffer would be a large-object allocation in every process, bind and restore too.
using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 16384) { AutoFlush = false };
// Console.Error is made on first use: most runs never write to it, and setting it up is start-up cost.
return Cli.Run(args, stdout, new DeferredWriter(() => Console.Error));
