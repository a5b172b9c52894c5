namespace Passthru.Launch;

/// <summary>
/// One value of a pci_card field as the database writes it: a number to compare, a variable (any value), or
/// anything else (an atom or string, which never equals a PCI ID).
/// </summary>
public readonly record struct CardField(long? Value, bool Any)
{
    public static readonly CardField Wildcard = new(null, true);
    public bool Matches(long id) => Any || Value == id;
}

/// <summary>One pci_card of a driver's supported_cards: kaluga asks by vendor and device only (function and subsystem are left open).</summary>
public sealed record PciCard(CardField Vendor, CardField Device, int Line);

/// <summary>One pci_driver fact: the binary kaluga starts, the cards it lists, and its priority when more than one matches.</summary>
public sealed record PciDriverFact(string Binary, string? Module, IReadOnlyList<PciCard> Cards, long? Priority, int Line);

/// <summary>
/// The answer for one device: the driver kaluga picks (null: none, kaluga leaves the device alone) and every other that
/// lists it. <paramref name="Tied"/>: those of the same priority as the pick (the first in the file), among which
/// find_pci_driver's sort decides by ECLiPSe's order of terms, which the file does not fix.
/// </summary>
public sealed record DriverMatch(PciDriverFact? Driver, IReadOnlyList<PciDriverFact> Others, IReadOnlyList<PciDriverFact> Tied);

/// <summary>
/// The SKB's device database of a Barrelfish build (skb/device_db.pl inside skb_ramfs.cpio.gz): the pci_driver facts
/// kaluga asks when the PCI domain reports a device. Matching follows device_db.pl's own find_pci_driver, which kaluga
/// (usr/kaluga/start_pci.c) calls as find_pci_driver(pci_card(Vendor, Device, _, _, _), Driver): every pci_driver
/// whose supported_cards has a member unifying with that card is a candidate (a variable field matches any ID), and
/// the one of highest priority wins (a number beats an unset priority; among equals Prolog's order decides, so all
/// are named). Kaluga then starts the binary only if the boot menu loads it with the argument `auto`.
/// </summary>
public sealed record BarrelfishDeviceDb(string Source, IReadOnlyList<PciDriverFact> Drivers, int CpuDrivers, int BusDrivers)
{
    /// <summary>Where a build keeps the SKB's RAM disk, and the database inside it.</summary>
    public const string RamfsName = "skb_ramfs.cpio.gz";
    public const string Member = "skb/device_db.pl";

    /// <summary>The field order of pci_card (device_db.pl's struct declaration), for the positional pci_card(V, D, F, SV, SD).</summary>
    private static readonly string[] CardFields = ["vendor", "device", "function", "subvendor", "subdevice"];

    public DriverMatch Match(ushort vendor, ushort device)
    {
        var candidates = Drivers.Where(d => d.Cards.Any(c => c.Vendor.Matches(vendor) && c.Device.Matches(device))).ToList();
        if (candidates.Count == 0) return new DriverMatch(null, [], []);
        long? best = candidates.Max(d => d.Priority);
        var top = candidates.Where(d => d.Priority == best).ToList();
        return new DriverMatch(top[0], candidates.Where(d => !ReferenceEquals(d, top[0])).ToList(), top.Skip(1).Where(d => d.Binary != top[0].Binary).ToList());
    }

    /// <summary>The database of the build whose SKB RAM disk is <paramref name="ramfs"/>; any problem is one line, exit 2.</summary>
    public static BarrelfishDeviceDb Load(string ramfs, string option)
    {
        var shown = Shown.Value(ramfs);
        if (!Passthru.Host.InputFile.Exists(ramfs))
            throw new UserError($"{option}: {shown}: no such file (a Barrelfish build keeps the SKB's RAM disk {RamfsName} at its top: `make {RamfsName}` builds it)", ExitCodes.Usage);
        var bytes = Passthru.Host.InputFile.ReadBytes(option, ramfs);
        try { return FromRamfs(bytes, ramfs); }
        catch (FormatException e) { throw new UserError($"{option}: {shown}: {e.Message}: not a usable SKB RAM disk (rebuild it: `make {RamfsName}` in the build directory)", ExitCodes.Usage); }
    }

    /// <summary>The database from the RAM disk's bytes (gzip, then cpio newc); a <see cref="FormatException"/> names what is wrong.</summary>
    public static BarrelfishDeviceDb FromRamfs(ReadOnlySpan<byte> gz, string source)
    {
        var archive = CpioArchive.Gunzip(gz);
        var member = CpioArchive.Find(archive, Member) ?? throw new FormatException($"the archive holds no {Member}");
        string text;
        try { text = new System.Text.UTF8Encoding(false, true).GetString(member); }
        catch (ArgumentException) { throw new FormatException($"{Member} is not UTF-8 text"); }
        try { return Parse(text, $"{source}:{Member}"); }
        catch (FormatException e) { throw new FormatException($"{Member}: {e.Message}"); }
    }

    /// <summary>The pci_driver, cpu_driver and bus_driver facts of device_db.pl's text; other clauses (the rules) are read and left.</summary>
    public static BarrelfishDeviceDb Parse(string text, string source)
    {
        var drivers = new List<PciDriverFact>();
        int cpu = 0, bus = 0;
        foreach (var clause in EclipseTerms.ReadProgram(text))
        {
            if (!clause.IsFact || clause.Head is null) continue;
            switch (clause.Head)
            {
                case StructTerm { Name: "pci_driver" } s: drivers.Add(Driver(s)); break;
                case CompoundTerm { Name: "pci_driver" } c:
                    throw new FormatException($"line {c.Line}: a pci_driver written with {c.Args.Count} positional arguments: write it as pci_driver{{ binary: ..., supported_cards: [...] }}, as device_db.pl does");
                case StructTerm { Name: "cpu_driver" }: cpu++; break;
                case StructTerm { Name: "bus_driver" }: bus++; break;
            }
        }
        return new BarrelfishDeviceDb(source, drivers, cpu, bus);
    }

    private static PciDriverFact Driver(StructTerm s)
    {
        var binary = s["binary"] switch
        {
            StringTerm t => t.Value,
            AtomTerm a => a.Name,
            null or VarTerm => throw new FormatException($"line {s.Line}: a pci_driver without a binary"),
            var other => throw new FormatException($"line {other.Line}: a pci_driver's binary is not a name"),
        };
        var module = s["module"] switch { StringTerm t => t.Value, AtomTerm a => a.Name, _ => null };
        var cards = new List<PciCard>();
        switch (s["supported_cards"])
        {
            // Unset or a variable: member/2 on an unbound list would only make up lists; no device is listed.
            case null or VarTerm: break;
            case AtomTerm { Name: "[]" }: break;
            case ListTerm list:
                foreach (var item in list.Items)
                {
                    switch (item)
                    {
                        case StructTerm { Name: "pci_card" } card: cards.Add(new PciCard(Field(card["vendor"]), Field(card["device"]), card.Line)); break;
                        case CompoundTerm { Name: "pci_card", Args.Count: 5 } card:
                            cards.Add(new PciCard(Field(card.Args[Array.IndexOf(CardFields, "vendor")]), Field(card.Args[Array.IndexOf(CardFields, "device")]), card.Line));
                            break;
                        // A variable member unifies with every card.
                        case VarTerm v: cards.Add(new PciCard(CardField.Wildcard, CardField.Wildcard, v.Line)); break;
                        // Anything else (another struct, a number) never unifies with a pci_card.
                    }
                }
                break;
            case var other: throw new FormatException($"line {other.Line}: {Shown.Value(binary.Length > 40 ? binary[..40] + "..." : binary)}'s supported_cards is not a list");
        }
        long? priority = s["priority"] switch { IntTerm i => i.Value, _ => null };
        return new PciDriverFact(binary, module, cards, priority, s.Line);
    }

    private static CardField Field(Term? t) => t switch
    {
        null or VarTerm => CardField.Wildcard,
        IntTerm i => new CardField(i.Value, false),
        _ => new CardField(null, false),
    };
}

/// <summary>What Barrelfish will do with one device: whether a driver takes it, and the line that says so.</summary>
/// <param name="Detail">Why: the database line, and for none the reason kaluga leaves the device alone.</param>
public sealed record DriverVerdict(string? Driver, string Detail)
{
    public bool Taken => Driver is not null;
    public string Text => $"{Driver ?? "none"}: {Detail}";
}

/// <summary>
/// A Barrelfish build as `show` and `run` see it for devices: its device database, and, when a menu is given, the
/// modules that menu boots (kaluga starts only a driver the menu loads with `auto`).
/// </summary>
public sealed record BarrelfishDrivers(BarrelfishDeviceDb Database, string Ramfs, BarrelfishMenu? Menu)
{
    /// <summary>From --menu (its build directory found as `run` finds it, unless --build-dir is given) or --build-dir alone.</summary>
    public static BarrelfishDrivers Load(string? menuFile, string? buildDir)
    {
        if (menuFile is null)
        {
            if (buildDir is null) throw new ArgumentException("a menu or a build directory");
            if (!Directory.Exists(buildDir)) throw new UserError($"--build-dir {Shown.Value(buildDir)}: no such directory", ExitCodes.Usage);
            var ramfs = Path.Combine(buildDir, BarrelfishDeviceDb.RamfsName);
            return new BarrelfishDrivers(BarrelfishDeviceDb.Load(ramfs, "--build-dir"), ramfs, null);
        }
        var menu = BarrelfishMenu.Load(menuFile);
        var found = ForMenu(menu, menuFile, buildDir)
            ?? throw new UserError($"--menu {Shown.Value(menuFile)} loads no {BarrelfishDeviceDb.RamfsName}: without the SKB's device database kaluga starts no PCI driver", ExitCodes.Usage);
        return found;
    }

    /// <summary>The drivers of the build a menu boots, or null when the menu loads no SKB RAM disk (not a Barrelfish SKB boot).</summary>
    public static BarrelfishDrivers? ForMenu(BarrelfishMenu menu, string menuFile, string? buildDir)
    {
        var module = menu.Modules.FirstOrDefault(m => m.Path.Split('/')[^1] == BarrelfishDeviceDb.RamfsName);
        if (module is null) return null;
        var ramfs = menu.Resolve(buildDir ?? menu.DefaultBuildDir(menuFile), module.Path);
        return new BarrelfishDrivers(BarrelfishDeviceDb.Load(ramfs, "--menu"), ramfs, menu);
    }

    public DriverVerdict For(ushort vendor, ushort device)
    {
        var ids = $"{vendor:x4}:{device:x4}";
        var match = Database.Match(vendor, device);
        // Names from the database reach the terminal: shown escaped.
        static PciDriverFact Safe(PciDriverFact f) => f with { Binary = Shown.Value(f.Binary) };
        match = match with { Driver = match.Driver is { } picked ? Safe(picked) : null, Others = match.Others.Select(Safe).ToList(), Tied = match.Tied.Select(Safe).ToList() };
        var where = $"{BarrelfishDeviceDb.Member} in {Ramfs}";
        if (match.Driver is not { } d)
            return new(null, $"no pci_driver in this build's device database lists {ids} ({where}), so kaluga leaves the device alone");
        var others = match.Others.Count == 0 ? "" : $"; also listed by {string.Join(", ", match.Others.Select(o => $"{o.Binary} (line {o.Line})"))}"
            + (match.Tied.Count == 0 ? "" : $", of the same priority: ECLiPSe's order of terms decides between {d.Binary} and {string.Join(" and ", match.Tied.Select(t => t.Binary))}");
        if (Menu is not null)
        {
            // kaluga's find_module compares the binary with each module's file name; is_auto_driver looks for `auto` among its arguments.
            var loaded = Menu.Modules.Where(m => m.Path.Split('/')[^1] == d.Binary).ToList();
            if (loaded.Count == 0)
                return new(null, $"the device database names {d.Binary} (line {d.Line} of {where}), but the menu does not load {d.Binary}, so kaluga leaves the device alone{others}");
            if (!loaded.Any(m => m.Arguments.Split(' ').Contains("auto")))
                return new(null, $"the device database names {d.Binary} (line {d.Line} of {where}), but the menu loads it without `auto` (line {loaded[0].Line}), so kaluga does not start it{others}");
            return new(d.Binary, $"kaluga starts it for this device (line {d.Line} of {where}; the menu loads it with `auto`, line {loaded[0].Line}){others}");
        }
        return new(d.Binary, $"kaluga starts it for this device, when the boot menu loads it with `auto` (line {d.Line} of {where}){others}");
    }
}
