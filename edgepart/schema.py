"""Versioned JSON files shared by every stage: `{"kind": "edgepart.<name>", "schema_version": N, ...}`.

Writers produce deterministic bytes (sorted keys, fixed indentation) and replace the target
atomically, so an interrupted run never leaves a half-written file where the user had a good one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from edgepart import checks
from edgepart.errors import BadInputError

KIND_PREFIX = "edgepart."


def document(kind: str, schema_version: int, body: dict[str, Any]) -> dict[str, Any]:
    """Wrap `body` with the kind and schema version header."""
    return {"kind": KIND_PREFIX + kind, "schema_version": schema_version, **body}


def dumps(doc: Any) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; the user expects what open() would make
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    write_atomic(path, dumps(doc))


def load_json(path: str | os.PathLike[str], kind: str, max_version: int) -> dict[str, Any]:
    """Read a versioned file, refusing another kind or a newer schema than this edgepart knows."""
    path = Path(path)
    try:
        doc = json.loads(checks.read_bytes(path).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a JSON file ({exc})") from None
    except RecursionError:
        raise BadInputError(f"{path}: nested too deeply to be an edgepart file") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND_PREFIX + kind:
        found = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise BadInputError(f"{path}: expected a file of kind '{KIND_PREFIX + kind}', found {found!r}")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadInputError(f"{path}: missing or invalid schema_version")
    if version > max_version:
        raise BadInputError(
            f"{path}: schema_version {version} is newer than this edgepart understands "
            f"({max_version}); upgrade edgepart or regenerate the file"
        )
    return doc


@dataclass(frozen=True)
class Document:
    """A stage's file as the next stage reads it: `load(path)` checks the envelope (KIND, VERSION)
    and then the fields (`check`, each type's own), `of(doc)` checks a document already in memory,
    `dump(path)` writes it. `source` names the file (or what the document came from) in errors."""

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    doc: dict[str, Any]
    source: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        return cls.of(load_json(path, cls.KIND, cls.VERSION), str(path))

    @classmethod
    def of(cls, doc: dict[str, Any], source: str | None = None) -> Self:
        source = source or cls.KIND
        cls.check(doc, source)
        return cls(doc, source)

    @classmethod
    def check(cls, doc: Any, source: str) -> None:
        """Raise BadInputError naming `source` and the field when `doc` is not a valid document."""

    def dump(self, path: str | os.PathLike) -> None:
        write_json(path, self.doc)
