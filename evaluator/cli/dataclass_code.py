"""The methods dataclasses generate, compiled once rather than in every process.

Creating a dataclass writes the source of its `__init__`, `__repr__`, `__eq__`, `__hash__`
and, when frozen, `__setattr__` and `__delattr__`, then execs that text: parsing and compiling
the ~600 small functions of the classes a cold `necessity evaluate` creates cost it about a
fifth of its instructions (issue 10), though the text is the same in every process. As Python
keeps a module's compiled code in `__pycache__`, this keeps the code compiled from each such
text in one file beside the CLI's own bytecode, under the same trust (Python executes what is
there) and with the same switches (nothing is written under PYTHONDONTWRITEBYTECODE).

Nothing else changes: `exec` inside `dataclasses` (its only caller of the name) is given the
code object that `compile` makes from the very text, with the flags, file name and globals
exec would have used, so every class, method and error is what it would have been. The key is
the text itself; the file is used only when its header names this interpreter's bytecode
(magic number, optimization level) and its length and checksum check out; anything else is a
miss, and a text not in it is compiled as before and added for the next process.

No policy or case content can reach it: the only texts are the ones `dataclasses` writes for
classes defined in this package's source (nothing here makes a class from data:
`make_dataclass` is not used), and `exec` is only ever handed such a text or the code compiled
from it, exactly as `dataclasses` would exec it without this module.

Both supported Pythons call the name: 3.11's and 3.12's `dataclasses._create_fn` end in
`exec(txt, globals, ns)` (checked on 3.12.1: the second process read all 13 methods of a test
module's classes from the file, the classes as built without it). A Python whose dataclasses
stopped calling a global `exec` would never call the shadow: the cache would do nothing,
and change nothing. Two processes writing at once each write a temporary file of their own
and rename it (the last one stays); a folder that cannot be written leaves no file.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import dataclasses
import importlib.util
import marshal
import os
import sys
import zlib
from types import CodeType
from typing import Any

__all__ = ["install", "path"]

# Bump when the file's layout changes.
FORMAT = b"necessity-dataclass-code-1"
# Past this many texts, a write keeps only those the writing process used: edits to the
# classes leave texts nothing asks for again.
LIMIT = 2000
# The classes whose methods are kept: those of the modules of this package.
OWN = "evaluator."


def path() -> str | None:
    """Return the file's path (in this package's `__pycache__`), or None without one."""
    try:
        own = importlib.util.cache_from_source(__file__)
    except (NotImplementedError, ValueError):  # pragma: no cover - no bytecode cache
        return None
    return os.path.join(os.path.dirname(own), f"dataclass-code.{sys.implementation.cache_tag}.bin")


def _header(body: bytes) -> bytes:
    return b" ".join(
        (
            FORMAT,
            importlib.util.MAGIC_NUMBER.hex().encode(),
            str(sys.flags.optimize).encode(),
            # damage, not tampering, is what a checksum can find here: like a .pyc, the file
            # is as trusted as the folder it is in
            str(len(body)).encode(),
            str(zlib.crc32(body)).encode(),
        )
    )


def _read(file: str) -> dict[str, CodeType]:
    try:
        with open(file, "rb") as handle:
            stored = handle.read()
        header, _, body = stored.partition(b"\n")
        if header != _header(body):
            return {}  # another interpreter's, truncated or damaged
        codes = marshal.loads(body)
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if not isinstance(codes, dict) or not all(
        type(text) is str and type(code) is CodeType for text, code in codes.items()
    ):
        return {}
    return codes


class _Codes:
    """The texts dataclasses exec, with the code compiled from each."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.codes = {} if file is None else _read(file)
        self.used: set[str] = set()
        self.added = False

    def exec(self, source: Any, scope: Any = None, names: Any = None, /) -> None:
        """`exec(source, scope, names)`, a text replaced by the code compiled from it."""
        if scope is None:
            # exec without globals runs in its caller's namespace: dataclasses', not this one
            caller = sys._getframe(1)
            scope = caller.f_globals
            if names is None:
                names = caller.f_locals
        if type(source) is str:
            code = self.codes.get(source)
            if code is None:
                # as exec compiles a text: file "<string>", no future flags of this module
                code = compile(source, "<string>", "exec", dont_inherit=True)
                # only the evaluator's own classes are kept: a program that imports the CLI
                # (a test run) creates others, which would only make the file slower to read
                if str(scope.get("__name__", "")).startswith(OWN):
                    self.codes[source] = code
                    self.added = True
                    self.used.add(source)
            else:
                self.used.add(source)
            source = code
        builtins.exec(source, scope, names)

    def write(self) -> None:
        """Write the file whole (a temporary file, then a rename) if this process added to it;
        any failure leaves the file as it was."""
        if not self.added or self.file is None or sys.dont_write_bytecode:
            return
        # a copy (one C call, so atomic): a thread still creating classes at exit adds to
        # `self.codes` while this walks it
        codes = dict(self.codes)
        if len(codes) > LIMIT:
            codes = {text: code for text, code in codes.items() if text in self.used}
        temporary = f"{self.file}.{os.getpid()}.tmp"
        try:
            body = marshal.dumps(codes)
            os.makedirs(os.path.dirname(self.file), exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(_header(body) + b"\n" + body)
            os.replace(temporary, self.file)
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        self.added = False


_installed: _Codes | None = None


def install() -> None:
    """Give dataclasses the compiled code of the texts it execs (once per process)."""
    global _installed  # noqa: PLW0603  (one per process, as dataclasses is)
    if _installed is not None:
        return
    _installed = _Codes(path())
    # A module global shadows the builtin for dataclasses' own calls, and only for them.
    vars(dataclasses)["exec"] = _installed.exec
    atexit.register(_installed.write)
