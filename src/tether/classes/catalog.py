"""Loading class packs and compiling what the gate needs from them.

The packs shipped with tether live in ``tether/classes/packs``; more directories
can be named in the settings (``class_packs``). A pack in a later directory
replaces a shipped one of the same name. Every problem is reported with the
file and the key at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from pydantic import ValidationError

from tether.classes.frames import FrameSet
from tether.classes.pack import ClassPack
from tether.classes.quickcheck import with_quick_check
from tether.errors import ClassPackError, NotFoundError

COMMON = "_common.yaml"
Validator = Callable[[Any], Any]


def _resolve(schema: Any, common: dict[str, Any], where: str) -> Any:
    if isinstance(schema, dict):
        if set(schema) == {"$ref"}:
            name = schema["$ref"]
            if name not in common:
                raise ClassPackError(
                    f"{where}: $ref {name!r} is not a shared schema "
                    f"(known: {', '.join(sorted(common))})"
                )
            return common[name]
        return {k: _resolve(v, common, where) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, common, where) for v in schema]
    return schema


@dataclass
class ClassRuntime:
    """A loaded pack with its frames and body validators compiled."""

    pack: ClassPack
    source: str
    frames: FrameSet
    validators: dict[tuple[str, int], Validator] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.pack.name

    def validator(self, event_type: str, v: int) -> Validator | None:
        return self.validators.get((event_type, v))


def _read_yaml(path: Path | str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClassPackError(f"{path}: not valid YAML: {exc}") from exc


def compile_pack(data: Any, source: str, common: dict[str, Any]) -> ClassRuntime:
    """Validate one pack's data and compile its frames and schemas."""
    if not isinstance(data, dict):
        raise ClassPackError(
            f"{source}: a class pack is a mapping of keys, not {type(data).__name__}"
        )
    try:
        pack = ClassPack.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ClassPackError(f"{source}: {problems}") from exc
    runtime = ClassRuntime(pack, source, FrameSet(pack.frames))
    for event_type, versions in pack.events.items():
        for v, schema in versions.items():
            where = f"{source}: events.{event_type}.{v}"
            resolved = _resolve(schema, common, where)
            try:
                full = fastjsonschema.compile(resolved)
            except fastjsonschema.JsonSchemaDefinitionException as exc:
                raise ClassPackError(f"{where}: not a valid JSON Schema: {exc}") from exc
            runtime.validators[(event_type, v)] = with_quick_check(resolved, full)
    return runtime


class ClassCatalog:
    """The device classes this platform knows, by name."""

    def __init__(self, runtimes: Iterable[ClassRuntime]) -> None:
        self._classes = {r.name: r for r in runtimes}

    def get(self, name: str) -> ClassRuntime:
        try:
            return self._classes[name]
        except KeyError:
            raise NotFoundError(
                f"no class pack named {name!r} (known: {', '.join(self.names()) or 'none'}); "
                "add a pack file to a directory listed in class_packs"
            ) from None

    def find(self, name: str) -> ClassRuntime | None:
        return self._classes.get(name)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __iter__(self) -> Any:
        return iter(self._classes.values())


def load_catalog(extra_dirs: Iterable[Path] = ()) -> ClassCatalog:
    """Load the shipped packs, then every ``*.yaml`` in ``extra_dirs`` (later wins)."""
    shipped = resources.files("tether.classes") / "packs"
    common = _read_yaml(COMMON, (shipped / COMMON).read_text()) or {}
    sources: list[tuple[str, str]] = [
        (f"tether:{entry.name}", entry.read_text())
        for entry in sorted(shipped.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml") and entry.name != COMMON
    ]
    for directory in extra_dirs:
        if not directory.is_dir():
            raise ClassPackError(f"class pack directory {directory} does not exist")
        sources += [(str(p), p.read_text()) for p in sorted(directory.glob("*.yaml"))]
    runtimes: dict[str, ClassRuntime] = {}
    for source, text in sources:
        runtime = compile_pack(_read_yaml(source, text), source, common)
        runtimes[runtime.name] = runtime
    return ClassCatalog(runtimes.values())
