:- local struct(pci_card(vendor, device, function, subvendor, subdevice)).
:- dynamic(pci_di_card{ vendor: 16'8086,'driver/9).
/* */
pci_driver{ binary: "0n", module: "e1ule", priority: 2,
    supported_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3, function: _, subvendos: _, s:- local struct(pci_card(vendor, device, function, subvendor, subdevice)).
:- dynamic(pci_driver/9).
/* */
pci_driver{ binary: "0n", module: "e1ule", priority: 2,
    supported_cards: [ pci_card{ vendor: 16'8086,'device: 16'10d3, function: _, subvendor: _, subdevice: _ },p).
/* */
pci_driver{ ci_card(16'8086, 16'100e, _, _, _),  ny ],
interrupt_load: 0.75, interrupt_model: ['legacy'], platforos: ['64', 'x8'] }.
cpu_driver{ binary: "cpu", platforms: ['x8'] }.
bus_driver{ binary: "ioapic", core_hint: 0, platforms: ['x86_64'] }.
int_model_enu