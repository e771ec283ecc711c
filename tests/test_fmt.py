"""Tests for evaluator/authoring/fmt.py and `necessity fmt`."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from evaluator import api
from evaluator.authoring import fmt
from evaluator.cli.main import main
from evaluator.decide.decision import Decision
from evaluator.errors import SourceError
from evaluator.language.policies import Library, load_policy
from evaluator.read import source

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "policy.schema.json").read_text(encoding="utf-8"))
SHIPPED = sorted(Library(ROOT / "policies").paths())
CASES = sorted((ROOT / "examples" / "cases").glob("*.json"))

# Everything fmt changes at once: the modeline not first, single quotes, keys out of order,
# four-space indentation, a comment at the wrong indent, a merge key after the key it sits
# beside, an unquoted date, an empty value, a flow sequence wider than the line, unknown keys.
# A comment at the end of a line keeps its column.
MESSY = """\
# Authors' note at the top.
# yaml-language-server: $schema=../../schemas/policy.schema.json
version: '2025.1'   # quoted, or it is a float
id: demo
status: active
title: 'Demo'
effective: {until: 2025-12-31, from: "2025-01-01"}
procedures:
-   cpt: ['22533']
    procedure: lumbar_fusion
references:
-   citation: A citation.
    id: 1
sections:
-   title: S
    id: s
    clauses:
            # the first clause
    -   title: T
        id: LF-X
        recommendation: Do it.
        cites: [1]
        requires: &cobb
            field: cobb
            fact: alignment   # the fact first in canonical order
            at_least: {unit: deg, value: 30}
    -   id: LF-Y
        title: Y
        requires: {field: sva, <<: *cobb}
        cites: [1]
        recommendation: "Plain: no"
        documentation: [{DOCUMENT}]
        zzz_unknown: ~
        aaa_unknown: 2
"""
# one document, so that the flow sequence holding it passes the width
DOCUMENT = "Standing full-length spine radiographs with the Cobb angle and the SVA measured"
MESSY = MESSY.replace("{DOCUMENT}", DOCUMENT)

EXPECTED = """\
# yaml-language-server: $schema=../../schemas/policy.schema.json
# Authors' note at the top.
id: demo
version: "2025.1"   # quoted, or it is a float
title: Demo
status: active
effective: {from: "2025-01-01", until: "2025-12-31"}
procedures:
  - procedure: lumbar_fusion
    cpt: ["22533"]
references:
  - id: 1
    citation: A citation.
sections:
  - id: s
    title: S
    clauses:
      # the first clause
      - id: LF-X
        title: T
        requires: &cobb
          fact: alignment     # the fact first in canonical order
          field: cobb
          at_least: {value: 30, unit: deg}
        cites: [1]
        recommendation: Do it.
      - id: LF-Y
        title: Y
        requires: {<<: *cobb, field: sva}
        cites: [1]
        recommendation: "Plain: no"
        documentation:
          - {DOCUMENT}
        zzz_unknown: null
        aaa_unknown: 2
""".replace("{DOCUMENT}", DOCUMENT)


def run(*args: object) -> Any:
    return CliRunner().invoke(main, ["fmt", *(str(a) for a in args)], prog_name="necessity")


def shuffled(text: str, rng: random.Random, indent: int = 4) -> str:
    """Return `text` with the keys of every mapping in a random order, indented by `indent`."""
    tree = source.loads(text, "<shuffled>").tree
    seen: set[int] = set()

    def visit(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, CommentedMap):
            keys = [k for k, _ in node.non_merged_items()]
            rng.shuffle(keys)
            for key in keys:
                node.move_to_end(key)
            for _, value in node.non_merged_items():
                visit(value)
        elif isinstance(node, CommentedSeq):
            for item in node:
                visit(item)

    visit(tree)
    dumper = YAML(typ="rt")
    dumper.indent(mapping=indent, sequence=indent, offset=indent - 2)
    dumper.width = 4096
    out = io.StringIO()
    dumper.dump(tree, out)
    messy = _comments_before_their_lines(out.getvalue())
    # A shuffle that says something else would test nothing.
    assert source.loads(messy, "<shuffled>").data == source.loads(text, "<text>").data
    return messy


def _comments_before_their_lines(text: str) -> str:
    """Return `text` with each full-line comment indented like the line after it.

    ruamel writes a comment at the column it was read at. Once the keys around it move and
    the indent changes, that column can lie inside a folded scalar now written before it,
    which then reads the comment as text of its own (a policy's `description: >-` took in the
    comment before its rule's `when`: stop 24, seed 1544)."""
    lines = text.splitlines(keepends=True)
    column = 0
    for index in reversed(range(len(lines))):
        body = lines[index].lstrip(" ")
        if body.startswith("#"):
            lines[index] = " " * column + body
        elif body.strip():
            column = len(lines[index]) - len(body)
    return "".join(lines)


def order_of(keys: list[str], schema: dict[str, Any]) -> list[str]:
    known = [k for k in schema["properties"] if k in keys]
    return known + [k for k in keys if k not in known]


def assert_canonical_order(data: Any, raw: Any) -> None:
    """Check, with the schema read here, the order of the keys fmt must sort."""
    defs = SCHEMA["$defs"]
    assert list(raw) == order_of(list(data), SCHEMA)
    for reference in raw["references"]:
        assert list(reference) == order_of(list(reference), defs["reference"])
    for rule in raw.get("rules", []):
        assert list(rule) == order_of(list(rule), defs["rule"])
    for section in raw["sections"]:
        assert list(section) == order_of(list(section), defs["section"])
        for clause in section["clauses"]:
            assert list(clause) == order_of(list(clause), defs["clause"])


# --- format_text ---------------------------------------------------------------------------------


def test_messy_text_is_formatted_canonically() -> None:
    assert fmt.format_text(MESSY) == EXPECTED


def test_formatting_keeps_the_data() -> None:
    assert source.loads(fmt.format_text(MESSY), "a").data == source.loads(MESSY, "b").data


@pytest.mark.parametrize("text", [MESSY, EXPECTED], ids=["messy", "formatted"])
def test_format_is_idempotent(text: str) -> None:
    once = fmt.format_text(text)
    assert fmt.format_text(once) == once


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}@{p.stem}" for p in SHIPPED])
def test_every_shipped_policy_is_formatted(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert fmt.format_text(text) == text, f"run `necessity fmt {path.relative_to(ROOT)}`"


def test_comments_are_kept() -> None:
    text = (ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml").read_text(encoding="utf-8")
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert comments, "the shipped policy should have comments to keep"
    formatted = fmt.format_text(shuffled(text, random.Random(7)))
    kept = [line.strip() for line in formatted.splitlines() if line.strip().startswith("#")]
    assert sorted(kept) == sorted(comments)


def test_modeline_stays_first() -> None:
    assert fmt.format_text(MESSY).startswith("# yaml-language-server: $schema=")


def test_version_stays_a_string() -> None:
    data = source.loads(fmt.format_text("id: x\nversion: '2025.10'\n"), "x").data
    assert data["version"] == "2025.10"


def test_a_hash_inside_a_block_scalar_is_not_a_comment() -> None:
    text = "id: x\ndescription: |\n  # heading, not a comment\n  body\ntitle: t\n"
    assert "  # heading, not a comment\n" in fmt.format_text(text)


def test_a_comment_closing_a_block_keeps_its_indent() -> None:
    text = "effective:\n  from: '2025-01-01'\n  # ends the block\n\nstatus: active\n"
    assert "  # ends the block\n\n" in fmt.format_text(text)


def test_a_wide_flow_mapping_becomes_a_block() -> None:
    wide = "{" + ", ".join(f"field_{i}: value_{i}" for i in range(12)) + "}"
    formatted = fmt.format_text(f"settings:\n  words: {wide}\n")
    assert max(len(line) for line in formatted.splitlines()) <= fmt.WIDTH
    assert "    field_0: value_0\n" in formatted


def test_malformed_text_raises_a_located_source_error() -> None:
    with pytest.raises(SourceError) as raised:
        fmt.format_text("id: [unclosed\n", "bad.yaml")
    assert raised.value.code == "malformed_yaml"
    assert raised.value.location.file == "bad.yaml"


def test_key_order_puts_unknown_keys_last_in_their_order() -> None:
    assert fmt.key_order(["zz", "title", "aa", "id"], SCHEMA) == ["id", "title", "zz", "aa"]


@pytest.mark.parametrize("seed", range(4))
def test_a_shuffle_keeps_a_comment_out_of_the_folded_scalar_moved_before_it(seed: int) -> None:
    text = (
        "rules:\n"
        "    - id: r\n"
        "      description: >-\n"
        "          Some text.\n"
        "      for_each: [{fact: fused_segment, as: seg}]\n"
        "      # why the condition reads as it does\n"
        "      when: {fact: seg, field: segment, equals: L4-L5}\n"
    )
    messy = shuffled(text, random.Random(seed), 2)
    assert source.loads(messy, "messy").data == source.loads(text, "text").data


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), indent=st.sampled_from([2, 4]))
def test_shuffled_policy_formats_to_the_same_data_in_canonical_order(
    seed: int, indent: int
) -> None:
    text = (ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml").read_text(encoding="utf-8")
    messy = shuffled(text, random.Random(seed), indent)
    formatted = fmt.format_text(messy)
    loaded = source.loads(formatted, "formatted")
    assert loaded.data == source.loads(messy, "messy").data == source.loads(text, "text").data
    assert_canonical_order(loaded.data, loaded.tree)
    assert fmt.format_text(formatted) == formatted


# --- a formatted policy evaluates identically ----------------------------------------------------


def outcomes(library: Library, ref: str) -> list[Any]:
    out = []
    for case in CASES:
        decision = api.evaluate_path(case, ref, library)
        out.append(
            (
                case.name,
                decision.determination,
                [(c.id, c.status, [e.condition for e in c.evidence]) for c in decision.clauses],
                _alternative(decision),
            )
        )
    return out


def _alternative(decision: Decision) -> Any:
    # The alternative's own decision names the policy file's hash, which formatting changes.
    alt = decision.alternative
    if alt is None:
        return None
    own = alt.decision.determination if alt.decision else None
    return (alt.summary, alt.lines, own)


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}@{p.stem}" for p in SHIPPED])
def test_formatted_policy_evaluates_identically(path: Path, tmp_path: Path) -> None:
    # the shipped file is already formatted, so start from a shuffled, re-indented copy
    messy = shuffled(path.read_text(encoding="utf-8"), random.Random(2025))
    before, after = tmp_path / "before" / "policies", tmp_path / "after" / "policies"
    for root, text in ((before, messy), (after, fmt.format_text(messy))):
        # the other shipped policies too: a policy may refer to another's determination
        for other in SHIPPED:
            (root / other.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(other, root / other.parent.name / other.name)
        (root / path.parent.name / path.name).write_text(text, encoding="utf-8")
    ref = f"{path.parent.name}@{path.stem}"
    one, two = (load_policy(root / path.parent.name / path.name) for root in (before, after))
    # A value set records the file it was declared in, which differs between the two copies.
    one, two = (
        dataclasses.replace(
            p,
            sha256="",
            value_sets={n: dataclasses.replace(v, origin="") for n, v in p.value_sets.items()},
        )
        for p in (one, two)
    )
    assert one == two
    assert outcomes(Library(before), ref) == outcomes(Library(after), ref)


# --- necessity fmt -------------------------------------------------------------------------------


@pytest.fixture
def messy_file(tmp_path: Path) -> Path:
    path = tmp_path / "messy.yaml"
    path.write_text(MESSY, encoding="utf-8")
    return path


def test_check_names_a_file_that_would_change_and_exits_1(messy_file: Path) -> None:
    result = run("--check", messy_file)
    assert result.exit_code == 1, result.output
    assert str(messy_file) in result.stdout
    assert messy_file.read_text(encoding="utf-8") == MESSY


def test_fmt_rewrites_then_check_passes(messy_file: Path) -> None:
    result = run(messy_file)
    assert result.exit_code == 0, result.output
    assert str(messy_file) in result.stdout
    assert messy_file.read_text(encoding="utf-8") == EXPECTED
    again = run("--check", messy_file)
    assert again.exit_code == 0, again.output
    assert again.stdout == ""


def test_check_of_the_bundled_policies_by_default() -> None:
    result = run("--check")
    assert result.exit_code == 0, result.output


def test_folders_are_searched_and_tests_folders_skipped(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "policies" / "lumbar-fusion", tmp_path / "lumbar-fusion")
    suite = tmp_path / "lumbar-fusion" / "tests" / "messy.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(MESSY, encoding="utf-8")
    result = run("--check", tmp_path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("broken.yaml", "id: [unclosed\n", "malformed yaml"),
        ("missing.yaml", None, "no such file"),
        ("case.json", "{}", "YAML files only"),
    ],
    ids=["malformed", "missing", "not-yaml"],
)
def test_unreadable_file_exits_2_and_the_others_are_still_checked(
    tmp_path: Path, messy_file: Path, name: str, content: str | None, code: str
) -> None:
    bad = tmp_path / name
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    result = run("--check", bad, messy_file)
    assert result.exit_code == 2, result.output
    assert code in result.stderr
    assert str(messy_file) in result.stdout


# --- fmt never changes what a file says ---------------------------------------------------------

# Found by the shuffled-policy test (seed 1464): a comment group after a folded scalar at the end
# of a mapping took the scalar's indent, and so read back as part of the scalar's text.
COMMENT_AFTER_BLOCK = """\
settings:
  one:
    value: 10
    description: >-
      A folded text
      on two lines.
  # A comment about the keys that follow,
  # on two lines.

rules: []
"""


def test_a_comment_after_a_block_scalar_stays_a_comment() -> None:
    formatted = fmt.format_text(COMMENT_AFTER_BLOCK)
    data = source.loads(formatted, "formatted").data
    assert data == source.loads(COMMENT_AFTER_BLOCK, "text").data
    assert data["settings"]["one"]["description"] == "A folded text on two lines."
    assert "# A comment about the keys that follow," in formatted


def test_a_layout_that_would_change_the_data_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Whatever goes wrong in the layout, fmt refuses rather than writes another policy.
    monkeypatch.setattr(fmt, "_tidy", lambda text, _root: text.replace("10", "11"))
    path = tmp_path / "p.yaml"
    path.write_text(COMMENT_AFTER_BLOCK, encoding="utf-8")
    with pytest.raises(SourceError) as raised:
        fmt.format_file(path)
    assert raised.value.code == "fmt_changed_data"
    assert raised.value.location.file == str(path)
    assert path.read_text(encoding="utf-8") == COMMENT_AFTER_BLOCK
    result = CliRunner().invoke(main, ["fmt", str(path)])
    assert result.exit_code == 2, result.output
    assert "fmt_changed_data" in result.output or "without changing" in result.output
    assert path.read_text(encoding="utf-8") == COMMENT_AFTER_BLOCK
