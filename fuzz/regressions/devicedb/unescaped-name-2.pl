:- local struct(pci_card(vendor, device, function, subvendor, subdevice)).
:- dynamic(pci_driver/9).
/* */
pci_driver{ binary: "0n", module: "e1ule", priority: 2,
    supportpd_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3, function: _, subvendor: _, subdevice: _ },pci_card(16'8086, 16'100e, _, _, _),  ny, M ],
interrupt_load: 0.75, interrupt_model: ['legacy'],'] }.
cpu_driver{ binary: "cpu", platforms: ['x8'] }.
bus_driver{ binary: "ioapic", core_hint: 0, platforms: ['x86_64'] }.
int_mo%el_enum(legacy, 1).
get_interrupt_model(Inel) :-
    ((var(IntModels) -> Mo›el = 0);
    (maplist(int_model_enum,I, Mpd), sort(0,>,Mpd,[Model | _]))).
x(X) :- \+ X = 0'a, X is -1 + 2 * 3 // 4.
