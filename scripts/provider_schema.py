"""The Google providers' schema, read offline from the npm packages of their CDKTF bindings.

    .venv/bin/python scripts/provider_schema.py [--package google|google-beta]

Terraform's own `providers schema -json` needs the provider binary, which cannot be downloaded
here. `@cdktf/provider-google` (and `-beta`) are generated from that same schema, and carry it:

- each resource's generated `synthesizeHclAttributes()` (and each nested block's
  `...ToHclTerraform(struct)`) lists every argument by its HCL name, with `isBlock`; a block
  given through `cdktf.listMapperHcl(...)` may repeat, one given directly is a single block;
- the package's `.jsii` metadata says which of those properties are `optional`.

Both are reduced to one compact JSON per package version, cached under build/infra-schema/
(made on first use, never committed):

    {"provider": "...", "provider_version": "6.50.0", "package": "...", "package_version": "...",
     "provider_config": "<struct>", "resources": {type: "<struct>"}, "data": {type: "<struct>"},
     "structs": {"<struct>": {"attrs": {name: required}, "blocks": {name: [required, single,
     "<struct>"]}}}}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "infra-schema"
PACKAGES = {"google": "@cdktf/provider-google", "google-beta": "@cdktf/provider-google-beta"}
# Bumped whenever the cached format (or what is extracted) changes.
FORMAT = 1

CLASS = re.compile(
    r"^class (\w+) extends cdktf\.(TerraformResource|TerraformDataSource|TerraformProvider) \{",
    re.M,
)
RESOURCE_TYPE = re.compile(r'^(\w+)\.tfResourceType = "([\w-]+)";', re.M)
STRUCT_FN = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{", re.M)
SYNTH = re.compile(r"^    synthesizeHclAttributes\(\) \{", re.M)
ENTRY = re.compile(
    r"^\s+(\w+): \{\n"
    r"\s+value: (.*),\n"
    r"\s+isBlock: (true|false),\n"
    r"\s+type: \"(\w+)\",\n"
    r"\s+storageClassType: \"(\w+)\",\n",
    re.M,
)
# The struct property an entry reads: this._name (a resource) or struct.name (a nested block).
PROPERTY = re.compile(r"(?:this\._|struct\.)(\w+)")
# The constructor's `this._field = config.property`: where a field's name differs from the
# config property's (build -> buildAttribute, which would clash with a base class member).
ASSIGN = re.compile(r"this\._(\w+)(?:\.internalValue)? = config\.(\w+);")
BLOCK_FN = re.compile(r"(?:\w+\.)?(\w+)ToHclTerraform\b")


class SchemaError(Exception):
    """The npm package is missing or not in the expected shape; the message says which."""


def package_dir(provider: str, root: Path = ROOT) -> Path:
    path = root / "node_modules" / PACKAGES[provider]
    if not (path / ".jsii").is_file():
        raise SchemaError(
            f"{PACKAGES[provider]} is not installed (npm install --no-audit --no-fund)"
        )
    return path


def attrs_body(text: str, start: int, end_marker: str) -> str:
    """The `const attrs = { ... };` object of the function that begins at `start` (and ends at
    `end_marker`); empty for a block without arguments."""
    end_of_fn = text.index(end_marker, start)
    begin = text.find("const attrs = {", start, end_of_fn)
    if begin < 0:
        return ""
    indent = begin - text.rindex("\n", 0, begin) - 1
    end = text.find("\n" + " " * indent + "};", begin, end_of_fn)
    return text[begin:end] if end > 0 else ""


def entries(body: str) -> Iterator[tuple[str, str, bool, bool, str | None]]:
    """(hcl name, camelCase property, is block, single block, struct function) per argument."""
    for m in ENTRY.finditer(body):
        name, value, is_block = m.group(1), m.group(2), m.group(3) == "true"
        prop = PROPERTY.search(value)
        if prop is None:
            raise SchemaError(f"cannot read the property of {name}: {value}")
        fn = None
        if is_block:
            fns = [f for f in BLOCK_FN.findall(value) if not f.startswith(("cdktf", "list"))]
            fn = next((f for f in fns if f[0].islower()), None)
            if fn is None:
                raise SchemaError(f"cannot read the block type of {name}: {value}")
        single = is_block and "listMapperHcl" not in value
        yield name, prop.group(1), is_block, single, fn


def optional_properties(jsii: dict[str, Any]) -> dict[tuple[str, str], dict[str, bool]]:
    """(source file, interface name) -> {property: optional} for every jsii data type."""
    found: dict[tuple[str, str], dict[str, bool]] = {}
    for t in jsii["types"].values():
        if t.get("kind") != "interface" or not t.get("datatype"):
            continue
        where = t.get("locationInModule", {}).get("filename", "")
        props = {p["name"]: bool(p.get("optional")) for p in t.get("properties", [])}
        # src/<lib>/index.ts, or src/<lib>/index-structs/structsN.ts for the biggest ones
        found[("/".join(Path(where).parts[:2]), t["name"])] = props
    return found


def add_struct(
    structs: dict[str, Any],
    lib: str,
    name: str,
    body: str,
    props: dict[str, bool],
    rename: dict[str, str] | None = None,
) -> str:
    """Record one block's arguments (from its generated code) with their required flags (from
    the jsii metadata); return its key."""
    key = f"{lib}:{name}"
    entry: dict[str, Any] = {"attrs": {}, "blocks": {}}
    found = list(entries(body))
    if len(found) != body.count("isBlock:"):
        raise SchemaError(f"{key}: an argument is written in a shape this script misreads")
    for hcl, field, is_block, single, fn in found:
        prop = (rename or {}).get(field, field)
        if prop not in props:
            raise SchemaError(f"{key}: {prop} is not in the jsii metadata")
        required = not props[prop]
        if is_block:
            assert fn is not None
            entry["blocks"][hcl] = [required, single, f"{lib}:{fn[0].upper()}{fn[1:]}"]
        else:
            entry["attrs"][hcl] = required
    structs[key] = entry
    return key


def extract(provider: str, root: Path = ROOT) -> dict[str, Any]:
    pkg = package_dir(provider, root)
    meta = json.loads((pkg / "package.json").read_text())
    jsii = json.loads((pkg / ".jsii").read_text())
    optional = optional_properties(jsii)
    del jsii  # ~100 MB each; only the optional flags are kept
    out: dict[str, Any] = {
        "provider": meta["cdktf"]["provider"]["name"],
        "provider_version": meta["cdktf"]["provider"]["version"],
        "package": meta["name"],
        "package_version": meta["version"],
        "format": FORMAT,
        "provider_config": None,
        "resources": {},
        "data": {},
        "structs": {},
    }
    for lib in sorted(p for p in (pkg / "lib").iterdir() if p.is_dir()):
        files = sorted(lib.rglob("*.js"))
        text = "\n".join(f.read_text() for f in files)
        cls = CLASS.search(text)
        if cls is None:
            continue
        src = f"src/{lib.name}"
        flags: dict[str, dict[str, bool]] = {
            name: props for (where, name), props in optional.items() if where == src
        }

        for fn in STRUCT_FN.finditer(text):
            name = fn.group(1)[0].upper() + fn.group(1)[1:]
            if name not in flags:
                raise SchemaError(f"{lib.name}: no jsii interface {name}")
            add_struct(
                out["structs"], lib.name, name, attrs_body(text, fn.start(), "\n}\n"), flags[name]
            )
        synth = SYNTH.search(text)
        types = dict((c, t) for c, t in RESOURCE_TYPE.findall(text))
        class_name, kind = cls.group(1), cls.group(2)
        if synth is None or class_name not in types:
            raise SchemaError(f"{lib.name}: no synthesizeHclAttributes or tfResourceType")
        rename = dict(ASSIGN.findall(text))
        config = flags[f"{class_name}Config"]
        body = attrs_body(text, synth.start(), "\n    }\n")
        key = add_struct(out["structs"], lib.name, class_name, body, config, rename)
        tf_type = types[class_name]
        if kind == "TerraformProvider":
            out["provider_config"] = key
        elif kind == "TerraformDataSource":
            out["data"][tf_type] = key
        else:
            out["resources"][tf_type] = key
    for key, struct_ in out["structs"].items():
        for name, (_, _, target) in struct_["blocks"].items():
            if target not in out["structs"]:
                raise SchemaError(f"{key}.{name}: block type {target} was not found")
    return out


def cache_path(provider: str, root: Path = ROOT) -> Path:
    version = json.loads((package_dir(provider, root) / "package.json").read_text())["version"]
    return root / "build" / "infra-schema" / f"{provider}-{version}-f{FORMAT}.json"


def load(provider: str, root: Path = ROOT) -> dict[str, Any]:
    """The compact schema of `provider`, extracted once per package version."""
    path = cache_path(provider, root)
    if path.is_file():
        cached: dict[str, Any] = json.loads(path.read_text())
        return cached
    schema = extract(provider, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # parallel first runs
    tmp.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    tmp.replace(path)
    return schema


def main() -> int:
    parser = argparse.ArgumentParser(description="Extract (and cache) a provider's schema.")
    parser.add_argument("--package", choices=sorted(PACKAGES), default="google")
    args = parser.parse_args()
    try:
        schema = load(args.package)
    except SchemaError as exc:
        print(f"provider_schema: {exc}", file=sys.stderr)
        return 1
    print(
        f"{schema['provider']} {schema['provider_version']}: {len(schema['resources'])} "
        f"resources, {len(schema['data'])} data sources -> {cache_path(args.package)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
