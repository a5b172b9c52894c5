using System.Diagnostics;
using System.Text.Json.Nodes;
using Passthru.Hotplug;
using Passthru.Tests.Support;

namespace Passthru.Tests.Hotplug;

/// <summary>
/// The QMP client against a real QEMU on this machine (TCG, the probe guest, which has no OS to answer hot-plug
/// requests): the handshake, commands with their answers, QEMU's errors, query-pci, and waiting for an event that
/// does not come. An emulated e1000e stands in for a vfio device here; the virtual host's tests hot-plug real ones.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class QmpClientTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-qmp-").FullName;
    private readonly Process _qemu;
    private string Socket => Path.Combine(_dir, "guest.qmp");

    public QmpClientTests()
    {
        var probe = Passthru.Tests.VirtualHost.ProbeGuest.Elf;
        var start = new ProcessStartInfo("qemu-system-x86_64") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-M", "q35", "-accel", "tcg", "-m", "64", "-nographic", "-nic", "none", "-kernel", probe,
                     "-device", "pcie-root-port,id=hp0,chassis=1,bus=pcie.0,addr=0x10", "-qmp", $"unix:{Socket},server=on,wait=off" })
            start.ArgumentList.Add(a);
        _qemu = Process.Start(start)!;
        // query-pci finds devices behind a root port by the bus number the firmware gave it: wait until the guest
        // has booted past its firmware (the probe prints its scan), as a guest an attach reaches has.
        var booted = Task.Run(() => { string? l; while ((l = _qemu.StandardOutput.ReadLine()) is not null) if (l.Contains("probe: done")) return true; return false; });
        Assert.True(booted.Wait(TimeSpan.FromSeconds(60)) && booted.Result, "the probe guest did not boot");
    }

    [Fact]
    public void Adds_finds_and_asks_to_remove_a_device_and_quotes_qemus_refusals()
    {
        using var qmp = QmpClient.Connect(Socket, TimeSpan.FromSeconds(10));
        Assert.Matches(@"^\d+\.\d+\.\d+$", qmp.QemuVersion);
        qmp.Execute("device_add", new JsonObject { ["driver"] = "e1000e", ["id"] = "nic1", ["bus"] = "hp0", ["addr"] = "0.0" }, TimeSpan.FromSeconds(30));
        var pci = qmp.Execute("query-pci", null, TimeSpan.FromSeconds(30));
        Assert.NotNull(HotplugSession.FindInGuest(pci, "nic1"));        // behind the root port's bridge
        Assert.Null(HotplugSession.FindInGuest(pci, "nic2"));

        // A second device on the same port: QEMU's own words come back.
        var refused = Assert.Throws<QmpError>(() =>
            qmp.Execute("device_add", new JsonObject { ["driver"] = "e1000e", ["id"] = "nic2", ["bus"] = "hp0", ["addr"] = "0.0" }, TimeSpan.FromSeconds(30)));
        Assert.Equal("GenericError", refused.Class);
        Assert.False(string.IsNullOrWhiteSpace(refused.Description));
        var unknown = Assert.Throws<QmpError>(() => qmp.Execute("device_del", new JsonObject { ["id"] = "nothing" }, TimeSpan.FromSeconds(30)));
        Assert.Equal("DeviceNotFound", unknown.Class);

        // The probe has no OS to accept the unplug: no DEVICE_DELETED, and the device stays.
        qmp.Execute("device_del", new JsonObject { ["id"] = "nic1" }, TimeSpan.FromSeconds(30));
        Assert.Null(qmp.WaitForEvent("DEVICE_DELETED", d => (string?)d?["device"] == "nic1", TimeSpan.FromSeconds(3)));
        Assert.NotNull(HotplugSession.FindInGuest(qmp.Execute("query-pci", null, TimeSpan.FromSeconds(30)), "nic1"));
    }

    [Fact]
    public void A_socket_nobody_listens_on_is_one_clear_error()
    {
        var e = Assert.Throws<UserError>(() => QmpClient.Connect(Path.Combine(_dir, "none.qmp"), TimeSpan.FromSeconds(2)));
        Assert.Contains("cannot connect to the guest's control socket", e.Message);
    }

    [Fact]
    public void A_second_client_waits_its_turn_and_is_told_why()
    {
        using var first = QmpClient.Connect(Socket, TimeSpan.FromSeconds(10));
        var e = Assert.Throws<UserError>(() => QmpClient.Connect(Socket, TimeSpan.FromSeconds(2)));
        Assert.Contains("another passthru attach or detach is talking to it", e.Message);
    }

    public void Dispose()
    {
        try { _qemu.Kill(); _qemu.WaitForExit(5000); } catch (InvalidOperationException) { }
        _qemu.Dispose();
        Directory.Delete(_dir, true);
    }
}
