using System.Text;
using Passthru.Cli;
using Passthru.Host;

// First, before Passthru opens anything: a descriptor among 0-2 that the caller closed must not become one of
// Passthru's own files (its lock, its journal), where prints to stdout or stderr would land.
StandardOutput.CoverClosedDescriptors();

// Console.Out flushes on every line; a list of thousands of functions wants one buffered stream. 4K characters make
// a write of about 4 KB: a list of 4,096 functions is ~100 writes. A larger buffer costs every process, bind and
// restore too: the writer allocates its characters and three bytes for each (16K characters were 80 KB that the GC
// cleared and the kernel faulted in, page by page, for a command that prints one line).
// The stream is ours, not Console's (see StandardOutput).
using var stdout = new StreamWriter(new StandardOutput(), new UTF8Encoding(false), 4096) { AutoFlush = false };
// Console.Error is made on first use: most runs never write to it, and setting it up is start-up cost.
return Cli.Run(args, stdout, new DeferredWriter(() => Console.Error));
