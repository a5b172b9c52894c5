/*
 * The probe guest: a tiny multiboot kernel for Passthru's end-to-end tests. On COM1 it prints its command line, each
 * multiboot module's string, and every PCI function found in configuration space, then powers QEMU off through
 * isa-debug-exit. A passed-through device shows up in its PCI list with the host device's IDs.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

struct multiboot_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
};
struct multiboot_module { u32 start, end, string, reserved; };

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

#define COM1 0x3f8

static void serial_init(void)
{
    outb(COM1 + 1, 0x00);  /* no interrupts */
    outb(COM1 + 3, 0x80);  /* DLAB */
    outb(COM1 + 0, 0x01);  /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);  /* 8N1 */
    outb(COM1 + 2, 0xc7);  /* FIFO */
    outb(COM1 + 4, 0x03);
}

static void putc_(char c)
{
    while (!(inb(COM1 + 5) & 0x20)) { }
    outb(COM1, (u8)c);
}

static void puts_(const char *s)
{
    while (*s) {
        if (*s == '\n') putc_('\r');
        putc_(*s++);
    }
}

static void hex(u32 v, int digits)
{
    static const char d[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) putc_(d[(v >> (i * 4)) & 0xf]);
}

static u32 pci_read(u32 bus, u32 dev, u32 fn, u32 off)
{
    outl(0xcf8, 0x80000000u | (bus << 16) | (dev << 11) | (fn << 8) | (off & 0xfc));
    return inl(0xcfc);
}

static void scan_pci(void)
{
    for (u32 bus = 0; bus < 256; bus++)
        for (u32 dev = 0; dev < 32; dev++)
            for (u32 fn = 0; fn < 8; fn++) {
                u32 id = pci_read(bus, dev, fn, 0);
                if ((id & 0xffff) == 0xffff) {
                    if (fn == 0) break;
                    continue;
                }
                u32 cls = pci_read(bus, dev, fn, 8) >> 16;
                puts_("probe: pci ");
                hex(bus, 2); putc_(':'); hex(dev, 2); putc_('.'); hex(fn, 1);
                putc_(' '); hex(id & 0xffff, 4); putc_(':'); hex(id >> 16, 4);
                puts_(" class "); hex(cls, 4); puts_("\n");
                u32 header = (pci_read(bus, dev, fn, 0xc) >> 16) & 0xff;
                if (fn == 0 && !(header & 0x80)) break;  /* single-function device */
            }
}

void probe_main(u32 magic, struct multiboot_info *mbi)
{
    serial_init();
    puts_("probe: start\n");
    if (magic != 0x2BADB002u) {
        puts_("probe: not booted by a multiboot loader\n");
    } else {
        if (mbi->flags & (1u << 2)) {
            puts_("probe: cmdline: ");
            puts_((const char *)mbi->cmdline);
            puts_("\n");
        }
        if (mbi->flags & (1u << 3)) {
            struct multiboot_module *m = (struct multiboot_module *)mbi->mods_addr;
            for (u32 i = 0; i < mbi->mods_count; i++) {
                puts_("probe: module ");
                hex(i, 2);
                puts_(": ");
                puts_((const char *)m[i].string);
                puts_("\n");
            }
        }
    }
    scan_pci();
    puts_("probe: done\n");
    outb(0xf4, 0x00);  /* isa-debug-exit: QEMU exits with status 1 */
    for (;;) __asm__ volatile("cli; hlt");
}
