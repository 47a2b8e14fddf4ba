"""Renders the README's configuration table from the Settings classes, so it cannot drift.

`python -m devstack.config_table` prints it, `--write` updates README.md, and a unit test
compares the two.
"""

from __future__ import annotations

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from agent.settings import AgentSettings
from deploychat.settings import CommonSettings
from edge.settings import EdgeSettings

BEGIN = "<!-- config-table:begin -->"
END = "<!-- config-table:end -->"


def env_names(name: str, field: FieldInfo, prefix: str) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{prefix}{name.upper()}"]


def default_of(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        # A default computed where it runs (a path): say how it is chosen, not what it was here.
        return str(extra["shown_default"])
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"  # type: ignore[call-arg]
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def rows(settings: type[BaseSettings], service: str, skip: set[str]) -> list[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    out = []
    for name, field in settings.model_fields.items():
        if name in skip:
            continue
        names = " / ".join(f"`{n}`" for n in env_names(name, field, prefix))
        out.append(f"| {names} | {service} | {default_of(field)} | {field.description or ''} |")
    return out


def table() -> str:
    common = set(CommonSettings.model_fields)
    lines = [
        "| environment variable | service | default | what it does |",
        "|---|---|---|---|",
        *rows(CommonSettings, "both", set()),
        *rows(EdgeSettings, "edge", common),
        *rows(AgentSettings, "agent", common),
    ]
    return "\n".join(lines)


def update_readme(path: str = "README.md") -> None:
    with open(path) as f:
        text = f.read()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        update_readme()
    else:
        print(table())
