"""The shortcuts of the full path (case file -> JSON line) decide what the long way decides.

Each shortcut of issue 10 has its equivalence here: reading a file with reads sized by fstat,
hashing it a piece at a time, a JSON text that plainly holds nothing over the limits not walked
value by value, and dates, levels and ranges converted once per text (the facts of a case are
the same with the caches as without them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import CASE_SCHEMA, from_schema, mutated_examples  # type: ignore[import-not-found]

from benchmarks import benchgen
from evaluator import api
from evaluator.batch import runner as batch
from evaluator.case import cases, facts
from evaluator.errors import NecessityError
from evaluator.language.policies import Library
from evaluator.read import schemas, source
from evaluator.read.resources import schemas_dir

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "cases").glob("*.json"))


# --- reading and hashing a file ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 463, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_000])
def test_a_file_reads_and_hashes_as_its_bytes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "case.json"
    data = bytes(range(256)) * (size // 256 + 1)
    path.write_bytes(data[:size])
    raw, name = source._read(path)
    assert (raw, name) == (data[:size], str(path))
    assert batch._file_sha256(path) == hashlib.sha256(data[:size]).hexdigest()


def test_a_file_longer_than_fstat_said_is_read_to_its_end(tmp_path: Path) -> None:
    # fstat sizes the first read only: a file that grew since is still read whole
    path = tmp_path / "case.json"
    path.write_bytes(b"x" * 200_000)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert source._read_descriptor(descriptor, 10) == b"x" * 200_000
    finally:
        os.close(descriptor)


def test_a_file_over_the_limit_is_refused_however_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (source.LIMITS.max_bytes + 1))
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert len(source._read_descriptor(descriptor, 0)) == source.LIMITS.max_bytes + 1
    finally:
        os.close(descriptor)
    with pytest.raises(NecessityError) as caught:
        source.load(path)
    assert caught.value.problems[0].code == "document_too_large"


def test_a_folder_or_a_missing_file_has_no_hash(tmp_path: Path) -> None:
    assert batch._file_sha256(tmp_path) is None
    assert batch._file_sha256(tmp_path / "missing.json") is None
    assert batch._file_content(tmp_path) == (None, None)
    assert batch._file_content(tmp_path / "missing.json") == (None, None)


@pytest.mark.parametrize("size", [0, 463, 64 * 1024, 64 * 1024 + 1, 300_000])
def test_an_item_keeps_the_bytes_it_hashed(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    (tmp_path / "case.json").write_bytes(data[:size])
    (item,) = batch.items([tmp_path / "case.json"])
    assert item.content == data[:size]
    assert item.sha256 == hashlib.sha256(data[:size]).hexdigest()


def test_a_file_over_the_limit_is_hashed_but_left_to_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (source.LIMITS.max_bytes + 1))
    (item,) = batch.items([path])
    assert item.content is None
    assert item.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    record = batch.review_item(item, None, Library())
    assert [p["code"] for p in record["problems"]] == ["document_too_large"]


def _without_stamp(record: dict[str, Any]) -> str:
    if "result" in record:
        record = {**record, "result": {**record["result"], "evaluated_at": None}}
    return json.dumps(record, sort_keys=True)


def test_a_case_reviewed_from_the_bytes_it_hashed_is_reviewed_as_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Example and hostile cases (every message of a bad file) and bench cases: the record made
    # from the bytes in hand is the record made by reading the file.
    hostile = Path(__file__).parent / "hostile" / "cases"
    benchgen.write_files(benchgen.generate(50, seed=13), tmp_path)
    library = Library()
    bench = Library(Path(__file__).parent.parent / "benchmarks" / "policies")
    real_read = source._read
    for folder, policy, policies in (
        (EXAMPLES[0].parent, None, library),
        (hostile, None, library),
        (tmp_path, "bench-fusion", bench),
    ):
        todo = list(batch.items(batch.sources([folder])))
        assert any(item.content for item in todo)
        cases_read: list[str] = []

        def read(path: Any, folder: Path = folder, cases_read: list[str] = cases_read) -> Any:
            if Path(path).parent == folder:
                cases_read.append(str(path))
            return real_read(path)

        with monkeypatch.context() as patch:  # the bytes in hand: the file is not read again
            patch.setattr(source, "_read", read)
            kept = [batch.review_item(item, policy, policies) for item in todo if item.content]
        again = [
            batch.review_item(dataclasses.replace(item, content=None), policy, policies)
            for item in todo
            if item.content
        ]
        assert cases_read == []
        assert list(map(_without_stamp, kept)) == list(map(_without_stamp, again))


def test_the_bundled_schema_set_is_the_one_its_folder_names() -> None:
    assert schemas.schema_set() is schemas.schema_set(schemas_dir())


# --- the limits, seen in the text ----------------------------------------------------------------

# Values near every limit: long and non-ASCII text, lone and paired surrogates, numbers around
# 1e15 (a 15-digit whole part may round up to it), exponents, deep nesting.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**17), 10**17)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([999_999_999_999_999.9, 1e15, -1e15, 99_999_999_999_999.99, 1e-7, 2.5e3])
    | st.text(st.characters(), max_size=8)
    | st.sampled_from(["\ud800", "a\udfff", "\U0001f600", "é" * 3, "2025-06-20"])
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=30,
)


def _texts(data: Any) -> Iterator[str]:
    for ascii_only in (True, False):
        try:
            yield json.dumps(data, ensure_ascii=ascii_only)
        except ValueError:
            return


def _nested(depth: int) -> Any:
    data: Any = 1
    for _ in range(depth):
        data = [data]
    return data


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_a_text_plainly_within_the_limits_holds_nothing_the_walk_refuses(data: Any) -> None:
    for text in _texts(data):
        if source._plainly_within_limits(text):
            assert source._over_limits(json.loads(text)) is None


def _parsed(text: str) -> Any:
    """What the reader made of a JSON text before its decoders were made once (and before a
    text plainly within the limits parsed its whole numbers without the limit's hook)."""
    try:
        data = json.loads(
            text,
            object_pairs_hook=source._no_duplicates,
            parse_constant=source._no_constant,
            parse_int=source._whole_number,
        )
    except source._ConstantError as error:
        return ("constant", error.token)
    except json.JSONDecodeError as error:
        return ("malformed", error.msg, error.lineno, error.colno)
    except (RecursionError, source._NotPlainJsonError):
        return ("located",)
    return repr(data)  # repr: 1 and 1.0 and True differ


def _reads(text: str) -> Any:
    try:
        document = source._json_document(text, "case.json")
    except NecessityError as error:
        return [problem.as_dict() for problem in error.problems]
    return repr(document.data)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_a_text_parses_to_what_json_loads_with_the_hooks_made(data: Any) -> None:
    for text in [*_texts(data), "\ufeff" + json.dumps(data, ensure_ascii=True)]:
        before = _parsed(text)
        if isinstance(before, str) and data is not None:  # parsed: the same values, typed
            reads = _reads(text)
            assert reads == before or isinstance(reads, list)  # or refused over a limit
            assert isinstance(reads, list) == (source._over_limits(json.loads(text)) is not None)
        elif before[0] == "malformed":  # the BOM: json.loads's own message, located
            (problem,) = _reads(text)
            assert problem["message"] == f"malformed json: {source._lower_first(before[1])}"


def test_whole_numbers_parse_as_int_with_or_without_the_hook() -> None:
    text = '{"a": 12, "b": -9999999999999, "c": 1.0, "d": [0, -0, 2.5]}'
    assert source._plainly_within_limits(text)
    assert repr(source._json_document(text, "x.json").data) == _parsed(text)
    long = '{"a": 1' + "0" * 5000 + "}"  # int() refuses past 4,300 digits
    assert not source._plainly_within_limits(long)
    (problem,) = _reads(long)
    assert problem["code"] == "number_too_large"


@pytest.mark.parametrize(
    "data",
    [
        {"a": 999_999_999_999_999.99},
        {"a": 10**15},
        {"a": -(10**16)},
        {"a": 1e300},
        {"a": "\ud800"},
        {"\udc00": 1},
        {"a": "x" * (source.LIMITS.max_string + 1)},
        list(range(source.LIMITS.max_values + 1)),
        _nested(source.LIMITS.max_depth + 1),
    ],
    ids=["rounds-to-1e15", "1e15", "-1e16", "exponent", "lone", "lone-key", "long", "many", "deep"],
)
def test_a_text_over_a_limit_is_never_plainly_within_them(data: Any) -> None:
    for text in _texts(data):
        assert source._over_limits(json.loads(text)) is not None
        assert not source._plainly_within_limits(text)


# --- facts: cached conversions ---------------------------------------------------------------


_CACHED = (
    "_dated_text",
    "parsed_date",
    "_parsed_instant",
    "_level_fields",
    "_range_segments",
    "_schema_path",
)


def _uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CACHED:
        monkeypatch.setattr(facts, name, getattr(facts, name).__wrapped__)
    monkeypatch.setattr(cases, "parsed_date", vars(cases)["parsed_date"].__wrapped__)


def test_every_conversion_cache_is_undone_by_uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparisons below mean something only if every cache of facts.py is bypassed.
    cached = {
        name
        for name, value in vars(facts).items()
        if callable(value) and hasattr(value, "cache_info") and name.startswith(("_", "parsed"))
    }
    # per schema (or per mapping spec and schema path), not per case value
    uncached_by_name = {"_walks", "_timed", "_pairs", "_plan", "_mapping"}
    assert cached - uncached_by_name == set(_CACHED)
    _uncached(monkeypatch)
    assert not any(hasattr(getattr(facts, name), "cache_info") for name in _CACHED)
    assert not hasattr(vars(cases)["parsed_date"], "cache_info")


def _outcome(text: str) -> Any:
    try:
        case = cases.case_from_document(source.loads_json(text, "case.json"))
    except NecessityError as error:
        return [problem.as_dict() for problem in error.problems]
    return [(f.type, f.id, dict(f.fields)) for f in case.facts], case.conflicts


def _documents() -> list[str]:
    generated = [json.dumps(d) for d in benchgen.generate(200, seed=11)]
    return [path.read_text(encoding="utf-8") for path in EXAMPLES] + generated


def test_cached_conversions_give_the_facts_of_fresh_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _documents()
    warm = [_outcome(text) for text in texts]
    again = [_outcome(text) for text in texts]  # from the caches: nothing shared was changed
    with monkeypatch.context() as patch:
        _uncached(patch)
        fresh = [_outcome(text) for text in texts]
    assert repr(warm) == repr(fresh)
    assert repr(again) == repr(fresh)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(from_schema(CASE_SCHEMA), mutated_examples()))
def test_cached_conversions_agree_on_generated_cases(document: Any) -> None:
    text = json.dumps(document)
    cached = _outcome(text)
    with pytest.MonkeyPatch.context() as patch:
        _uncached(patch)
        fresh = _outcome(text)
    assert repr(cached) == repr(fresh)


# --- choosing the policy -------------------------------------------------------------------------


def test_a_named_policy_is_chosen_once_per_date_as_select_policy_chooses_it() -> None:
    library = Library(Path(__file__).parent.parent / "policies")
    founding = cases.load_case(EXAMPLES[0])
    for case in (founding, cases.load_case(EXAMPLES[-1])):
        for name in library.ids():
            try:
                expected = api.select_policy(case, name, library)
            except NecessityError as error:
                with pytest.raises(type(error)):
                    batch._selected(case, name, library)
                continue
            assert batch._selected(case, name, library) is expected
            assert batch._selected(case, name, library) is expected  # from the memo
    with pytest.raises(NecessityError, match="unknown policy"):
        batch._selected(founding, "no-such-policy", library)


# --- finding the case files of a folder ------------------------------------------------------


def _found_by_rglob(
    paths: list[Path], suffixes: tuple[str, ...], skip: str | None = None
) -> list[Path]:
    """What source.find_files found before issue 10 walked folders with os.scandir."""

    def is_dir(path: Path) -> bool:
        try:
            return path.is_dir()
        except OSError:
            return False

    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        out.extend(
            sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in suffixes
                and not is_dir(p)
                and (skip is None or skip not in p.relative_to(path).parts[:-1])
            )
        )
    return out


def test_a_folder_s_files_are_found_as_rglob_found_them(tmp_path: Path) -> None:
    top = tmp_path / "cases"
    for name in (
        "a.json",
        "a-b.json",  # sorts after a/b.json part by part, before it as text
        "a/b.json",
        "a/c.YAML",
        "a/tests/d.yml",
        "a/tests/e/f.json",
        "tests/g.json",
        ".hidden.json",
        ".json",  # no suffix, as Path.suffix reads it
        "h.json.",
        "i.txt",
        "j.jsonl",
        "deep/er/est/k.yaml",
    ):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text("{}")
    (top / "folder.json").mkdir()  # a folder is never a case file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.json").write_text("{}")
    (top / "linked").symlink_to(elsewhere)  # not entered
    (top / "linked.json").symlink_to(elsewhere)  # a link to a folder: no case file
    (top / "file-link.json").symlink_to(top / "a.json")
    (top / "broken.json").symlink_to(tmp_path / "missing")  # found: `load` says what it is
    (top / "loop.json").symlink_to(top / "loop.json")  # found, likewise
    for suffixes in (source.DATA_SUFFIXES, batch.CASE_SUFFIXES, (".json",)):
        for skip in (None, "tests"):
            paths = [top, top / "a.json", tmp_path / "nowhere.json"]
            found = list(source.find_files(paths, suffixes, skip))
            assert found == _found_by_rglob(paths, suffixes, skip)
            assert [str(p) for p in found] == [
                str(p) for p in _found_by_rglob(paths, suffixes, skip)
            ]
    assert top / "broken.json" in found
    assert top / "loop.json" in found
    assert not any("elsewhere" in str(p) or "linked" in str(p) for p in found)


def test_the_bundled_folders_are_found_as_rglob_found_them() -> None:
    root = Path(__file__).parent.parent
    for folder in ("policies", "examples", "tests"):
        assert list(source.find_files([root / folder])) == _found_by_rglob(
            [root / folder], source.DATA_SUFFIXES
        )


# --- format verdicts, kept per text ----------------------------------------------------------

_DATE_TEXTS = st.one_of(
    st.sampled_from(
        [
            "2025-06-20",
            "2025-02-30",
            "0025-06-20",
            "2200-01-01",
            "1900-01-01",
            "2025-06",
            "6/2025",
            "13/2025",
            "2025-13",
            "20250620",
            "2025-6-1",
            "",
            " 2025-06-20",
            "2025-06-20\n",
        ]
    ),
    st.text(st.sampled_from("0123456789-/ "), max_size=12),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(_DATE_TEXTS)
def test_a_kept_format_verdict_is_the_check_s_own(text: str) -> None:
    for name, check in (("date", schemas._is_date), ("partial-date", schemas._is_partial_date)):
        try:
            expected = check(text)
        except ValueError:
            expected = False
        verdict = schemas._COMPILED_FORMATS[name]
        assert verdict(text) is expected
        assert verdict(text) is expected  # kept
    kept: Any = schemas._COMPILED_FORMATS["date"]
    assert kept.cache_info().maxsize == schemas._VERDICTS_KEPT
