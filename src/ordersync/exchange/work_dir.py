"""Each exchange session's own directory: safe file names, chunked appends, zip unpacking."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from ..domain.errors import BadExchangeFile

_STRIP_PREFIXES = ("/tmp/", "upload/1c/webdata/", "/upload/1c/webdata/")


def safe_name(raw: str) -> str:
    """1C's file name as a relative path inside the work directory, or BadExchangeFile.
    Subfolders (import_files/ab/x.jpg, goods/1/import___<guid>.xml) are normal."""
    name = raw.replace("\\", "/").strip()
    for prefix in _STRIP_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.lstrip("/")
    path = PurePosixPath(name)
    if (
        not name
        or len(name) > 255
        or "\x00" in name
        or any(part in ("", ".", "..") for part in path.parts)
        or ":" in path.parts[0]
    ):
        raise BadExchangeFile(f"refused file name {raw!r}")
    return path.as_posix()


class WorkDir:
    def __init__(self, root: Path, session_id: str) -> None:
        self.path = (root / session_id).resolve()

    def file(self, name: str) -> Path:
        target = (self.path / safe_name(name)).resolve()
        if not target.is_relative_to(self.path):
            raise BadExchangeFile(f"refused file name {name!r}")
        return target

    def size(self) -> int:
        if not self.path.exists():
            return 0
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def unpack(self, name: str, max_bytes: int) -> list[str]:
        """Extracts a zip archive beside itself; refuses members that climb out, and archives
        that would expand past max_bytes (zip bombs). Returns the member names."""
        archive = self.file(name)
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                total = sum(m.file_size for m in members)
                if total > max_bytes:
                    raise BadExchangeFile(f"{name} would unpack to {total} bytes, over the limit")
                names: list[str] = []
                for member in members:
                    member_name = safe_name(_member_name(member))
                    target = self.file(member_name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _extract(zf, member, target, max_bytes)
                    names.append(member_name)
                return names
        except zipfile.BadZipFile as exc:
            raise BadExchangeFile(f"{name} is not a zip archive: {exc}") from exc


def _member_name(member: zipfile.ZipInfo) -> str:
    """1C writes names in cp866 without the UTF-8 flag; zipfile then decodes them as cp437."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("cp866")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename


def _extract(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limit: int) -> None:
    """Copies at most `limit` bytes: the sizes in the directory could lie."""
    written = 0
    with zf.open(member) as src, target.open("wb") as dst:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise BadExchangeFile(f"{member.filename} expands past the limit")
            dst.write(chunk)


def is_zip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PK\x03\x04"
