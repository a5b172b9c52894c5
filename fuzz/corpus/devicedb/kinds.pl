:- local struct(pci_card(vendor, device, function, subvendor, subdevice)).
:- dynamic(pci_driver/9).
/* a block comment */
pci_driver{ binary: "e1000n", module: "e1000n_module", priority: 2,
    supported_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3, function: _, subvendor: _, subdevice: _ },
                       pci_card(16'8086, 16'100e, _, _, _), Any ],
    interrupt_load: 0.75, interrupt_model: ['legacy'], platforms: ['x86_64', 'x86_32'] }.
cpu_driver{ binary: "cpu", platforms: ['x86_64'] }.
bus_driver{ binary: "ioapic", core_hint: 0, platforms: ['x86_64'] }.
int_model_enum(legacy, 1).
get_interrupt_model(IntModels, Model) :-
    ((var(IntModels) -> Model = 0);
    (maplist(int_model_enum,IntModels, Mpd), sort(0,>,Mpd,[Model | _]))).
x(X) :- \+ X = 0'a, X is -1 + 2 * 3 // 4.
