"""Check infra/ against the Google providers' schema, offline (part of `make lint`).

    .venv/bin/python scripts/check_infra_schema.py [DIR_OR_FILE ...]     (default: infra)

What `terraform validate` would say about arguments if the provider could be downloaded here:
the schema comes from the npm packages of the providers' CDKTF bindings (scripts/
provider_schema.py). For every resource, data source and provider block it reports

- an argument or block the schema does not have at that place (and where it does belong, if it
  belongs somewhere else in the same resource);
- an argument written as a block, or a block written as an argument;
- a single block given twice;
- a required argument or block that is missing;
- a resource type that exists only in google-beta used without `provider = google-beta`;
- a `required_providers` version that is not the schema's (`~> MAJOR.MINOR.0`), or a module
  using google-beta without declaring it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provider_schema

ROOT = provider_schema.ROOT
SOURCES = {
    "google": "hashicorp/google",
    "google-beta": "hashicorp/google-beta",
}
# Meta-arguments Terraform itself takes in resource and data blocks.
META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
DYNAMIC_KEYS = {"for_each", "iterator", "labels", "content"}
PROVIDER_META = {"alias", "version"}


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        try:
            shown = self.file.relative_to(ROOT)
        except ValueError:
            shown = self.file
        return f"{shown}:{self.line}: {self.where}: {self.message}"


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def keys(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in body.items():
        if not key.startswith("__"):
            yield key, value


class Checker:
    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.problems: list[Problem] = []

    # ------------------------------------------------------------ blocks

    def block(self, schema: dict[str, Any], key: str, body: dict[str, Any], ctx: Ctx) -> None:
        struct = schema["structs"][key]
        attrs: dict[str, bool] = struct["attrs"]
        blocks: dict[str, list[Any]] = struct["blocks"]
        seen: set[str] = set()
        for name, value in keys(body):
            if ctx.top and name in ctx.meta:
                continue
            if name == "dynamic" and isinstance(value, list):
                for dyn in value:
                    for label, dyn_body in keys(dyn):
                        self.dynamic(schema, struct, unquote(label), dyn_body, ctx, seen)
                continue
            here = ctx.at(name)
            if name in attrs:
                seen.add(name)
                if is_block(value):
                    self.report(ctx, here, f"is an argument: write `{name} = ...`, not a block")
            elif name in blocks:
                seen.add(name)
                required, single, target = blocks[name]
                if not is_block(value):
                    self.report(ctx, here, f"is a block: write `{name} {{ ... }}`, not `= ...`")
                    continue
                if single and len(value) > 1:
                    self.report(ctx, here, f"may be given once, not {len(value)} times")
                for instance in value:
                    self.block(schema, target, instance, ctx.into(name))
            else:
                self.unknown(schema, ctx, name)
        for name, required in attrs.items():
            if required and name not in seen:
                self.report(ctx, ctx.path or ctx.address, f"missing required argument {name}")
        for name, (required, _, _) in blocks.items():
            if required and name not in seen:
                self.report(ctx, ctx.path or ctx.address, f"missing required block {name}")

    def dynamic(
        self,
        schema: dict[str, Any],
        struct: dict[str, Any],
        name: str,
        body: dict[str, Any],
        ctx: Ctx,
        seen: set[str],
    ) -> None:
        here = ctx.at(f'dynamic "{name}"')
        for key, _ in keys(body):
            if key not in DYNAMIC_KEYS:
                self.report(ctx, here, f"a dynamic block takes {sorted(DYNAMIC_KEYS)}, not {key}")
        if name not in struct["blocks"]:
            if name in struct["attrs"]:
                self.report(ctx, here, f"{name} is an argument, not a block")
            else:
                self.unknown(schema, ctx, name)
            return
        seen.add(name)
        content = body.get("content")
        if not is_block(content):
            self.report(ctx, here, "has no content block")
            return
        assert isinstance(content, list)
        self.block(schema, struct["blocks"][name][2], content[0], ctx.into(name))

    def unknown(self, schema: dict[str, Any], ctx: Ctx, name: str) -> None:
        elsewhere = [
            p for p in paths_of(schema, ctx.root, name) if p != (ctx.path or "the top level")
        ]
        hint = f"; it belongs in {', '.join(elsewhere[:3])}" if elsewhere else ""
        place = f"{ctx.path} of {ctx.rtype}" if ctx.path else ctx.rtype
        self.report(
            ctx, ctx.at(name), f"not an argument or block of {place} ({ctx.provider}){hint}"
        )

    def report(self, ctx: Ctx, where: str, message: str) -> None:
        self.problems.append(Problem(ctx.file, ctx.line, where, message))

    # ------------------------------------------------------------ files

    def file(self, path: Path) -> dict[str, Any]:
        text = path.read_text()
        parsed: dict[str, Any] = hcl2.loads(text)
        for kind, table in (("resource", "resources"), ("data", "data")):
            for group in parsed.get(kind, []):
                for rtype_q, named in keys(group):
                    for name_q, body in keys(named):
                        rtype, name = unquote(rtype_q), unquote(name_q)
                        line = line_of(text, kind, rtype, name)
                        self.resource(path, line, kind, table, rtype, name, body)
        for group in parsed.get("provider", []):
            for pname_q, body in keys(group):
                pname = unquote(pname_q)
                if pname not in self.schemas:
                    continue
                schema = self.schemas[pname]
                ctx = Ctx(path, line_of(text, "provider", pname, ""), f'provider "{pname}"', pname)
                ctx = ctx.with_root(schema["provider_config"], PROVIDER_META, "provider")
                self.block(schema, schema["provider_config"], body, ctx)
        return parsed

    def resource(
        self,
        path: Path,
        line: int,
        kind: str,
        table: str,
        rtype: str,
        name: str,
        body: dict[str, Any],
    ) -> None:
        if not rtype.startswith("google_"):
            return
        address = f"{'data.' if kind == 'data' else ''}{rtype}.{name}"
        provider = provider_of(body)
        ctx = Ctx(path, line, address, provider)
        schema = self.schemas[provider]
        if rtype not in schema[table]:
            beta = self.schemas["google-beta"][table]
            if provider == "google" and rtype in beta:
                self.report(ctx, address, "exists only in google-beta: set provider = google-beta")
            else:
                version = schema["provider_version"]
                self.report(ctx, address, f"no such {kind} type in {provider} {version}")
            return
        key = schema[table][rtype]
        self.block(schema, key, body, ctx.with_root(key, META, rtype))

    def directory(self, files: list[Path]) -> None:
        """Every file of one module: its resources, and its providers' version constraints."""
        declared: dict[str, str | None] = {}
        uses_beta: Path | None = None
        for path in files:
            parsed = self.file(path)
            for tf in parsed.get("terraform", []):
                for group in tf.get("required_providers", []):
                    for pname, spec in keys(group):
                        if isinstance(spec, dict):
                            declared[pname] = unquote(str(spec.get("version", ""))) or None
                            self.version(path, pname, spec)
            text = re.sub(r"(?m)#.*$", "", path.read_text())
            if re.search(r"provider\s*=\s*google-beta\b", text):
                uses_beta = path
        if uses_beta is not None and "google-beta" not in declared:
            self.problems.append(
                Problem(
                    uses_beta,
                    1,
                    "terraform.required_providers",
                    "uses google-beta without declaring it (source hashicorp/google-beta)",
                )
            )

    def version(self, path: Path, pname: str, spec: dict[str, Any]) -> None:
        if pname not in self.schemas:
            return
        schema = self.schemas[pname]
        major, minor, _ = schema["provider_version"].split(".")
        want = f"~> {major}.{minor}.0"
        got = unquote(str(spec.get("version", "")))
        where = f"required_providers.{pname}"
        line = line_of(path.read_text(), "required_providers", "", "")
        if unquote(str(spec.get("source", ""))) != SOURCES[pname]:
            self.problems.append(Problem(path, line, where, f"source must be {SOURCES[pname]}"))
        if got != want:
            self.problems.append(
                Problem(
                    path,
                    line,
                    where,
                    f'version must be "{want}": the schema this check reads is '
                    f"{schema['package']} {schema['package_version']} "
                    f"({pname} {schema['provider_version']}), not {got or 'unpinned'}",
                )
            )


@dataclass(frozen=True)
class Ctx:
    """Where in the configuration a block is being checked."""

    file: Path
    line: int
    address: str
    provider: str
    rtype: str = ""
    root: str = ""
    path: str = ""
    meta: frozenset[str] = frozenset()

    @property
    def top(self) -> bool:
        return not self.path

    def with_root(self, root: str, meta: set[str], rtype: str) -> Ctx:
        return Ctx(
            self.file, self.line, self.address, self.provider, rtype, root, "", frozenset(meta)
        )

    def into(self, name: str) -> Ctx:
        path = f"{self.path}.{name}" if self.path else name
        return Ctx(
            self.file,
            self.line,
            self.address,
            self.provider,
            self.rtype,
            self.root,
            path,
            self.meta,
        )

    def at(self, name: str) -> str:
        return f"{self.address}: {self.path + '.' if self.path else ''}{name}"


def provider_of(body: dict[str, Any]) -> str:
    value = str(body.get("provider", ""))
    # python-hcl2 gives `google-beta` bare and `google-beta.alias` as an interpolation.
    beta = re.fullmatch(r"(\$\{)?google-beta(\.\w+)?\}?", value)
    return "google-beta" if beta else "google"


def paths_of(schema: dict[str, Any], root: str, name: str, depth: int = 6) -> list[str]:
    """Every place (dotted block path; "" for the top) in a resource where `name` is valid."""
    found: list[str] = []

    def walk(key: str, path: str, left: int) -> None:
        struct = schema["structs"][key]
        if name in struct["attrs"] or name in struct["blocks"]:
            found.append(path or "the top level")
        if left:
            for block, (_, _, target) in struct["blocks"].items():
                walk(target, f"{path}.{block}" if path else block, left - 1)

    walk(root, "", depth)
    return found


def line_of(text: str, kind: str, first: str, second: str) -> int:
    if kind == "required_providers":
        pattern = r"required_providers\s*\{"
    elif kind == "provider":
        pattern = rf'provider\s+"{re.escape(first)}"'
    else:
        pattern = rf'{kind}\s+"{re.escape(first)}"\s+"{re.escape(second)}"'
    m = re.search(pattern, text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def module_files(targets: list[Path]) -> dict[Path, list[Path]]:
    dirs: dict[Path, list[Path]] = {}
    for target in targets:
        files = [target] if target.is_file() else sorted(target.rglob("*.tf"))
        for f in files:
            if ".terraform" not in f.parts:
                dirs.setdefault(f.parent, []).append(f)
    return dirs


def check(targets: list[Path], root: Path = ROOT) -> list[Problem]:
    schemas = {name: provider_schema.load(name, root) for name in provider_schema.PACKAGES}
    checker = Checker(schemas)
    for files in module_files(targets).values():
        checker.directory(files)
    return checker.problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", type=Path, default=[ROOT / "infra"])
    args = parser.parse_args(argv)
    try:
        problems = check(args.targets)
    except provider_schema.SchemaError as exc:
        print(f"check_infra_schema: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    files = sum(len(f) for f in module_files(args.targets).values())
    versions = ", ".join(
        f"{name} {provider_schema.load(name)['provider_version']}"
        for name in provider_schema.PACKAGES
    )
    verdict = f"{len(problems)} problem(s)" if problems else "no problems"
    print(f"check_infra_schema: {files} files against {versions}: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
