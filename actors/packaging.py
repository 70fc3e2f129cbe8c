"""Fabric 2.x chaincode packages: create, read, and compute the package id.

A package is a gzipped tar holding two entries (``peer lifecycle chaincode package``):

* ``metadata.json``: ``{"type": ..., "label": ..., "path": ...}``; our Python chaincode adds
  ``"target": "module:Class"``, the class the shim runs;
* ``code.tar.gz``: the source tree, every file under ``src/`` but ``META-INF/`` (state DB
  indexes), which stays at the root as Fabric's packagers put it.

The package id is Fabric's: ``<label>:<sha256 hex of the package file's bytes>``
(``core/chaincode/persistence``). :func:`create_package` is deterministic (sorted entries, fixed
mtimes, owners and modes, no gzip timestamp), so the same source and label give the same id on
any machine.

Where the source goes: when the directory is itself a Python package (it has ``__init__.py``)
it keeps its name, so ``--path examples --target examples.kv:KVChaincode`` imports
``examples.kv``; otherwise its contents are the top level (a project directory holding
modules or packages). Hidden files, ``__pycache__`` and ``*.pyc`` are left out.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # Fabric: ^[[:alnum:]][[:alnum:]_.+-]*$
TARGET_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
METADATA = "metadata.json"
CODE = "code.tar.gz"
SOURCE_PREFIX = "src"
META_INF = "META-INF/"
FIXED_MTIME = 0  # 1970-01-01; Docker and tar accept it, and it never changes
_IGNORED_DIRS = {"__pycache__"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")


class PackageError(ValueError):
    """A chaincode package (or what should become one) is missing, corrupt or invalid."""


@dataclass(frozen=True)
class PackageInfo:
    """What a chaincode package holds. ``code`` is the ``code.tar.gz`` entry's bytes."""

    label: str
    type: str
    target: str
    id: str
    code: bytes
    path: str = ""  # metadata "path": where the source came from (informational)
    # metadata.json's bytes as packaged: external builders get these, not a re-serialisation.
    metadata: bytes = field(default=b"", compare=False, repr=False)

    @property
    def digest(self) -> str:
        """The sha256 hex part of the id."""
        return self.id.rsplit(":", 1)[1]


def check_label(label: object) -> str:
    if not isinstance(label, str) or not LABEL_RE.fullmatch(label):
        raise PackageError(
            f"invalid label {label!r}: a label must start with a letter or digit and contain "
            "only letters, digits and _ . + - (Fabric: ^[[:alnum:]][[:alnum:]_.+-]*$)"
        )
    return label


def check_target(target: object) -> str:
    if not isinstance(target, str) or not TARGET_RE.fullmatch(target):
        raise PackageError(
            f"invalid target {target!r}: expected 'module:Class', e.g. 'examples.kv:KVChaincode'"
        )
    return target


def package_id(path: str | os.PathLike[str]) -> str:
    """Fabric's package id of the package file at ``path``: ``label:sha256hex``."""
    return read_package(path).id


def package_id_from_bytes(label: str, data: bytes) -> str:
    return f"{check_label(label)}:{hashlib.sha256(data).hexdigest()}"


# -- creating ----------------------------------------------------------------------------------


def _tar_info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _gzip_tar(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A deterministic tar.gz of (name, data, mode) entries, in the order given."""
    raw = io.BytesIO()
    # mtime=0 and no file name in the gzip header: the bytes depend on the content only.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data, mode in entries:
            tar.addfile(_tar_info(name, len(data), mode), io.BytesIO(data))
    return raw.getvalue()


def _source_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every file to package, sorted by path."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        kept = []
        for name in dirnames:
            if name.startswith(".") or name in _IGNORED_DIRS:
                continue
            if (base / name).is_symlink():
                raise PackageError(f"{base / name}: symbolic links cannot be packaged")
            kept.append(name)
        dirnames[:] = sorted(kept)
        for name in filenames:
            if name.startswith(".") or name.endswith(_IGNORED_SUFFIXES):
                continue
            file = base / name
            mode = file.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise PackageError(f"{file}: symbolic links cannot be packaged")
            if not stat.S_ISREG(mode):
                raise PackageError(f"{file}: only regular files can be packaged")
            found.append((file.relative_to(root).as_posix(), file))
    found.sort(key=lambda item: item[0])
    return found


def build_code_archive(source_dir: str | os.PathLike[str]) -> tuple[bytes, list[str]]:
    """The ``code.tar.gz`` bytes for ``source_dir`` and the archive's file names."""
    root = Path(source_dir)
    if not root.is_dir():
        raise PackageError(f"chaincode source {root} is not a directory")
    root = root.resolve()
    prefix = PurePosixPath(SOURCE_PREFIX)
    if (root / "__init__.py").is_file():
        prefix = prefix / root.name
    entries = []
    for relative, file in _source_files(root):
        executable = file.stat().st_mode & stat.S_IXUSR
        # As Fabric's packagers do, the source's META-INF (state DB indexes) goes to the
        # archive's root, where the peer looks for it; the rest under src/.
        name = relative if relative.startswith(META_INF) else str(prefix / relative)
        entries.append((name, file.read_bytes(), 0o755 if executable else 0o644))
    if not entries:
        raise PackageError(f"chaincode source {root} holds no files to package")
    return _gzip_tar(entries), [name for name, _, _ in entries]


def _check_target_in_code(target: str, names: list[str]) -> None:
    module = target.split(":", 1)[0].replace(".", "/")
    candidates = (f"{SOURCE_PREFIX}/{module}.py", f"{SOURCE_PREFIX}/{module}/__init__.py")
    if not any(c in names for c in candidates):
        raise PackageError(
            f"target {target}: module not found in the package (looked for "
            f"{' or '.join(candidates)}; a source directory with __init__.py is packaged under "
            "its own name, any other directory's contents are the top level)"
        )


def create_package(
    source_dir: str | os.PathLike[str],
    label: str,
    type: str = "python",
    target: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> PackageInfo:
    """Write a Fabric 2.x package of ``source_dir`` to ``out`` (default ``<label>.tar.gz``).

    ``target`` (``module:Class``) is required for ``type="python"`` and must name a module in
    the package. Returns the package's :class:`PackageInfo` (its ``id`` is Fabric's).
    """
    check_label(label)
    if not isinstance(type, str) or not type:
        raise PackageError(f"invalid chaincode type {type!r}")
    if type == "python" and target is None:
        raise PackageError("a python chaincode package needs a target 'module:Class'")
    if target is not None:
        check_target(target)
    code, names = build_code_archive(source_dir)
    if type == "python" and target is not None:
        _check_target_in_code(target, names)
    source_name = Path(source_dir).resolve().name
    metadata: dict[str, str] = {"label": label, "path": source_name, "type": type}
    if target is not None:
        metadata["target"] = target
    meta_bytes = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
    data = _gzip_tar([(METADATA, meta_bytes, 0o644), (CODE, code, 0o644)])
    out_path = Path(out) if out is not None else Path(f"{label}.tar.gz")
    try:
        out_path.write_bytes(data)
    except OSError as exc:
        raise PackageError(f"cannot write package {out_path}: {exc}") from exc
    return PackageInfo(
        label=label,
        type=type,
        target=target or "",
        id=package_id_from_bytes(label, data),
        code=code,
        path=source_name,
        metadata=meta_bytes,
    )


# -- reading -----------------------------------------------------------------------------------
#
# A package comes from outside (a file an admin names, bytes over the admin API), so reading it
# streams and counts: every decompressed byte goes through a _Budget that refuses past the
# limit, tar headers are checked before their data is read, and metadata.json has its own small
# limit. A gzip bomb is refused after at most ``max_bytes`` of work, whatever its headers claim.

DEFAULT_MAX_BYTES = 128 * 1024 * 1024  # decompressed bytes of each archive (ours, not Fabric's)
MAX_METADATA_BYTES = 1024 * 1024  # Fabric's CLI writes ~100 bytes
MAX_ENTRIES = 100_000  # entries per archive (each costs a header and a TarInfo)


class _Budget(io.RawIOBase):
    """A read-only stream over ``source`` that raises once more than ``limit`` bytes came out."""

    def __init__(self, source: io.BufferedIOBase | gzip.GzipFile, limit: int, what: str) -> None:
        self._source = source
        self._left = limit
        self._limit = limit
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # tarfile's stream mode reads in record-sized chunks; never ask for more than the
        # remaining budget plus one byte, so an over-size archive costs at most the budget.
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data = self._source.read(want)
        self._left -= len(data)
        if self._left < 0:
            raise PackageError(_too_big(self._what, self._limit))
        return data


def _too_big(what: str, limit: int) -> str:
    return f"{what} is larger than {limit} bytes once decompressed (the peer's package size limit)"


def _members(
    data: bytes, what: str, max_bytes: int
) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Stream the members of the gzipped tar ``data``, refusing what exceeds ``max_bytes``."""
    stream = _Budget(gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"), max_bytes, what)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_ENTRIES:
                    raise PackageError(f"{what} has more than {MAX_ENTRIES} entries")
                if member.size > max_bytes:  # refused from the header, before its data
                    raise PackageError(
                        f"{what}: entry {member.name!r} holds {member.size} bytes: "
                        + _too_big("it", max_bytes)
                    )
                yield member, tar
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise PackageError(f"{what} is not a valid tar.gz: {exc}") from exc


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)
    assert extracted is not None  # regular files only reach here
    return extracted.read()


@dataclass(frozen=True)
class CodeEntry:
    """One entry of a code archive as :func:`code_entries` gives it: ``path`` is the entry's
    name made relative and normal (no ``.`` parts; "" for the root); ``open``/``read`` give a
    regular file's content, until the next entry is taken (the archive is a stream)."""

    member: tarfile.TarInfo
    path: str
    _tar: tarfile.TarFile = field(repr=False)
    what: str = field(repr=False, default=CODE)  # the archive, as its errors name it

    def open(self) -> IO[bytes]:
        extracted = self._tar.extractfile(self.member)
        assert extracted is not None  # regular files only
        return io.BufferedReader(_EntryStream(extracted, self))

    def read(self) -> bytes:
        with self.open() as stream:
            return stream.read()


class _EntryStream(io.RawIOBase):
    """An entry's content, whose read errors (an archive cut off in the middle of the entry's
    data) are :class:`PackageError` like those met between entries: the content is read by the
    caller, outside :func:`_members`' ``try``."""

    def __init__(self, source: IO[bytes], entry: CodeEntry) -> None:
        self._source = source
        self._entry = entry

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._source.read(len(buffer))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise PackageError(
                f"{self._entry.what} is not a valid tar.gz: "
                f"cannot read entry {self._entry.member.name!r}: {exc}"
            ) from exc
        buffer[: len(data)] = data
        return len(data)


def code_entries(
    code: bytes, what: str = CODE, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[CodeEntry]:
    """The entries of a ``code.tar.gz``, each checked before it is given out, with Fabric's
    extraction rules (``core/container/externalbuilder`` ``Untar``) and our limits: only
    directories and regular files (no links of any kind, no devices), no absolute or escaping
    names, at most :data:`MAX_ENTRIES` entries and ``max_bytes`` bytes in all, counted from
    the headers and again as they decompress (a gzip bomb stops at the limit). Streams; every
    reader of a code archive (install, builders, the Docker and node builds) walks it with
    this, so none of them applies weaker rules. Raises :class:`PackageError`."""
    declared = 0
    for member, tar in _members(code, what, max_bytes):
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise PackageError(
                f"{what}: tar contains the absolute or escaping path '{member.name}'"
            )
        # Fabric's Untar takes TypeReg (Go reads TypeRegA as TypeReg) and TypeDir only; not
        # contiguous ('7') or GNU sparse ('S') files, which tarfile's isreg() would accept.
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
            raise PackageError(
                f"{what}: invalid file type '{member.type.decode(errors='replace')}' contained "
                f"in archive for file '{member.name}' (only regular files and directories)"
            )
        declared += member.size
        if declared > max_bytes:
            raise PackageError(_too_big(what, max_bytes))
        yield CodeEntry(member, "/".join(name.parts), tar, what)


def code_files(code: bytes, prefix: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, bytes]:
    """The regular files of a code archive whose paths start with ``prefix`` (e.g. the state
    DB indexes under ``META-INF/statedb/couchdb/indexes/``), read within ``max_bytes``."""
    return {
        entry.path: entry.read()
        for entry in code_entries(code, max_bytes=max_bytes)
        if entry.member.isreg() and entry.path.startswith(prefix)
    }


def read_package(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> PackageInfo:
    """Read and check a package file; raise :class:`PackageError` saying what is wrong."""
    where = f"chaincode package {os.fspath(path)}"
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise PackageError(f"{where} is {size} bytes, more than the limit ({max_bytes})")
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise PackageError(f"{where} not found") from exc
    except OSError as exc:
        raise PackageError(f"cannot read {where}: {exc}") from exc
    return read_package_bytes(data, where, max_bytes=max_bytes)


def _field(metadata: Mapping[str, object], key: str) -> object:
    """A metadata.json field matched as Go's encoding/json does: exact key, else any case."""
    if key in metadata:
        return metadata[key]
    for name, value in metadata.items():
        if name.lower() == key:
            return value
    return None


def read_package_bytes(
    data: bytes, where: str = "chaincode package", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> PackageInfo:
    """Parse a package as Fabric's ``ChaincodePackageParser`` does, within ``max_bytes``."""
    entries: dict[str, bytes] = {}
    for member, tar in _members(data, where, max_bytes):
        if not member.isreg():  # Fabric: every top-level entry must be a regular file
            raise PackageError(
                f"{where}: tar entry {member.name} is not a regular file, "
                f"type {member.type.decode(errors='replace')}"
            )
        if member.name == METADATA and member.size > MAX_METADATA_BYTES:
            raise PackageError(
                f"{where}: {METADATA} is {member.size} bytes, more than {MAX_METADATA_BYTES}"
            )
        if member.name in (METADATA, CODE):  # duplicates: the last one wins, as in Fabric
            entries[member.name] = _read_member(tar, member)
        # Anything else is ignored (Fabric logs it); the stream skips its data within budget.
    if CODE not in entries:
        raise PackageError(f"{where} has no {CODE}: did not find a code package inside the package")
    if METADATA not in entries:
        raise PackageError(f"{where} has no {METADATA}: did not find any package metadata")
    raw_metadata = entries[METADATA]
    try:
        metadata = json.loads(raw_metadata)
    except RecursionError:
        raise PackageError(f"{where}: {METADATA} is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise PackageError(f"{where}: {METADATA} is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise PackageError(f"{where}: {METADATA} must be a JSON object")
    label = _field(metadata, "label")
    try:
        check_label(label)
    except PackageError as exc:
        raise PackageError(f"{where}: {exc}") from None
    assert isinstance(label, str)
    kind = _field(metadata, "type")
    if not isinstance(kind, str) or not kind:
        raise PackageError(f"{where}: {METADATA} has no chaincode type")
    target = _field(metadata, "target") or ""
    if kind.lower() == "python" or target:
        try:
            check_target(target)
        except PackageError as exc:
            raise PackageError(f"{where}: {exc}") from None
    assert isinstance(target, str)
    # Checked at install whatever will build it, so nothing unsafe is ever stored.
    for _ in code_entries(entries[CODE], f"{where}: {CODE}", max_bytes=max_bytes):
        pass
    path = _field(metadata, "path")
    return PackageInfo(
        label=label,
        type=kind,
        target=target,
        id=package_id_from_bytes(label, data),
        code=entries[CODE],
        path=path if isinstance(path, str) else "",
        metadata=raw_metadata,
    )
