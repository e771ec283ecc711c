"""The compiled methods of dataclasses kept across processes (evaluator/cli/dataclass_code.py)
make every class exactly what compiling its text anew makes, and a file that does not check
out is never used."""

from __future__ import annotations

import builtins
import dataclasses
import enum
import importlib.util
import json
import marshal
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any, ClassVar

import pytest

from evaluator.cli import dataclass_code

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"


class Kind(enum.Enum):
    A = "a"


@pytest.fixture(autouse=True)
def _any_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # this module's classes stand for the evaluator's, which are the only ones kept
    monkeypatch.setattr(dataclass_code, "OWN", "")
    # files are written as bytecode is, whatever the shell running the tests says
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def _classes() -> list[type]:
    """A spread of the options dataclasses writes different code for."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Frozen:
        name: str
        count: int = 0
        kind: Kind = Kind.A
        tags: tuple[str, ...] = ()

    @dataclasses.dataclass(order=True, unsafe_hash=True)
    class Ordered:
        x: float
        y: list[int] = dataclasses.field(default_factory=list, compare=False)
        shared: ClassVar[int] = 3

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class KeywordOnly:
        first: str
        second: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @dataclasses.dataclass(eq=False)
    class Plain:
        value: object = None

        def __post_init__(self) -> None:
            self.value = self.value or "set"

    return [Frozen, Ordered, KeywordOnly, Plain]


_METHODS = (
    "__init__",
    "__repr__",
    "__eq__",
    "__hash__",
    "__setattr__",
    "__delattr__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
)


def _code(code: CodeType) -> tuple[Any, ...]:
    consts = tuple(_code(c) if isinstance(c, CodeType) else c for c in code.co_consts)
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_filename,
        code.co_name,
        code.co_qualname,
        code.co_flags,
        code.co_firstlineno,
        code.co_argcount,
        code.co_kwonlyargcount,
    )


def _shape(cls: type) -> dict[str, Any]:
    """What tells two builds of a class apart: its generated methods' code, annotations and
    defaults, and how its instances behave."""
    found: dict[str, Any] = {}
    for name in _METHODS:
        method = cls.__dict__.get(name)
        if method is None or not hasattr(method, "__code__"):
            found[name] = method
            continue
        found[name] = (
            _code(method.__code__),
            method.__annotations__,
            method.__defaults__,
            method.__kwdefaults__,
            method.__qualname__,
            method.__module__,
        )
    return found


def _build(run: Callable[..., None] | None) -> list[type]:
    with pytest.MonkeyPatch.context() as patch:
        if run is None:  # the interpreter's own exec
            patch.delitem(vars(dataclasses), "exec", raising=False)
        else:
            patch.setitem(vars(dataclasses), "exec", run)
        return _classes()


def _behaviour(classes: list[type]) -> list[str]:
    frozen, ordered, keyword, plain = classes
    seen = [repr(frozen("a", 2)), repr(ordered(1.0)), repr(keyword(first="f")), repr(plain())]
    seen.append(str(frozen("a") == frozen("a")))
    seen.append(str(hash(frozen("a")) == hash(frozen("a"))))
    seen.append(str(ordered(1.0) < ordered(2.0)))
    with pytest.raises(dataclasses.FrozenInstanceError) as raised:
        frozen("a").name = "b"
    seen.append(str(raised.value))
    with pytest.raises(TypeError) as wrong:
        keyword("positional")
    seen.append(str(wrong.value))
    return seen


def test_a_class_built_from_the_file_is_the_class_compiled_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _build(None)
    file = str(tmp_path / "code.bin")
    first = dataclass_code._Codes(file)
    missed = _build(first.exec)
    assert first.added
    first.write()
    second = dataclass_code._Codes(file)
    assert set(second.codes) == set(first.codes)
    calls: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> CodeType:
        calls.append(args[0])
        code: CodeType = builtins.compile(*args, **kwargs)
        return code

    monkeypatch.setattr(dataclass_code, "compile", counting, raising=False)
    hit = _build(second.exec)
    assert calls == []  # every method came from the file
    assert not second.added
    for built in (missed, hit):
        assert [_shape(c) for c in built] == [_shape(c) for c in plain]
        assert _behaviour(built) == _behaviour(plain)
    # the generated annotations are the fields' types (here strings, as this module wrote
    # them), not the names of the locals holding them, as the `from __future__ import
    # annotations` of the module that compiles would have made them
    assert vars(hit[0])["__init__"].__annotations__ == {
        "name": "str",
        "count": "int",
        "kind": "Kind",
        "tags": "tuple[str, ...]",
        "return": None,
    }


def _written(tmp_path: Path) -> str:
    file = str(tmp_path / "code.bin")
    codes = dataclass_code._Codes(file)
    _build(codes.exec)
    codes.write()
    assert dataclass_code._Codes(file).codes
    return file


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(_flip, id="a-byte-changed"),
        pytest.param(lambda _data: b"", id="empty"),
        pytest.param(
            lambda data: data.replace(importlib.util.MAGIC_NUMBER.hex().encode(), b"ffff0d0a", 1),
            id="another-python",
        ),
        pytest.param(lambda data: data.replace(b"-1 ", b"-2 ", 1), id="another-format"),
    ],
)
def test_a_file_that_does_not_check_out_is_never_used(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    file = Path(_written(tmp_path))
    file.write_bytes(damage(file.read_bytes()))
    codes = dataclass_code._Codes(str(file))
    assert codes.codes == {}
    plain = _build(None)
    built = _build(codes.exec)
    assert [_shape(c) for c in built] == [_shape(c) for c in plain]
    codes.write()  # and the next process has a good one again
    assert set(dataclass_code._Codes(str(file)).codes) == set(codes.codes)


def test_a_file_of_other_data_is_never_used(tmp_path: Path) -> None:
    file = tmp_path / "code.bin"
    body = marshal.dumps({"def f(): pass": "not code"})
    file.write_bytes(dataclass_code._header(body) + b"\n" + body)
    assert dataclass_code._Codes(str(file)).codes == {}


def test_nothing_is_written_without_bytecode_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "code.bin"
    codes = dataclass_code._Codes(str(file))
    _build(codes.exec)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    codes.write()
    assert not file.exists()


def test_a_folder_that_cannot_be_written_leaves_no_file(tmp_path: Path) -> None:
    file = tmp_path / "missing" / "deeper" / "code.bin"
    (tmp_path / "missing").write_text("a file where the folder should be", encoding="utf-8")
    codes = dataclass_code._Codes(str(file))
    _build(codes.exec)
    codes.write()  # no exception
    assert sorted(p.name for p in tmp_path.iterdir()) == ["missing"]


def test_past_the_limit_a_write_keeps_what_the_process_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = str(tmp_path / "code.bin")
    codes = dataclass_code._Codes(file)
    stale = {
        f"def f{i}(): pass": compile(f"def f{i}(): pass", "<string>", "exec") for i in range(5)
    }
    codes.codes.update(stale)
    _build(codes.exec)
    monkeypatch.setattr(dataclass_code, "LIMIT", len(codes.codes) - 1)
    codes.write()
    kept = dataclass_code._Codes(file).codes
    assert set(kept) == codes.used
    assert not set(stale) & set(kept)


def test_a_text_added_by_another_thread_while_the_file_is_written_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write runs at exit, when a daemon thread may still create a class: a text added
    while the kept texts are chosen must not raise (an atexit traceback), and the file is
    written from what was there when the write began."""
    file = str(tmp_path / "code.bin")
    codes = dataclass_code._Codes(file)
    _build(codes.exec)
    late = "def late(): pass"

    class Racing(set[str]):
        def __contains__(self, text: object) -> bool:
            # another thread's class, created while the write walks the texts
            codes.codes.setdefault(late, compile(late, "<string>", "exec"))
            return super().__contains__(text)

    codes.used = Racing(codes.used)
    monkeypatch.setattr(dataclass_code, "LIMIT", 0)
    codes.write()
    kept = dataclass_code._Codes(file).codes
    assert set(kept) == set(codes.used)


_SCRIPT = """
import json, sys
from evaluator.cli import dataclass_code
from evaluator.cli.main import main
try:
    main(["evaluate", sys.argv[1]], prog_name="necessity")
except SystemExit:
    pass
codes = dataclass_code._installed
print(json.dumps([codes.file, codes.added, len(codes.used)]), file=sys.stderr)
"""


def test_only_the_evaluators_classes_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataclass_code, "OWN", "evaluator.")
    codes = dataclass_code._Codes(str(tmp_path / "code.bin"))
    built = _build(codes.exec)
    assert (codes.codes, codes.added, codes.used) == ({}, False, set())
    plain = _build(None)
    assert [_shape(c) for c in built] == [_shape(c) for c in plain]


def test_a_second_evaluate_compiles_no_dataclass_method(tmp_path: Path) -> None:
    """The CLI installs the cache before its first class; a process after the first finds
    every method it needs in the file."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NECESSITY_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")  # not the checkout's file
    seen = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(FOUNDING)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        seen.append(json.loads(done.stderr.strip().splitlines()[-1]))
    (file, added, used), (again, added_again, used_again) = seen
    assert file == again
    assert file.startswith(str(tmp_path / "pycache"))
    assert added  # the first compiled them all (and more: it also fills the other caches)
    assert not added_again
    assert 100 < used_again <= used


def test_no_class_is_made_from_data() -> None:
    """The shadowed `exec` only ever sees what `dataclasses` writes for classes in the package's
    own source: nothing in evaluator/ makes a dataclass at run time from a name or field list
    that policy or case content could supply."""
    package = Path(__file__).parent.parent / "evaluator"
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "make_dataclass(" not in text, path
