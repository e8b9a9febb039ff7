#!/usr/bin/env python3
"""The part of the OCSF schema tlscensus' `--events-format ocsf` events use,
flattened for the validation test (tests/it/layouts.rs).

Reads a checkout of github.com/ocsf/ocsf-schema at a release tag and writes,
as JSON: the Network Activity class (4001) with every attribute it has once
its `extends` chain (network, base_event) and `$include` files are merged,
and every object reachable from it, each attribute with its base type
(its dictionary type, such as ip_t, and that type's base: string, integer,
long, float, boolean or json; or the object it holds), whether it
is an array, its requirement and the ids of its enum, if any. Profile
attributes (profiles/*.json) are left out: the events declare no profile.

    scripts/ocsf-extract.py SCHEMA_DIR VERSION > tests/data/ocsf/network_activity-VERSION.json
"""
import json
import os
import sys

root, version = sys.argv[1], sys.argv[2]


def load(rel):
    with open(os.path.join(root, rel)) as f:
        return json.load(f)


dictionary = load("dictionary.json")
dict_attrs = dictionary["attributes"]
types = dictionary["types"]["attributes"]
BASE = {"string_t", "integer_t", "long_t", "float_t", "boolean_t", "json_t", "object_t"}


def base_type(t):
    while t not in BASE:
        t = types[t]["type"]
    return t[:-2]


def merged_attributes(d, kind):
    """Attributes of a class or object with its parents and includes."""
    attrs = {}
    parent = d.get("extends")
    if parent and parent != "object":
        if kind == "object":
            pd = load(f"objects/{parent}.json")
        else:
            pd = find_event(parent)
        attrs.update(merged_attributes(pd, kind))
    for k, v in d.get("attributes", {}).items():
        if k == "$include":
            for inc in v:
                if inc.startswith("profiles/"):
                    continue
                attrs.update(merged_attributes(load(inc), kind))
            continue
        merged = dict(attrs.get(k, {}))
        merged.update(v)
        attrs[k] = merged
    return attrs


def find_event(name):
    for dirpath, _, files in os.walk(os.path.join(root, "events")):
        for f in files:
            if f == f"{name}.json":
                return load(os.path.relpath(os.path.join(dirpath, f), root))
    raise SystemExit(f"no event {name}")


def describe(attrs):
    out = {}
    for k, v in sorted(attrs.items()):
        d = dict_attrs.get(k, {})
        # A class or object may narrow the dictionary's type to an object.
        t = v.get("type") or d.get("type", "string_t")
        if t == "object_t":
            t = v.get("object_type") or d.get("object_type")
        scalar = t in types or t in BASE
        row = {
            # An object's name, or a dictionary type (ip_t, port_t, ...).
            "type": t if scalar else "object",
            "base": base_type(t) if scalar else "object",
            "array": bool(d.get("is_array", False)),
            "requirement": v.get("requirement", "optional"),
        }
        if not scalar:
            row["object"] = t
        enum = v.get("enum") or d.get("enum")
        # (the uids of class and category are the class's own, not an enum)
        if enum and k not in ("class_uid", "category_uid"):
            row["enum"] = sorted(int(e) for e in enum)
        out[k] = row
    return out


cls = find_event("network_activity")
classes = {"network_activity": describe(merged_attributes(cls, "event"))}
objects = {}
todo = [r["object"] for r in classes["network_activity"].values() if "object" in r]
while todo:
    name = todo.pop()
    # (`object` is any object: it has no attributes of its own)
    if name in objects or name == "object":
        continue
    objects[name] = describe(merged_attributes(load(f"objects/{name}.json"), "object"))
    todo.extend(r["object"] for r in objects[name].values() if "object" in r)
json.dump(
    {
        "ocsf_version": version,
        "class_uid": 4000 + cls["uid"],
        "class": classes["network_activity"],
        "objects": objects,
    },
    sys.stdout,
    indent=1,
    sort_keys=True,
)
print()
