using Passthru.Binding;
using Passthru.Host;
using Passthru.Launch;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// Least privilege as data: the wrapper that starts QEMU as its own user with its locked-memory limit, the QEMU
/// arguments an unprivileged QEMU gets (the QMP socket by descriptor, its UUID, the sandbox), and the check that the
/// account can read the guest's files, refusing before anything is bound. The real processes are checked in the
/// virtual host (VirtualHostLeastPrivilegeTests).
/// </summary>
public sealed class QemuPrivilegeTests : IDisposable
{
    private static readonly Account Qemu = new("passthru-qemu", 12345, 12346, []);
    private readonly string _dir = GuestFiles.Directory("passthru-priv-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void The_wrapper_drops_every_privilege_before_qemu_and_the_limit_is_said_beside_it()
    {
        // The limit itself is set by passthru on itself as it starts setpriv (GuestProcess): no prlimit process.
        var p = new QemuPrivilege(Qemu, false, (3UL << 30, 3UL << 30), true, []);
        Assert.Equal(["/usr/bin/setpriv", "--reuid=12345", "--regid=12346", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"],
            p.Wrapper("/usr/bin/setpriv"));
        Assert.Equal("QEMU runs as passthru-qemu (12345:12346), locked memory up to 3072 MiB for it alone, sandboxed (-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny)",
            p.Describe());
    }

    [Fact]
    public void Without_devices_or_ports_there_is_no_limit_to_raise_and_kvm_keeps_its_group()
    {
        var p = new QemuPrivilege(Qemu, false, null, false, ["kvm"]);
        Assert.Equal(["/usr/bin/setpriv", "--reuid=12345", "--regid=12346", "--groups=kvm", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"],
            p.Wrapper("/usr/bin/setpriv"));
        Assert.Empty(QemuPrivilege.Inherited.Wrapper("/usr/bin/setpriv"));
    }

    [Fact]
    public void An_unprivileged_qemu_gets_its_qmp_socket_by_descriptor_its_uuid_and_the_sandbox()
    {
        var socket = "/run/passthru/guests/probe-1.qmp";
        var o = new RunOptions { Kernel = "/k", ControlSocket = socket, Name = "probe-1" };
        var argv = QemuCommand.Build("/usr/bin/qemu-system-x86_64", o, new GuestBoot("/k", null, null, [], null), kvm: false, [],
            new QemuPrivilege(Qemu, false, null, true, []));
        var tail = argv.SkipWhile(a => a != "-uuid").ToList();
        Assert.Equal(["-uuid", GuestRecords.Uuid(socket), "-chardev", $"socket,id=qmp,fd={QemuCommand.QmpDescriptor},server=on,wait=off", "-mon", "chardev=qmp,mode=control",
            "-sandbox", QemuPrivilege.SandboxOption], tail);
        Assert.DoesNotContain("-qmp", argv);
        // The UUID is the guest's and the same every time (a record finds its QEMU by it), another guest's differs.
        Assert.Matches("^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", GuestRecords.Uuid(socket));
        Assert.NotEqual(GuestRecords.Uuid(socket), GuestRecords.Uuid("/run/passthru/guests/probe-2.qmp"));
    }

    [Fact]
    public void As_root_the_socket_is_qemus_own_as_before()
    {
        var o = new RunOptions { Kernel = "/k", ControlSocket = "/s.qmp", Name = "g" };
        var argv = QemuCommand.Build("/q", o, new GuestBoot("/k", null, null, [], null), kvm: false, [], QemuPrivilege.Inherited);
        Assert.Equal(["-qmp", "unix:/s.qmp,server=on,wait=off"], argv.SkipWhile(a => a != "-qmp"));
    }

    [Fact]
    public void A_file_in_a_directory_the_user_cannot_search_is_refused_naming_the_file_and_the_fixes()
    {
        var hidden = Directory.CreateDirectory(Path.Combine(_dir, "private")).FullName;
        File.SetUnixFileMode(hidden, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var kernel = Path.Combine(hidden, "kernel");
        File.WriteAllText(kernel, "");
        var p = new QemuPrivilege(Qemu, false, null, true, []);
        var e = Assert.Throws<UserError>(() => p.CheckFiles([(kernel, "the kernel", false)]));
        Assert.Equal($"QEMU runs as passthru-qemu, which cannot read the kernel {kernel}: the directory {hidden} is not searchable by passthru-qemu (owner 0:0, mode 0700); "
            + "move it where passthru-qemu can read it, grant access (setfacl -m u:passthru-qemu:r on it, x on its directories), or run with --as-root", e.Message);
    }

    [Fact]
    public void Readable_files_pass_and_a_disk_must_be_writable_too()
    {
        var kernel = Path.Combine(_dir, "kernel");
        File.WriteAllText(kernel, "");
        File.SetUnixFileMode(kernel, (UnixFileMode)0x1A4); // 0644
        var p = new QemuPrivilege(Qemu, false, null, true, []);
        p.CheckFiles([(kernel, "the kernel", false)]);
        var e = Assert.Throws<UserError>(() => p.CheckFiles([(kernel, "the disk", true)]));
        Assert.Contains($"cannot write the disk {kernel}: {kernel} is not readable and writable by passthru-qemu (owner 0:0, mode 0644)", e.Message);
        // The account's own file, or its group's with group write, is fine.
        new HostRoot("/").SetOwner(kernel.TrimStart('/'), 0, 12346, 0x1B0); // 0660, group passthru-qemu
        p.CheckFiles([(kernel, "the disk", true)]);
    }

    [Fact]
    public void Accounts_come_from_the_roots_passwd_and_group()
    {
        var root = Directory.CreateDirectory(Path.Combine(_dir, "root")).FullName;
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        File.WriteAllText(Path.Combine(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\npassthru-qemu:x:995:994:Passthru QEMU guests:/nonexistent:/usr/sbin/nologin\n");
        File.WriteAllText(Path.Combine(root, "etc/group"), "root:x:0:\nkvm:x:993:passthru-qemu\npassthru-qemu:x:994:\n");
        var host = new HostRoot(root);
        var a = Accounts.Find(host, "passthru-qemu")!;
        Assert.Equal(("passthru-qemu", 995, 994), (a.Name, a.Uid, a.Gid));
        Assert.Equal([993], a.Groups);
        Assert.Null(Accounts.Find(host, "libvirt-qemu"));
        Assert.Equal(993, Accounts.GroupId(host, "kvm"));
        Assert.Equal("passthru-qemu", Accounts.UserName(host, 995));
        Assert.Equal("4711", Accounts.GroupName(host, 4711));
    }
}
