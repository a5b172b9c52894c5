"""Feeds an exported nova.conf [pci] section to Nova's own code, as nova-compute and nova-api read it.

Run with Debian's /usr/bin/python3 (python3-nova). Usage:
    nova_pci.py CONF_FILE REQUEST.json
REQUEST: {"sysfs_root": DIR, "devices": [{"address", "vendor_id", "product_id", "dev_type", "parent_addr"}],
          "flavor_alias": "NAME:COUNT,..."}
Prints one JSON object: {"assignable": [addresses Nova's device_spec matches], "aliases": {name: {"numa_policy", "specs"}},
"alias_matches": {name: [addresses]}, "requests": [{"alias_name", "count", "spec"}]} or {"error": "ExceptionName: message"} when Nova rejects the config.

The config is parsed by oslo.config with Nova's own option definitions (nova.conf), the device_spec by
nova.pci.whitelist.Whitelist (nova.pci.devspec.PciDeviceSpec per entry), the alias by nova.pci.request's parser and the
flavor property by nova.pci.request._translate_alias_to_requests. Nova asks the local sysfs whether an address is an
SR-IOV physical function (a PF's address also matches its VFs): that one lookup is pointed at the captured tree.
"""
import json
import os
import sys


def main():
    conf_file, request_file = sys.argv[1], sys.argv[2]
    with open(request_file) as f:
        request = json.load(f)

    import nova.conf
    from nova import exception
    from nova import objects
    from nova.pci import request as pci_request
    from nova.pci import utils
    from nova.pci import whitelist

    root = request["sysfs_root"]

    def is_physical_function(domain, bus, slot, function):
        path = os.path.join(root, "sys/bus/pci/devices", "%s:%s:%s.%s" % (domain, bus, slot, function), "sriov_totalvfs")
        try:
            with open(path) as f:
                return int(f.read()) > 0
        except (OSError, ValueError):
            return False

    utils.is_physical_function = is_physical_function
    objects.register_all()  # the flavor's requests are InstancePCIRequest objects

    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[conf_file])
    try:
        specs = whitelist.Whitelist(conf.pci.device_spec)
        aliases = pci_request._get_alias_from_config()
        requests = pci_request._translate_alias_to_requests(request["flavor_alias"])
    except exception.NovaException as e:
        json.dump({"error": "%s: %s" % (type(e).__name__, e)}, sys.stdout)
        return
    json.dump({
        "assignable": [d["address"] for d in request["devices"] if specs.device_assignable(d)],
        "aliases": {name: {"numa_policy": policy, "specs": spec} for name, (policy, spec) in aliases.items()},
        # Which devices each alias's specs match, as nova's PCI stats match a flavor's request against a node's devices.
        "alias_matches": {name: [d["address"] for d in request["devices"] if utils.pci_device_prop_match(d, spec)]
                          for name, (_, spec) in aliases.items()},
        "requests": [{"alias_name": r.alias_name, "count": r.count, "spec": r.spec} for r in requests],
    }, sys.stdout)


main()
