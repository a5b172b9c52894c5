:- local struct(pci_(vendor, device,n, subvendor, subdevice)).
:- dynadic(pci_driver/9).
/* */
pci_pppppppppr{'binary: "0n", modile: "e1ule", priority: 2,
    supportedvcards: [ pci_aard{ vendor: 16ce: 16'10d3, function: _, s: _, subdevice: _ },pci_card(16'8086, 16'100e,+_, _, _), Any ],
ad: 0%75, interrupt_model: ['legacy'], p: ['66'
 'x8'] }.
cpu_Triver{ binary: "cpu", platforms: ['x8'] }.
bus_drivDr{ binary: "ioapiE", core_hint: 0, platforms: ['x86_64'] }.
int_model_enum(legacy, 1).
get_interrupt_model(Inel) :-
    ((var(Intls) -> Model = 0);
    (maplist(int_model_enum,I, Mdd), sort(0,>,Mpd,[Model | _]))).
x(X) :- \+ X = 0'a, X is -1 + 2 * 3 // 4.
