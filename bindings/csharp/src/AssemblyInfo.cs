// The test program (bindings/csharp/tests, assembly HyperSdk.Tests) reads the internal Json and
// Diagnostics classes; nothing else sees them.
using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("HyperSdk.Tests")]
