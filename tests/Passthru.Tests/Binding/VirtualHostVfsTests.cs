using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Binding;

/// <summary>
/// `vfs` against the real kernel: QEMU's NVMe as an SR-IOV physical function (0000:03:00.0, two VFs at most) in a
/// virtual host of its own. Every test leaves the PF as it found it (0 VFs, autoprobe 1, no journal).
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host with SR-IOV")]
public class VirtualHostVfsTests(SriovFixture vm)
{
    private string P => vm.Passthru;
    private const string Pf = "/sys/bus/pci/devices/0000:03:00.0";
    private const string Drv = "drv() { d=$(readlink /sys/bus/pci/devices/$1/driver) && basename \"$d\" || echo none; }; ";

    /// <summary>The PF's count, autoprobe and VFs with their drivers, and whether a journal is left: one line.</summary>
    private string State() => vm.RunOk(Drv + $$"""
        printf 'numvfs=%s autoprobe=%s' $(cat {{Pf}}/sriov_numvfs) $(cat {{Pf}}/sriov_drivers_autoprobe)
        for v in {{Pf}}/virtfn*; do [ -e "$v" ] && a=$(basename $(readlink $v)) && printf ' %s=%s' $a $(drv $a); done
        test -e /run/passthru/state.json && printf ' journal'; echo
        """).Trim();

    private void CleanUp() => vm.Run($"{P} restore; echo 0 > {Pf}/sriov_numvfs; echo 1 > {Pf}/sriov_drivers_autoprobe");

    [Fact]
    public void Vfs_bind_creates_VFs_on_vfio_pci_each_in_its_group_and_restore_removes_them()
    {
        try
        {
            Assert.Equal("numvfs=0 autoprobe=1", State());
            var r = vm.Run($"{P} vfs 0000:03:00.0 --count 2 --bind");
            Assert.True(r.ExitCode == 0, r.ToString());
            var groups = vm.RunOk("basename $(readlink /sys/bus/pci/devices/0000:03:00.1/iommu_group); basename $(readlink /sys/bus/pci/devices/0000:03:00.2/iommu_group)")
                .Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.NotEqual(groups[0], groups[1]);
            Assert.Equal($"""
                0000:03:00.0 has 2 VFs (of 2)
                  0000:03:00.1 Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] IOMMU group {groups[0]} driver=vfio-pci: /dev/vfio/{groups[0]}
                  0000:03:00.2 Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] IOMMU group {groups[1]} driver=vfio-pci: /dev/vfio/{groups[1]}

                """, r.Stdout);
            // Autoprobe is back on, the VFs on vfio-pci (no host driver got them first), their group nodes there.
            Assert.Equal("numvfs=2 autoprobe=1 0000:03:00.1=vfio-pci 0000:03:00.2=vfio-pci journal", State());
            vm.RunOk($"test -c /dev/vfio/{groups[0]} && test -c /dev/vfio/{groups[1]}");
            Assert.Contains("  SR-IOV:          virtual function of 0000:03:00.0\n", vm.RunOk($"{P} show 03:00.1"));
            Assert.Contains($"0000:03:00.1 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02)  driver=vfio-pci group={groups[0]} physfn=0000:03:00.0",
                vm.RunOk($"{P} list"));

            var restore = vm.Run($"{P} restore");
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.Equal("gave 0000:03:00.1 back to no driver\ngave 0000:03:00.2 back to no driver\nput 0000:03:00.0 back to 0 VFs (removed 0000:03:00.1, 0000:03:00.2)\n", restore.Stdout);
            Assert.Equal("numvfs=0 autoprobe=1", State());
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void A_non_zero_count_changes_through_zero_and_restore_goes_back_to_the_count_before()
    {
        try
        {
            vm.RunOk($"echo 1 > {Pf}/sriov_numvfs");   // a VF the host made, not Passthru
            var r = vm.Run($"{P} vfs 03:00.0 --count 2");
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.StartsWith("numvfs=2 autoprobe=1 0000:03:00.1=", State());
            Assert.Contains("\"original_numvfs\": 1", vm.RunOk("cat /run/passthru/state.json"));
            var zero = vm.Run($"{P} vfs 03:00.0 --count 0");
            Assert.True(zero.ExitCode == 0, zero.ToString());
            Assert.Equal("0000:03:00.0 has 0 VFs (of 2)\n", zero.Stdout);

            Assert.Equal("put 0000:03:00.0 back to 1 VF\n", vm.RunOk($"{P} restore"));
            Assert.StartsWith("numvfs=1 autoprobe=1 0000:03:00.1=", State());
            Assert.DoesNotContain("journal", State());
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void Back_at_the_count_it_had_nothing_is_left_to_restore()
    {
        try
        {
            vm.RunOk($"{P} vfs 03:00.0 --count 2 --bind");
            var zero = vm.Run($"{P} vfs 03:00.0 --count 0");
            Assert.True(zero.ExitCode == 0, zero.ToString());
            Assert.Contains("0000:03:00.1 (on vfio-pci by Passthru) goes away with the count change", zero.Stdout);
            Assert.Equal("numvfs=0 autoprobe=1", State());   // and no journal: 0 is where it started
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void Refusals_are_one_line_and_change_nothing()
    {
        try
        {
            var notPf = vm.Run($"{P} vfs 00:02.0 --count 1");
            Assert.Equal(2, notPf.ExitCode);
            Assert.Equal("passthru: 0000:00:02.0 is not an SR-IOV physical function (it has no SR-IOV capability: no sriov_totalvfs): it cannot have VFs\n", notPf.Stderr);
            var tooMany = vm.Run($"{P} vfs 03:00.0 --count 3");
            Assert.Equal(2, tooMany.ExitCode);
            Assert.Equal("passthru: 0000:03:00.0 supports at most 2 VFs (sriov_totalvfs), not 3\n", tooMany.Stderr);
            var notNumber = vm.Run($"{P} vfs 03:00.0 --count many");
            Assert.Equal(2, notNumber.ExitCode);
            Assert.Equal("numvfs=0 autoprobe=1", State());

            // The PF itself on vfio-pci.
            vm.RunOk($"{P} bind 03:00.0");
            var onVfio = vm.Run($"{P} vfs 03:00.0 --count 1");
            Assert.Equal(1, onVfio.ExitCode);
            Assert.Equal("passthru: 0000:03:00.0 is bound to vfio-pci: its VFs are made by its own driver; give it back first (passthru unbind 0000:03:00.0); nothing was changed\n", onVfio.Stderr);
            vm.RunOk($"{P} restore");
            Assert.Equal("nvme", vm.RunOk(Drv + "drv 0000:03:00.0").Trim());

            // A VF a guest holds: its group's node open by a process.
            vm.RunOk($"{P} vfs 03:00.0 --count 1 --bind");
            var g = vm.RunOk("basename $(readlink /sys/bus/pci/devices/0000:03:00.1/iommu_group)").Trim();
            vm.RunOk($"setsid sleep 300 3</dev/vfio/{g} > /dev/null 2>&1 & echo $! > /tmp/holder");
            var held = vm.Run($"{P} vfs 03:00.0 --count 0");
            Assert.Equal(1, held.ExitCode);
            Assert.Matches($@"^passthru: 0000:03:00.1, a VF of 0000:03:00.0, is in use by a guest \(sleep \(pid \d+\) has /dev/vfio/{g} open\): changing the VF count would remove it; stop the guest first; nothing was changed\n$", held.Stderr);
            Assert.Equal("numvfs=1 autoprobe=1 0000:03:00.1=vfio-pci journal", State());
            vm.RunOk("kill $(cat /tmp/holder)");
            vm.RunOk($"{P} restore");
            Assert.Equal("numvfs=0 autoprobe=1", State());
        }
        finally { vm.Run("test -f /tmp/holder && kill $(cat /tmp/holder)"); CleanUp(); }
    }

    [Fact]
    public void The_probe_guest_sees_the_VF_passed_through()
    {
        try
        {
            vm.RunOk($"{P} vfs 03:00.0 --count 2 --bind");
            // Behind its own root port at 00:10.0, the device is the guest's 01:00.0.
            var r = vm.Run($"{P} run --kernel {vm.Probe} --memory 128 --device 0000:03:00.2 --expect 'pci 01:00.0 1b36:0010' --timeout 120",
                TimeSpan.FromMinutes(4));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("probe: pci 01:00.0 1b36:0010 class 0108", r.Stdout);
            Assert.Equal("numvfs=2 autoprobe=1 0000:03:00.1=vfio-pci 0000:03:00.2=vfio-pci journal", State()); // run leaves what it did not bind
            vm.RunOk($"{P} restore");
            Assert.Equal("numvfs=0 autoprobe=1", State());
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void Run_binds_a_VF_itself_like_any_function_and_restore_of_the_PF_removes_it()
    {
        try
        {
            // Without --bind the host's nvme takes the VF, finds it not ready and lets it go: about half a second
            // here, seconds on a loaded machine (a fixed sleep of 2 s was not always enough). Wait for its own word.
            const string GaveUp = "grep -c 'Removing after probe failure'";
            vm.RunOk($"n=$(dmesg | {GaveUp}); {P} vfs 03:00.0 --count 1 > /dev/null || exit 1; " + Drv
                + $"for i in $(seq 600); do [ $(dmesg | {GaveUp}) -gt $n ] && [ $(drv 0000:03:00.1) = none ] && exit 0; sleep 0.2; done; "
                + "dmesg | tail -5; exit 1", TimeSpan.FromMinutes(3));
            Assert.Equal("numvfs=1 autoprobe=1 0000:03:00.1=none journal", State());
            var r = vm.Run($"{P} run --kernel {vm.Probe} --memory 128 --device 03:00.1 --expect 'pci 01:00.0 1b36:0010' --timeout 120",
                TimeSpan.FromMinutes(4));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("probe: pci 01:00.0 1b36:0010 class 0108", r.Stdout);
            Assert.Contains("[passthru] bound 0000:03:00.1 to vfio-pci (was no driver)", r.Stderr);
            Assert.Contains("[passthru] gave 0000:03:00.1 back to no driver", r.Stderr);
            Assert.Equal("numvfs=1 autoprobe=1 0000:03:00.1=none journal", State());
            Assert.Equal("put 0000:03:00.0 back to 0 VFs (removed 0000:03:00.1)\n", vm.RunOk($"{P} restore 03:00.0"));
            Assert.Equal("numvfs=0 autoprobe=1", State());
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void Kill_9_at_any_moment_of_a_vfs_bind_then_restore_removes_the_VFs()
    {
        // As for bind: moments are states of the host, polled while `vfs --count 2 --bind` runs; a kill that misses
        // its moment lands after the command, and restore must bring the PF back to 0 VFs and autoprobe 1 either way.
        const string vf1 = "/sys/bus/pci/devices/0000:03:00.1", vf2 = "/sys/bus/pci/devices/0000:03:00.2";
        var moments = new (string Name, string Until)[]
        {
            ("at once", "true"),
            ("journal written", "[ -e /run/passthru/state.json ]"),
            ("autoprobe off", $"read -r a < {Pf}/sriov_drivers_autoprobe; [ \"$a\" = 0 ]"),
            ("VFs created", $"[ -e {Pf}/virtfn1 ]"),
            ("first override set", $"read -r o < {vf1}/driver_override 2>/dev/null; [ \"$o\" = vfio-pci ]"),
            ("first on vfio-pci", "[ -e /sys/bus/pci/drivers/vfio-pci/0000:03:00.1 ]"),
            ("second override set", $"read -r o < {vf2}/driver_override 2>/dev/null; [ \"$o\" = vfio-pci ]"),
            ("second on vfio-pci", "[ -e /sys/bus/pci/drivers/vfio-pci/0000:03:00.2 ]"),
        };
        try
        {
            vm.RunOk($"{P} vfs 03:00.0 --count 2 --bind && {P} restore");   // modules loaded: every round goes the same way
            int midway = 0;
            foreach (var (name, until) in moments)
            {
                var killed = vm.RunOk($"""
                    {P} vfs 03:00.0 --count 2 --bind > /dev/null 2>&1 & p=$!
                    until {until}; do kill -0 $p 2>/dev/null || break; done
                    kill -9 $p 2>/dev/null && echo killed || echo finished; wait $p; true
                    """).Trim();
                if (killed == "killed") midway++;
                var restore = vm.Run($"{P} restore");
                Assert.True(restore.ExitCode == 0, $"after a kill ({name}): {restore}");
                Assert.True(State() == "numvfs=0 autoprobe=1", $"after a kill ({name}): {State()}\n{restore}");
            }
            Assert.True(midway >= 5, $"only {midway} of {moments.Length} kills landed during vfs");
        }
        finally { CleanUp(); }
    }
}
