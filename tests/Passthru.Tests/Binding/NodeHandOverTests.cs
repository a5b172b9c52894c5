using Passthru.Binding;
using Passthru.Host;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// The vfio group node handed to the guest's unprivileged QEMU user is a custody step like any other: journaled
/// with its owner and mode before the change, and put back by every give-back once no running guest holds its group,
/// also by restore after a kill. On a scratch copy of the virtual host's capture, where dev/vfio/2 is a plain file
/// (owner and mode behave the same; the real node is tested in the virtual host).
/// </summary>
public sealed class NodeHandOverTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");
    private string StateDir => Path.Combine(_tree, "run/passthru");
    private string Node => Path.Combine(_tree, "dev/vfio/2");
    private static readonly PciAddress Nic = PciAddress.Parse("0000:00:02.0");
    private static readonly Account Qemu = new("passthru-qemu", 12345, 12346, []);

    public NodeHandOverTests()
    {
        Directory.CreateDirectory(StateDir);
        Directory.CreateDirectory(Path.GetDirectoryName(Node)!);
        File.WriteAllText(Node, "");
        Owner(0, 0, 0x1B0); // 0660: a mode other than the hand-over's 0600, to see it come back
    }

    public void Dispose() => Directory.Delete(_tree, true);

    private void Owner(int uid, int gid, int mode) => new HostRoot(_tree).SetOwner("dev/vfio/2", uid, gid, mode);
    private (int Uid, int Gid, int Mode) NodeOwner() => new HostRoot(_tree).Owner("dev/vfio/2")!.Value;

    [Fact]
    public void Hand_over_is_journaled_then_made_and_a_give_back_with_no_guest_puts_it_back()
    {
        var host = new HostRoot(_tree);
        using (var custody = Custody.Take(host, StateDir))
        {
            var plan = custody.PlanHandOver([Nic], Qemu);
            Assert.Equal(["hand /dev/vfio/2 to passthru-qemu (12345:12346, mode 0600) while the guest holds 0000:00:02.0"], plan.Steps.Select(s => s.Describe()));
            custody.Apply(plan);
        }
        Assert.Equal((12345, 12346, 0x180), NodeOwner());
        var journal = Journal.Load(StateDir);
        Assert.Equal([new NodeState("dev/vfio/2", 0, 0, 0x1B0, [Nic])], journal.Nodes, new NodeComparer());

        // No guest holds group 2 (there is no guest): restore puts the node back as it was, and says so.
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["gave /dev/vfio/2 back to 0:0, mode 0660"], r.Lines);
        Assert.Equal((0, 0, 0x1B0), NodeOwner());
        Assert.False(File.Exists(Path.Combine(StateDir, "state.json")));
    }

    [Fact]
    public void A_kill_right_after_the_change_leaves_restore_what_to_put_back()
    {
        var host = new HostRoot(_tree) { AfterWrite = (path, _) => { if (path == "dev/vfio/2") throw new KilledHere(); } };
        using (var custody = Custody.Take(host, StateDir))
            Assert.Throws<KilledHere>(() => custody.Apply(custody.PlanHandOver([Nic], Qemu)));
        Assert.Equal((12345, 12346, 0x180), NodeOwner());
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal((0, 0, 0x1B0), NodeOwner());
    }

    [Fact]
    public void A_node_a_running_guest_holds_stays_its_users_until_the_guest_is_gone()
    {
        using (var custody = Custody.Take(new HostRoot(_tree), StateDir)) custody.Apply(custody.PlanHandOver([Nic], Qemu));
        // A running unprivileged guest holding the NIC: its QEMU's command line names the guest's UUID.
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        var qmp = Path.Combine(guests, "probe-1.qmp");
        File.WriteAllText(Path.Combine(guests, "probe-1.json"), $$"""
            { "name": "probe-1", "runner_pid": 4241, "qemu_pid": 4242, "qmp": "{{qmp}}", "machine": "q35", "ports": ["pt0"],
              "devices": [ { "address": "{{Nic}}", "id": "hostdev-0000-00-02-0", "port": "pt0", "attached": false, "bound": [] } ],
              "bound": [], "user": "passthru-qemu", "uid": 12345, "gid": 12346 }
            """);
        Directory.CreateDirectory(Path.Combine(_tree, "proc/4242"));
        File.WriteAllText(Path.Combine(_tree, "proc/4242/cmdline"), $"/usr/bin/setpriv\0--reuid=passthru-qemu\0--\0qemu-system-x86_64\0-uuid\0{GuestRecords.Uuid(qmp)}\0");

        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal((12345, 12346, 0x180), NodeOwner());
        Assert.NotEmpty(Journal.Load(StateDir).Nodes);

        Directory.Delete(Path.Combine(_tree, "proc/4242"), true); // QEMU killed; the run too (no pid 4241)
        r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal((0, 0, 0x1B0), NodeOwner());
        Assert.Empty(Journal.Load(StateDir).Nodes);
    }

    [Fact]
    public void Guests_cleaning_up_after_a_killed_guest_puts_its_node_back_though_the_device_stays_an_earlier_binds()
    {
        using (var custody = Custody.Take(new HostRoot(_tree), StateDir)) custody.Apply(custody.PlanHandOver([Nic], Qemu));
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        File.WriteAllText(Path.Combine(guests, "lp1.json"), $$"""
            { "name": "lp1", "runner_pid": 999999, "qemu_pid": 999998, "qmp": "{{guests}}/lp1.qmp", "machine": "q35", "ports": ["pt0", "hp0", "hp1"],
              "devices": [ { "address": "{{Nic}}", "id": "hostdev-0000-00-02-0", "port": "pt0", "attached": false, "bound": [] } ],
              "bound": [], "user": "passthru-qemu", "uid": 12345, "gid": 12346 }
            """);
        var r = CliRunner.Run("guests", "--root", _tree);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("guest 'lp1' has ended: gave /dev/vfio/2 back to 0:0, mode 0660", r.Lines);
        Assert.Equal((0, 0, 0x1B0), NodeOwner());
        Assert.Empty(Journal.Load(StateDir).Nodes);
    }

    [Theory]
    [InlineData("../../etc/shadow")]
    [InlineData("dev/vfio/vfio")]
    [InlineData("dev/vfio/2/../../sda")]
    [InlineData("dev/sda")]
    public void A_journal_naming_any_other_file_is_damaged_and_nothing_is_changed(string path)
    {
        File.WriteAllText(Path.Combine(StateDir, "state.json"), $$"""
            { "version": 1, "functions": [], "nodes": [ { "path": "{{path}}", "original_uid": 0, "original_gid": 0, "original_mode": 384, "for": [] } ] }
            """);
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(1, r.ExitCode); // (damaged state, as for a parameter path: not a usage error)
        Assert.Contains($"nodes[0].path '{path}' is not a vfio group node (dev/vfio/N)", r.Stderr);
        Assert.Equal((0, 0, 0x1B0), NodeOwner());
    }

    private sealed class KilledHere : Exception;

    private sealed class NodeComparer : IEqualityComparer<NodeState>
    {
        public bool Equals(NodeState? a, NodeState? b) => a is not null && b is not null && a.Path == b.Path && a.Uid == b.Uid && a.Gid == b.Gid
            && a.Mode == b.Mode && a.For.SequenceEqual(b.For);
        public int GetHashCode(NodeState n) => n.Path.GetHashCode(StringComparison.Ordinal);
    }
}
