"""Validates Kubernetes YAML documents against KubeVirt's own CRD schemas (../shared/fixtures/kubevirt), strictly.

Run with Debian's /usr/bin/python3 (python3-yaml, python3-jsonschema). Usage:
    kubevirt_schema.py SCHEMA_DIR FILE...
Prints one JSON object: {"documents": [{"file", "kind", "object", "errors": [...]}]}, one entry per YAML document.
Which schema: kind KubeVirt -> kubevirt.schema.json, VirtualMachine -> virtualmachine.schema.json,
VirtualMachineInstance -> virtualmachineinstance.schema.json; any other kind is an error.

KubeVirt's schemas hold no additionalProperties: false, so a plain validator accepts misspelt fields, which a cluster
prunes (or rejects with fieldValidation=Strict). As the fixtures' README describes, every object schema that lists
properties and neither allows other keys nor preserves unknown fields gets additionalProperties: false here, in memory.
"""
import json
import sys

import jsonschema
import yaml

SCHEMAS = {
    "KubeVirt": "kubevirt.schema.json",
    "VirtualMachine": "virtualmachine.schema.json",
    "VirtualMachineInstance": "virtualmachineinstance.schema.json",
}


def strict(schema):
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def main():
    schema_dir, files = sys.argv[1], sys.argv[2:]
    validators = {}
    out = []
    for name in files:
        with open(name) as f:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        for doc in documents:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            entry = {"file": name, "kind": kind, "object": doc, "errors": []}
            if kind not in SCHEMAS:
                entry["errors"].append("no KubeVirt schema for kind %r" % (kind,))
            else:
                if kind not in validators:
                    with open(schema_dir + "/" + SCHEMAS[kind]) as s:
                        validators[kind] = jsonschema.Draft7Validator(strict(json.load(s)))
                for e in sorted(validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path)):
                    entry["errors"].append("%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message))
            out.append(entry)
    json.dump({"documents": out}, sys.stdout, default=str)


main()
