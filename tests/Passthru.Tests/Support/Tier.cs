namespace Passthru.Tests.Support;

/// <summary>
/// The test tiers, as an xunit trait on the class (or on a single test): <c>[Trait(Support.Tier.Name, Support.Tier.Slow)]</c>.
/// Slow: whatever needs QEMU, the virtual host (tests/vm), a real guest, the packaging tools (dpkg-deb, lintian, the
/// shells), libvirt, the python validators, Debian packages fetched from the archive, or the published binary
/// (artifacts/bin/passthru), or takes seconds of its own. The rest is the fast tier: `bash scripts/test.sh --fast`
/// runs it (dotnet test --filter "Tier!=Slow"); `bash scripts/test.sh` runs both.
/// </summary>
public static class Tier
{
    public const string Name = "Tier";
    public const string Slow = "Slow";
}
