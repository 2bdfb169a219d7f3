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

An output set owns exactly its files: a folder is replaced only when churnml's marker file
(:data:`MARKER`) in it says churnml wrote it (an absent or empty folder is taken too), and a
journal found at start-up is applied only when every move it names is a staged path of this
set's targets (``.<target>.<run>.tmp`` beside the target); any other journal is ignored with an
:class:`~churnml.errors.OutputWarning`, so a journal planted in an output folder cannot move or
delete anything outside the output set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

from churnml.errors import OutputPathError, OutputWarning

JOURNAL = ".churnml-commit.json"
MARKER = ".churnml-output"  # inside a folder churnml wrote (and may replace whole)
TMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old.tmp"
MARKER_TEXT = "written by churnml; replaced whole by the next run\n"
RUN_ID = re.compile(r"[0-9a-f]{12}")


def _probe(folder: Path) -> None:
    """Create and remove a file in the folder, or in its nearest existing parent when the
    folder does not exist yet: proof that writing works, without creating any folder before
    the run has checked its input."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".churnml-probe.", suffix=TMP_SUFFIX, dir=existing)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputPathError(f"cannot write to {folder}: {exc.strerror or exc}") from exc


def owned(folder: str | Path) -> bool:
    """A folder churnml may replace whole: absent, empty, or holding churnml's marker file
    (:data:`MARKER`, written into every folder churnml replaces whole). A folder of files
    without the marker — even CSV files only — is the user's."""
    folder = Path(folder)
    if not folder.exists():
        return True
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / MARKER).is_file() or not any(folder.iterdir())


def mark(folder: str | Path) -> Path:
    """Write churnml's ownership marker into ``folder`` (see :func:`owned`)."""
    path = Path(folder) / MARKER
    path.write_text(MARKER_TEXT)
    return path


def check_replaceable(folder: str | Path, what: str = "output folder") -> None:
    """Raise :class:`OutputPathError` unless churnml may replace ``folder`` whole."""
    folder = Path(folder)
    if not owned(folder):
        foreign = sorted(p.name for p in folder.iterdir())[:5] if folder.is_dir() else []
        raise OutputPathError(
            f"{folder} ({what}) holds files churnml did not write"
            + (f" (e.g. {', '.join(foreign)})" if foreign else "")
            + f"; churnml replaces only folders holding its marker {MARKER}, so give a new "
            "or empty folder")


@contextlib.contextmanager
def locked(*folders: str | Path) -> Iterator[None]:
    """Exclusive advisory locks (POSIX ``flock``) on ``folders`` (created if absent), taken
    in one order (sorted absolute paths, each once) so two runs never wait on each other
    crosswise; released at the end of the block. A no-op where ``flock`` is unsupported."""
    keys = sorted({_key(Path(f)) for f in folders})
    with contextlib.ExitStack() as stack:
        for key in keys:
            Path(key).mkdir(parents=True, exist_ok=True)
            if fcntl is None:
                continue
            fd = os.open(key, os.O_RDONLY)
            stack.callback(os.close, fd)  # closing releases the lock
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def _key(path: Path) -> str:
    """A path compared by its absolute, normalised form (``..`` resolved, links kept)."""
    return os.path.normpath(os.path.abspath(path))


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
    replaces_files : names of folder targets that may take the place of a file at their
        path (a Spark Parquet folder where a one-file run wrote the same output)
    """

    def __init__(self, files: Mapping[str, str | Path],
                 folders: Mapping[str, str | Path] | None = None,
                 journal_dir: str | Path | None = None,
                 replaces_files: Iterable[str] = ()) -> None:
        self.files = {k: Path(v) for k, v in files.items()}
        self.folders = {k: Path(v) for k, v in (folders or {}).items()}
        self.replaces_files = frozenset(replaces_files)
        first = next(iter([*self.files.values(), *self.folders.values()]))
        self.journal = Path(journal_dir or first.parent) / JOURNAL
        self.run = uuid.uuid4().hex[:12]

    # ------------------------------------------------------------------ before the work
    def check(self) -> None:
        """Every target can be written (folders created, a probe file written and
        removed); raises :class:`OutputPathError` naming the first that cannot."""
        for path in self.files.values():
            if path.is_dir():
                raise OutputPathError(f"{path} is a folder; give a file name (the folder "
                                      "and its files are left as they are)")
            _probe(path.parent)
        for name, path in self.folders.items():
            if path.is_file() and name in self.replaces_files:
                _probe(path.parent)
                continue
            if path.exists() and not path.is_dir():
                raise OutputPathError(f"{path} is a file; give a folder ({name}) there")
            check_replaceable(path)
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
            moves = self._journal_moves()
            if moves is not None:
                self._apply(moves)
                self.journal.unlink(missing_ok=True)
        for path in [*self.files.values(), *self.folders.values()]:
            if path.parent.is_dir():
                for litter in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
                    _remove(litter)

    def _staged_name(self, target: Path, run: str) -> Path:
        return target.with_name(f".{target.name}.{run}{TMP_SUFFIX}")

    def _journal_moves(self) -> list[tuple[Path, Path]] | None:
        """The moves of the journal when every one belongs to this output set (a target of
        the set, from its staged path of one run); else None, with an :class:`OutputWarning`
        naming the journal (it is left in place, and overwritten by this run's commit)."""
        problem = None
        try:
            moves = json.loads(self.journal.read_text(encoding="utf-8"))["moves"]
            pairs = [(Path(src), Path(dst)) for src, dst in moves]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem, pairs = f"unreadable ({type(exc).__name__})", []
        targets = {_key(p) for p in [*self.files.values(), *self.folders.values()]}
        runs = set()
        for src, dst in pairs:
            run = src.name.removeprefix(f".{dst.name}.").removesuffix(TMP_SUFFIX)
            if _key(dst) not in targets:
                problem = f"names {dst}, which is not an output of this run"
            elif _key(src) != _key(self._staged_name(dst, run)) or not RUN_ID.fullmatch(run):
                problem = f"moves {src}, which is not a staged output of this run"
            runs.add(run)
            if problem:
                break
        if problem is None and len(runs) > 1:
            problem = "mixes the staged files of several runs"
        if problem is None:
            return pairs
        warnings.warn(f"{self.journal}: ignored: {problem} (churnml moves only its own staged "
                      "outputs); remove the file", OutputWarning, stacklevel=3)
        return None

    def add_folder(self, name: str, path: str | Path) -> Path:
        """Add a folder target once the run knows it (e.g. the score history's partition of
        the cutoff), checked like the others; returns its path."""
        path = Path(path)
        self.folders[name] = path
        if path.exists() and not path.is_dir():
            raise OutputPathError(f"{path} is a file; churnml writes a folder there")
        check_replaceable(path)
        _probe(path.parent)
        return path

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold exclusive advisory locks on the journal's folder and every target's folder
        (POSIX ``flock``; a no-op where unsupported) while recovering, staging and
        committing."""
        parents = [p.parent for p in [*self.files.values(), *self.folders.values()]]
        return locked(self.journal.parent, *parents)

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
        mark(staged)
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
                if not dst.is_file():  # a file there was checked (replaces_files)
                    check_replaceable(dst)  # anything put there since the check stays
                old = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}{OLD_SUFFIX}")
                if dst.exists():
                    os.replace(dst, old)
                os.replace(src, dst)
                _remove(old)
            else:
                os.replace(src, dst)
