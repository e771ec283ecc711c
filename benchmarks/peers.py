"""The bench policy's six clauses written for the peer engines, each in its own idiom.

- `DurableRules`: durable_rules driven directly through its compiled module (the engine's floor):
  one rule per clause outcome whose patterns encode the three-valued truth table, one firing per
  outcome (instability: one per failing segment, then one per outcome in a second stage), cases
  batched per session and joined on a case key.
- `Clips`: CLIPS through clipspy (the `bench` extra), one rule per clause (instability: one per
  outcome, with CLIPS's own `forall`/`not`), the three-valued logic in deffunctions.

Both take `reference.Facts` and return, per case, each clause's status; the benchmark checks
them against `reference.evaluate`. `available()` says why a peer cannot run, if it cannot.
"""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from benchmarks.reference import (
    CARE_DAYS,
    CLAUSES,
    COTININE,
    HBA1C,
    PT_DAYS,
    URGENT_KINDS,
    Facts,
)

Statuses = dict[str, str]
Expr = dict[str, Any]
_RULESETS = itertools.count(1)
BATCH = 40  # cases per engine session (durable-rules.md trap 12: 25-50 is the sweet spot)


def available(peer: str) -> str | None:
    """Return why `peer` (durable_rules or clips) cannot run here, or None when it can."""
    module = {"durable_rules": "durable_rules_engine", "clips": "clips"}[peer]
    if importlib.util.find_spec(module) is None:
        extra = (
            "the `bench` extra: pip install -e '.[bench]'" if peer == "clips" else "durable-rules"
        )
        return f"{module} is not installed ({extra})"
    return None


def _batches(facts: Sequence[Facts], size: int) -> Iterator[Sequence[Facts]]:
    for start in range(0, len(facts), size):
        yield facts[start : start + size]


# --- durable_rules ------------------------------------------------------------------------------

# Three-valued conditions over the one `case` fact, as (true, false, unknown) pattern expressions.
Kleene = tuple[Expr, Expr, Expr]


def _and(*parts: Expr) -> Expr:
    return parts[0] if len(parts) == 1 else {"$and": list(parts)}


def _or(*parts: Expr) -> Expr:
    return parts[0] if len(parts) == 1 else {"$or": list(parts)}


def _absent(field: str) -> Expr:
    return {"$nex": {field: 1}}


def _leaf(field: str, true: Expr, false: Expr) -> Kleene:
    # a missing field fails every comparison (trap 6): only $nex matches it
    return true, false, _absent(field)


def _all(*parts: Kleene) -> Kleene:
    true = _and(*(t for t, _, _ in parts))
    false = _or(*(f for _, f, _ in parts))
    unknown = _and(*(_or(t, u) for t, _, u in parts), _or(*(u for _, _, u in parts)))
    return true, false, unknown


def _any(*parts: Kleene) -> Kleene:
    true = _or(*(t for t, _, _ in parts))
    false = _and(*(f for _, f, _ in parts))
    unknown = _and(*(_or(f, u) for _, f, u in parts), _or(*(u for _, _, u in parts)))
    return true, false, unknown


def _durable_rules() -> dict[str, Any]:
    case = {"t": "case"}
    urgent = {
        "$and": [
            {"t": "flag"},
            {"c": {"k": "c"}},  # joins before any $or (trap 15)
            {"$or": [{"kind": kind} for kind in sorted(URGENT_KINDS)]},
        ]
    }
    care: Kleene = (
        {"$gte": {"care_lo": CARE_DAYS}},
        {"$lt": {"care_hi": CARE_DAYS}},
        _or(
            _absent("care_lo"),
            _and({"$lt": {"care_lo": CARE_DAYS}}, {"$gte": {"care_hi": CARE_DAYS}}),
        ),
    )
    therapy = _any(
        _leaf(
            "pt_status",
            {"pt_status": "contraindicated"},
            {"$neq": {"pt_status": "contraindicated"}},
        ),
        _all(
            _leaf("pt_sup", {"pt_sup": True}, {"pt_sup": False}),
            _leaf("pt_days", {"$gte": {"pt_days": PT_DAYS}}, {"$lt": {"pt_days": PT_DAYS}}),
        ),
    )
    nicotine = _any(
        _leaf("nic", {"nic": "never"}, {"$neq": {"nic": "never"}}),
        _all(
            _leaf("nic", {"$neq": {"nic": "current"}}, {"nic": "current"}),
            _leaf("cot", {"$lte": {"cot": COTININE}}, {"$gt": {"cot": COTININE}}),
        ),
    )
    hba1c = _leaf("hba1c", {"$lt": {"hba1c": HBA1C}}, {"$gte": {"hba1c": HBA1C}})
    applies = _or({"diab": True}, _absent("diab"))
    rules: dict[str, Any] = {
        "BF-URGENT|met": {"all": [{"k": case}, {"f": urgent}]},
        "BF-URGENT|not_applicable": {"all": [{"k": case}, {"f$not": urgent}]},
        "BF-DIABETES|not_applicable": {"all": [{"k": _and(case, {"diab": False})}]},
    }
    outcomes = ("met", "not_met", "not_documented")
    for clause, kleene in (("BF-CONSERVATIVE", care), ("BF-PHYSICAL-THERAPY", therapy)):
        rules[f"{clause}|not_applicable"] = {"all": [{"k": case}, {"f": urgent}]}
        for status, expr in zip(outcomes, kleene, strict=True):
            rules[f"{clause}|{status}"] = {"all": [{"k": _and(case, expr)}, {"f$not": urgent}]}
    for status, expr in zip(outcomes, nicotine, strict=True):
        rules[f"BF-NICOTINE|{status}"] = {"all": [{"k": _and(case, expr)}]}
    for status, expr in zip(outcomes, hba1c, strict=True):
        rules[f"BF-DIABETES|{status}"] = {"all": [{"k": _and(case, applies, expr)}]}
    # Instability, stage 1: each fused segment without spondylolisthesis, as a derived fact.
    at_segment = [{"c": {"s": "c"}}, {"seg": {"s": "seg"}}]
    rules["segment|F"] = {
        "all": [
            {"s": {"t": "seg"}},
            {"f": {"$and": [{"t": "find"}, *at_segment, {"l": False}]}},
            {"g$not": {"$and": [{"t": "find"}, *at_segment, {"l": True}]}},
        ]
    }
    rules["segment|U"] = {
        "all": [{"s": {"t": "seg"}}, {"f$not": {"$and": [{"t": "find"}, *at_segment]}}]
    }
    # Stage 2 (after the marker): one firing per outcome.
    marker = {"m": {"t": "stage2"}}
    bad = {"t": "bad"}, {"c": {"k": "c"}}
    rules["BF-INSTABILITY|met"] = {
        "all": [marker, {"k": _and(case, {"$gt": {"nseg": 0}})}, {"b$not": _and(*bad)}]
    }
    rules["BF-INSTABILITY|not_met"] = {"all": [marker, {"k": case}, {"b": _and(*bad, {"v": "F"})}]}
    rules["BF-INSTABILITY|not_documented"] = {
        "all": [
            marker,
            {"k": case},
            {"b": _and(*bad, {"v": "U"})},
            {"x$not": _and(*bad, {"v": "F"})},
        ]
    }
    rules["BF-INSTABILITY|not_documented|empty"] = {"all": [marker, {"k": _and(case, {"nseg": 0})}]}
    # every fact handled, none fires (trap 1)
    rules["catch_all"] = {"all": [{"m": {"$ex": {"t": 1}}}, {"n": {"t": "__never__"}}]}
    return rules


def _tune_malloc() -> None:
    # As engine/durable.py does (trap 12): keep glibc from returning each session's arrays to
    # the operating system, so that the peer and necessity run under the same allocator.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 * 1024 * 1024)  # M_MMAP_THRESHOLD


def _check(result: Any) -> None:
    # assert_facts answers 1 for a fact no rule handled and 2 for one seen twice (traps 1, 4)
    code = result[0] if isinstance(result, tuple) else result
    if code in (1, 2):
        raise RuntimeError(f"durable_rules refused the facts (code {code})")


class DurableRules:
    """The six clauses in durable_rules, driven through `durable_rules_engine` directly."""

    name = "durable_rules"
    label = "durable_rules, tuned direct use (one firing per clause outcome, batched sessions)"

    def __init__(self, batch: int = BATCH) -> None:
        import durable_rules_engine as dre  # noqa: PLC0415  (a peer, loaded when measured)

        self.dre = dre
        self.batch = batch
        _tune_malloc()
        # a ruleset name registers once per process
        name = f"bench_fusion_peer_{next(_RULESETS)}"
        self.handle = dre.create_ruleset(name, json.dumps(_durable_rules()))
        self.sessions = itertools.count(1)

    def facts(self, sid: str, key: int, case: Facts) -> list[dict[str, Any]]:
        """The engine facts of one case, each tagged with the session and the case key."""
        row: dict[str, Any] = {"sid": sid, "t": "case", "id": f"k{key}", "c": key}
        row["nseg"] = len(case.fused)
        if case.care_days is not None:
            row["care_lo"], row["care_hi"] = case.care_days
        for field, value in (
            ("pt_status", case.pt_status),
            ("pt_sup", case.pt_supervised),
            ("pt_days", case.pt_days),
            ("nic", case.nicotine),
            ("cot", case.cotinine),
            ("diab", case.diabetic),
            ("hba1c", case.hba1c),
        ):
            if value is not None:
                row[field] = value
        out = [row]
        out += [
            {"sid": sid, "t": "flag", "id": f"f{key}.{i}", "c": key, "kind": kind}
            for i, kind in enumerate(case.red_flags)
        ]
        out += [
            {"sid": sid, "t": "seg", "id": f"s{key}.{i}", "c": key, "seg": seg}
            for i, seg in enumerate(case.fused)
        ]
        out += [
            {"sid": sid, "t": "find", "id": f"n{key}.{i}", "c": key, "seg": seg, "l": listhesis}
            for i, (seg, listhesis) in enumerate(case.findings)
        ]
        return out

    def evaluate(self, cases: Sequence[Facts]) -> list[Statuses]:
        """Return each case's clause statuses, in order; raise RuntimeError if the engine
        fails or a clause has no status or two."""
        out: list[Statuses] = []
        for batch in _batches(cases, self.batch):
            out += self._session(batch)
        return out

    def _session(self, cases: Sequence[Facts]) -> list[Statuses]:
        dre, handle = self.dre, self.handle
        sid = str(next(self.sessions))
        statuses: list[Statuses] = [{} for _ in cases]
        derived: list[dict[str, Any]] = []
        # Negation has no truth maintenance (trap 2): the facts a `$not` looks for (red flags,
        # findings) go first, the facts it guards (segments, cases) after them.
        order = {"flag": 0, "find": 0, "seg": 1, "case": 2}
        facts = [f for key, case in enumerate(cases) for f in self.facts(sid, key, case)]
        batch = sorted(facts, key=lambda f: order[f["t"]])
        result = dre.assert_facts(handle, json.dumps(batch))
        _check(result)
        state = result[1]
        self._drain(state, statuses, derived)
        # a segment with two findings without spondylolisthesis fires twice: one fact (trap 5)
        unique = list({fact["id"]: fact for fact in derived}.values())
        unique.append({"sid": sid, "t": "stage2", "id": "stage2"})
        _check(dre.assert_facts(handle, json.dumps(unique)))
        self._drain(state, statuses, None)
        dre.delete_state(handle, sid)
        for status in statuses:
            if len(status) != len(CLAUSES):
                raise RuntimeError(f"durable_rules left a clause without a status: {status}")
        return statuses

    def _drain(self, state: int, statuses: list[Statuses], derived: list[Any] | None) -> None:
        dre, handle = self.dre, self.handle
        started = dre.start_action_for_state(handle, state)
        message = started[1] if started else None
        while message:
            for rule, matched in json.loads(message).items():
                if rule.startswith("segment|"):
                    if derived is None:
                        raise RuntimeError("a stage-1 rule fired in stage 2")
                    seg = matched["s"]
                    derived.append(
                        {
                            "sid": seg["sid"],
                            "t": "bad",
                            "id": f"b{seg['id']}",
                            "c": seg["c"],
                            "v": rule[-1],
                        }
                    )
                    continue
                clause, status = rule.split("|")[:2]
                found = statuses[matched["k"]["c"]]
                if found.setdefault(clause, status) != status:
                    raise RuntimeError(f"{clause} derived both {found[clause]} and {status}")
            message = dre.complete_and_start_action(handle, state)


# --- CLIPS --------------------------------------------------------------------------------------

_KINDS = " | ".join(f'"{k}"' for k in sorted(URGENT_KINDS))
CLIPS_RULES = f"""
(deftemplate case (slot c) (slot care-lo) (slot care-hi) (slot pt-status) (slot pt-sup)
  (slot pt-days) (slot nic) (slot cot) (slot diab) (slot hba1c))
(deftemplate flag (slot c) (slot kind))
(deftemplate seg (slot c) (slot s))
(deftemplate find (slot c) (slot s) (slot l))
(deftemplate status (slot c) (slot clause) (slot v))

(deffunction k-test (?x ?ok) (if (eq ?x nil) then u else (if ?ok then t else f)))
(deffunction k-and (?a ?b) (if (or (eq ?a f) (eq ?b f)) then f
  else (if (or (eq ?a u) (eq ?b u)) then u else t)))
(deffunction k-or (?a ?b) (if (or (eq ?a t) (eq ?b t)) then t
  else (if (or (eq ?a u) (eq ?b u)) then u else f)))
(deffunction k-status (?v) (if (eq ?v t) then met else (if (eq ?v f) then not_met
  else not_documented)))

(defrule urgent-met (case (c ?c)) (exists (flag (c ?c) (kind {_KINDS})))
  => (assert (status (c ?c) (clause BF-URGENT) (v met))
             (status (c ?c) (clause BF-CONSERVATIVE) (v not_applicable))
             (status (c ?c) (clause BF-PHYSICAL-THERAPY) (v not_applicable))))
(defrule not-urgent (case (c ?c) (care-lo ?lo) (care-hi ?hi) (pt-status ?s) (pt-sup ?sup)
    (pt-days ?d))
  (not (flag (c ?c) (kind {_KINDS})))
  =>
  (assert (status (c ?c) (clause BF-URGENT) (v not_applicable))
    (status (c ?c) (clause BF-CONSERVATIVE) (v (k-status
      (if (eq ?lo nil) then u else (if (>= ?lo {CARE_DAYS}) then t
        else (if (< ?hi {CARE_DAYS}) then f else u))))))
    (status (c ?c) (clause BF-PHYSICAL-THERAPY) (v (k-status
      (k-or (k-test ?s (eq ?s "contraindicated"))
            (k-and (k-test ?sup (eq ?sup TRUE))
                   (k-test ?d (and (numberp ?d) (>= ?d {PT_DAYS}))))))))))
(defrule nicotine (case (c ?c) (nic ?n) (cot ?k))
  => (assert (status (c ?c) (clause BF-NICOTINE) (v (k-status
       (k-or (k-test ?n (eq ?n "never"))
             (k-and (k-test ?n (neq ?n "current"))
                    (k-test ?k (and (numberp ?k) (<= ?k {COTININE}))))))))))
(defrule diabetes (case (c ?c) (diab ?d) (hba1c ?h))
  => (assert (status (c ?c) (clause BF-DIABETES) (v
       (if (eq ?d FALSE) then not_applicable
        else (k-status (k-test ?h (and (numberp ?h) (< ?h {HBA1C})))))))))
(defrule instability-not-met (case (c ?c))
  (exists (seg (c ?c) (s ?s)) (find (c ?c) (s ?s) (l FALSE)) (not (find (c ?c) (s ?s) (l TRUE))))
  => (assert (status (c ?c) (clause BF-INSTABILITY) (v not_met))))
(defrule instability-not-documented (case (c ?c))
  (not (and (seg (c ?c) (s ?s)) (find (c ?c) (s ?s) (l FALSE))
            (not (find (c ?c) (s ?s) (l TRUE)))))
  (or (exists (seg (c ?c) (s ?s)) (not (find (c ?c) (s ?s))))
      (not (seg (c ?c))))
  => (assert (status (c ?c) (clause BF-INSTABILITY) (v not_documented))))
(defrule instability-met (case (c ?c)) (exists (seg (c ?c)))
  (forall (seg (c ?c) (s ?s)) (find (c ?c) (s ?s) (l TRUE)))
  => (assert (status (c ?c) (clause BF-INSTABILITY) (v met))))
"""


class Clips:
    """The six clauses in CLIPS through clipspy; cases batched per run of one environment."""

    name = "CLIPS"
    label = "CLIPS through clipspy"

    def __init__(self, batch: int = BATCH) -> None:
        import clips  # noqa: PLC0415  (the optional `bench` extra)

        self.clips = clips
        self.batch = batch
        self.env = clips.Environment()
        for construct in _constructs(CLIPS_RULES):
            self.env.build(construct)
        self.templates = {
            name: self.env.find_template(name) for name in ("case", "flag", "seg", "find")
        }
        self.status = self.env.find_template("status")

    def evaluate(self, cases: Sequence[Facts]) -> list[Statuses]:
        """Return each case's clause statuses, in order; raise RuntimeError if a clause has no
        status or two."""
        out: list[Statuses] = []
        for batch in _batches(cases, self.batch):
            out += self._run(batch)
        return out

    def _run(self, cases: Sequence[Facts]) -> list[Statuses]:
        env, t, nil = self.env, self.templates, self.clips.Symbol("nil")
        env.reset()
        for key, case in enumerate(cases):
            low, high = case.care_days if case.care_days is not None else (nil, nil)
            t["case"].assert_fact(
                **{
                    "c": key,
                    "care-lo": low,
                    "care-hi": high,
                    "pt-status": _clips(case.pt_status, nil),
                    "pt-sup": _clips(case.pt_supervised, nil),
                    "pt-days": _clips(case.pt_days, nil),
                    "nic": _clips(case.nicotine, nil),
                    "cot": _clips(case.cotinine, nil),
                    "diab": _clips(case.diabetic, nil),
                    "hba1c": _clips(case.hba1c, nil),
                }
            )
            for kind in case.red_flags:
                t["flag"].assert_fact(c=key, kind=kind)
            for seg in case.fused:
                t["seg"].assert_fact(c=key, s=seg)
            for seg, listhesis in case.findings:
                t["find"].assert_fact(c=key, s=seg, l=listhesis)
        env.run()
        statuses: list[Statuses] = [{} for _ in cases]
        for fact in self.status.facts():
            found, clause, status = statuses[fact["c"]], str(fact["clause"]), str(fact["v"])
            if found.setdefault(clause, status) != status:
                raise RuntimeError(f"{clause} derived both {found[clause]} and {status}")
        for case_statuses in statuses:
            if len(case_statuses) != len(CLAUSES):
                raise RuntimeError(f"CLIPS left a clause without a status: {case_statuses}")
        return statuses


def _clips(value: Any, nil: Any) -> Any:
    return nil if value is None else value


def _constructs(source: str) -> Iterator[str]:
    """Split CLIPS source into top-level constructs (clipspy builds one at a time)."""
    depth, start = 0, None
    for i, char in enumerate(source):
        if char == "(":
            if depth == 0:
                start = i
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and start is not None:
                yield source[start : i + 1]
