"""A run's output files and folders, written as one unit: checked first, staged, committed.

:class:`OutputSet` gives each target (a file, or a folder such as the per-segment lists) a
staging path beside it (same file system, hidden, ending in ``.tmp``). Once everything is
staged, :meth:`OutputSet.commit` writes a journal naming the moves, renames each staged path
into place (a folder replaces the old folder whole, so files of an earlier run never stay next
to the new ones) and removes the journal. A run killed before the journal exists leaves the
previous outputs untouched (its staging litter is removed by the next run); one killed while
committing is rolled forward by the next run (:meth:`OutputSet.recover`), since every staged
path was complete. Readers therefore see the previous run's outputs or this run's, apart from
the instant of each rename. Two runs writing to the same place take turns
(:meth:`OutputSet.locked`, an advisory lock on the journal's folder), so one never removes the
other's staged files as litter.

:meth:`OutputSet.check` runs before any work: a target that is a folder where a file is
expected (or the reverse), an unwritable or read-only folder, or a folder churnml does not own
is a :class:`~churnml.errors.OutputPathError` naming the path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

from churnml.errors import OutputPathError

JOURNAL = ".churnml-commit.json"
MARKER = ".churnml-output"  # inside a folder churnml wrote (and may replace whole)
TMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old.tmp"


def _probe(folder: Path) -> None:
    """Create the folder (and parents) and a file in it: proof that writing works."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".churnml-probe.", suffix=TMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputPathError(f"cannot write to {folder}: {exc.strerror or exc}") from exc


def _owned(folder: Path) -> bool:
    """A folder churnml may replace whole: absent, empty, marked, or holding only CSV files
    (lists written by versions before the marker)."""
    if not folder.exists():
        return True
    entries = [p for p in folder.iterdir()]
    return (not entries or (folder / MARKER).exists()
            or all(p.is_file() and p.suffix == ".csv" for p in entries))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class OutputSet:
    """Targets of one run: name -> path, and which of them are folders.

    Parameters
    ----------
    files : mapping name -> file path
    folders : mapping name -> folder path (replaced whole on commit)
    journal_dir : folder of the commit journal (default: the first file's folder)
    """

    def __init__(self, files: Mapping[str, str | Path],
                 folders: Mapping[str, str | Path] | None = None,
                 journal_dir: str | Path | None = None) -> None:
        self.files = {k: Path(v) for k, v in files.items()}
        self.folders = {k: Path(v) for k, v in (folders or {}).items()}
        first = next(iter([*self.files.values(), *self.folders.values()]))
        self.journal = Path(journal_dir or first.parent) / JOURNAL
        self.run = uuid.uuid4().hex[:12]

    # ------------------------------------------------------------------ before the work
    def check(self) -> None:
        """Every target can be written (folders created, a probe file written and
        removed); raises :class:`OutputPathError` naming the first that cannot."""
        for path in self.files.values():
            if path.is_dir():
                raise OutputPathError(f"{path} is a folder; give a file name such as "
                                      f"{path / 'scores.parquet'}")
            _probe(path.parent)
        for path in self.folders.values():
            if path.exists() and not path.is_dir():
                raise OutputPathError(f"{path} is a file; give a folder for the segment lists")
            if not _owned(path):
                raise OutputPathError(
                    f"{path} holds files churnml did not write; it replaces this folder "
                    f"whole on each run, so give a new or empty folder")
            _probe(path.parent)
            if path.exists():
                _probe(path)

    def prepare(self) -> None:
        """Before any work: :meth:`check` the targets, then (holding the lock) finish a
        killed run's commit and remove staging litter."""
        self.check()
        with self.locked():
            self.recover()

    def recover(self) -> None:
        """Finish a commit a killed run left half done, then remove staging litter of
        killed runs beside every target."""
        if self.journal.exists():
            try:
                moves = json.loads(self.journal.read_text())["moves"]
            except (OSError, ValueError, KeyError):
                moves = []
            self._apply([(Path(src), Path(dst)) for src, dst in moves])
            self.journal.unlink(missing_ok=True)
        for path in [*self.files.values(), *self.folders.values()]:
            if path.parent.is_dir():
                for litter in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
                    _remove(litter)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive advisory lock on the journal's folder (POSIX ``flock``; a
        no-op where unsupported) while recovering, staging and committing."""
        folder = self.journal.parent
        folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # ------------------------------------------------------------------ writing
    def stage(self, name: str) -> Path:
        """Where to write target ``name`` (a folder target's staging folder is created,
        with the ownership marker)."""
        if name in self.files:
            path = self.files[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            return path.with_name(f".{path.name}.{self.run}{TMP_SUFFIX}")
        path = self.folders[name]
        staged = path.with_name(f".{path.name}.{self.run}{TMP_SUFFIX}")
        staged.mkdir(parents=True, exist_ok=True)
        (staged / MARKER).write_text("written by churnml; replaced whole by the next run\n")
        return staged

    def commit(self, order: list[str] | None = None) -> dict[str, Path]:
        """Move every staged target into place (``order``: names in commit order, default
        folders first, then files in their given order); returns name -> final path."""
        names = order or [*self.folders, *self.files]
        targets = {**self.files, **self.folders}
        moves = [(targets[n].with_name(f".{targets[n].name}.{self.run}{TMP_SUFFIX}"),
                  targets[n]) for n in names]
        moves = [(src, dst) for src, dst in moves if src.exists()]
        tmp = self.journal.with_name(f"{self.journal.name}.{self.run}{TMP_SUFFIX}")
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"moves": [[str(s), str(d)] for s, d in moves]}))
        os.replace(tmp, self.journal)  # from here on the run is committed
        self._apply(moves)
        self.journal.unlink(missing_ok=True)
        return {n: targets[n] for n in names}

    def abort(self) -> None:
        """Remove this run's staging paths (after a failure before :meth:`commit`)."""
        for path in [*self.files.values(), *self.folders.values()]:
            _remove(path.with_name(f".{path.name}.{self.run}{TMP_SUFFIX}"))

    @staticmethod
    def _apply(moves: list[tuple[Path, Path]]) -> None:
        for src, dst in moves:
            if not src.exists():
                continue  # moved before a kill
            if src.is_dir():
                old = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}{OLD_SUFFIX}")
                if dst.exists():
                    os.replace(dst, old)
                os.replace(src, dst)
                _remove(old)
            else:
                os.replace(src, dst)
