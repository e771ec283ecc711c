"""Run a compiled Program on one case's facts in durable_rules. The only module importing it.

durable_rules is frozen at 2.0.28 and its quirks are contained here (durable-rules.md):
- it is driven through the compiled module `durable_rules_engine` directly, never through
  `durable.engine.Host`, whose two timer threads never stop and run actions off-thread (trap 9);
  with no Python action closures, no exception can be swallowed inside an action (trap 3);
- every `run` has a session of its own: reusing one session for consecutive cases (the
  previous case's facts retracted) crashed the process inside durable_rules (a segfault or an
  abort in `retract_facts` or a later `assert_facts`, in long test runs), and cases joined on
  a case key in one session measured slower; a session is deleted once its case received
  every stage (trap 20: deleting an unfinished one crashes the process) and
  some action ran in it (else its action context is garbage, see `_close`), so few are ever
  live (trap 8); pending actions are drained first when something failed (trap 13);
- the case facts go in one batch with the first stage's marker, then each later stage marker
  in one batch with what the previous stage derived, so a rule with a negation only runs once
  every fact it negates is final (trap 2; the compiler stratifies, and a firing outside its
  stage is an engine error);
- the engine gets only the case fact types and fields some rule reads (`ruleset.projection`):
  every alpha test probes every field of a fact, and a fact no rule reads is pure cost;
- every fact has a unique id (trap 4) and actions are idempotent: a value asserted twice is
  dropped, a contradicting one is an engine error (trap 5);
- numbers are normalised before they reach the engine (trap 7), and a catch-all rule makes every
  fact handled (trap 1).
Rulesets are registered once per process by name (policy id, version and content hash).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import durable_rules_engine as _dre
import orjson

from evaluator.compile.program import (
    CAND,
    KEY,
    PAIR,
    VAL,
    EmitFact,
    EmitMissing,
    EmitPair,
    EmitStatus,
    EmitValue,
    EmitVerdict,
    Program,
    Record,
    Rule,
)
from evaluator.compile.ruleset import definition_text, engine_json, number, projection
from evaluator.errors import EngineError, PolicyError
from evaluator.language.conditions import Truth
from evaluator.language.model import Determination, FromField

# assert_* result codes (durable/engine.py `_handle_result`): 1 not handled, 2 already observed.
_NOT_HANDLED, _OBSERVED = 1, 2


class Emitted(NamedTuple):
    """One fact a rule action asserted, with the rule and the ids of the facts it matched.

    Immutable as a frozen dataclass is, and made several times per firing: a named tuple is
    built in about half the instructions (a frozen dataclass sets each field through
    `object.__setattr__`).
    """

    fact: Mapping[str, Any]
    rule: str
    matched: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Firing:
    """One rule firing, recorded only when tracing: the facts it matched (alias -> id) and the
    facts it asserted (none when the action was a repeat), or the determination it gave."""

    rule: str
    matched: Mapping[str, str]
    asserted: tuple[Mapping[str, Any], ...]
    verdict: Determination | None = None


@dataclass
class Trace:
    """Everything the engine derived for one case; read by decision assembly.

    `firings` is None unless the run was traced (`Engine.run(..., trace=True)`).
    """

    values: dict[tuple[str, tuple[str, ...]], Emitted] = field(default_factory=dict)
    candidates: list[Emitted] = field(default_factory=list)
    derived: list[Emitted] = field(default_factory=list)
    statuses: dict[str, Emitted] = field(default_factory=dict)
    verdict: Determination | None = None
    firings: int = 0
    log: list[Firing] | None = None

    def value(self, node: str, keys: tuple[str, ...] = ()) -> Truth | None:
        found = self.values.get((node, keys))
        return None if found is None else Truth(found.fact["v"])


def _tune_malloc() -> None:
    # Each session allocates large state arrays; glibc returns them to the OS on delete and the
    # next session faults them back in. Higher trim/mmap thresholds keep them (trap 12).
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
        libc.mallopt(m_mmap_threshold, 64 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


class Engine:
    """The process-wide engine: durable_rules state is global, so there is one of these."""

    _instance: Engine | None = None
    _lock = threading.Lock()

    # durable_rules holds at most 1,024 sessions per ruleset (trap 8), and a session that failed
    # early is never deleted (trap 20). Before that many are left in one ruleset, the program
    # is registered afresh under a new name; the old ruleset keeps its dead sessions.
    LEFT_SESSIONS_LIMIT = 1000

    def __init__(self) -> None:
        self._handles: dict[str, int] = {}
        self._left: dict[str, int] = {}
        self._generations: dict[str, int] = {}
        self._sessions = itertools.count(1)
        _tune_malloc()

    @classmethod
    def get(cls) -> Engine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _handle(self, program: Program) -> int:
        key = program.name
        handle = self._handles.get(key)
        if handle is None:
            # the text is rendered once per program (and kept on disk): see ruleset
            definition = definition_text(program)
            generation = self._generations.get(key, 0) + 1
            self._generations[key] = generation
            name = key if generation == 1 else f"{key}~{generation}"
            try:
                handle = _dre.create_ruleset(name, definition)
            except Exception as error:  # the extension raises its own bare error type
                # The static checks in ruleset.py missed a limit (e.g. error 113 counts joins
                # and nested groups its own way): the policy, not the case, must change.
                raise PolicyError.single(
                    "engine_limit",
                    f"the engine cannot run policy `{program.name}` ({error}); simplify the "
                    "largest conditions (fewer words, joins or alternatives in one test)",
                ) from error
            self._handles[key] = handle
        return handle

    def prepare(self, program: Program) -> None:
        """Register the program's ruleset now (otherwise on first use)."""
        self._handle(program)

    def run(
        self, program: Program, facts: Iterable[Mapping[str, Any]], *, trace: bool = False
    ) -> Trace:
        """Return what the engine derives from the facts; with `trace`, also every firing.

        Raises EngineError when durable_rules fails or the rules contradict themselves; the
        result is then not a determination.
        """
        handle = self._handle(program)
        session = _Session(handle, program, str(next(self._sessions)))
        if trace:
            session.trace.log = []
        try:
            session.run(facts)
        except BaseException:
            session.abandon()
            raise
        finally:
            # Also on KeyboardInterrupt: close() leaves an unfinished session in place.
            if not session.close():
                self._left_in_place(program.name)
        return session.trace

    def _left_in_place(self, key: str) -> None:
        left = self._left.get(key, 0) + 1
        self._left[key] = left
        if left >= self.LEFT_SESSIONS_LIMIT:
            # unlocked: another thread counting the same limit may have dropped it already
            self._handles.pop(key, None)
            self._left[key] = 0


# What `apply` does for a rule, by its action's type (`_plans`).
_VALUE, _FACT, _PAIR, _STATUS, _MISSING, _VERDICT = range(6)
_KINDS: dict[type, int] = {
    EmitValue: _VALUE,
    EmitFact: _FACT,
    EmitPair: _PAIR,
    EmitStatus: _STATUS,
    EmitMissing: _MISSING,
    EmitVerdict: _VERDICT,
}
# A rule's records as `_records` reads them: (node, value as the engine writes it, source
# alias, candidate).
_Records = tuple[tuple[str, int, str | None, bool], ...]
_Plan = tuple[Rule, int, _Records]
_PLANS = "_engine_plans"


def _plans(program: Program) -> dict[str, _Plan]:
    """Return, by rule name, the rule, what each of its firings does (its action's kind) and
    the records it keeps: worked out once per Program rather than on every firing."""
    found: dict[str, _Plan] | None = program.__dict__.get(_PLANS)
    if found is not None:
        return found
    found = {}
    for rule in program.rules:
        action = rule.action
        records: tuple[Record, ...] = getattr(action, "records", ())
        found[rule.name] = (
            rule,
            _KINDS.get(type(action), -1),  # -1: `apply` refuses it
            tuple((r.node, int(r.value), r.source, r.candidate) for r in records),
        )
    # Program is frozen; a memo, not part of its value (as `projection` keeps its own).
    object.__setattr__(program, _PLANS, found)
    return found


# The value types `_Session.admit` copies as they are (no float: it is normalised or refused).
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
# A status's text by Status member: `.value` goes through the enum's descriptor each time.
_STATUS_TEXT: dict[Any, str] = {}


def _status_text(action: EmitStatus) -> str:
    text = _STATUS_TEXT.get(action.status)
    if text is None:
        text = _STATUS_TEXT[action.status] = action.status.value
    return text


def _planned(plans: Mapping[str, _Plan], name: str) -> _Plan:
    plan = plans.get(name)
    if plan is None:
        raise EngineError.single("engine_failed", f"durable_rules fired an unknown rule `{name}`")
    return plan


def _check_unique(facts: Iterable[Mapping[str, Any]]) -> None:
    # durable_rules rejects a fact it has seen (trap 4) and then crashes in delete_state
    # (trap 13): refuse duplicates before the engine sees them. The id is part of a fact's
    # content, so distinct ids already make the facts distinct.
    ids = [f.get("id") for f in facts]
    if len(set(ids)) != len(ids):
        raise EngineError.single("engine_failed", "two facts share an id")


class _Session:
    """One case in one durable_rules session."""

    def __init__(self, handle: int, program: Program, sid: str) -> None:
        self.handle = handle
        self.program = program
        self.sid = sid
        self.trace = Trace()
        self.counter = 0
        # Derived facts (EmitFact) are numbered on their own: evidence shows them by id, which
        # must not move when the compiler asserts fewer value facts (compile/folding.py).
        self.derived_counter = 0
        self.seen_facts: set[tuple[str, tuple[str, ...]]] = set()
        self.candidate_values: dict[tuple[str, tuple[str, ...]], int] = {}
        self.state: int | None = None
        self.poisoned = False
        # Set once the case facts and every stage were asserted: only such a session may be
        # deleted (durable-rules.md trap 20).
        self.complete = False
        self.pending: list[dict[str, Any]] = []
        self.stage = 0
        self.projection = projection(program)
        self.plans = _plans(program)

    def normalise(self, fact: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"sid": self.sid}
        for key, value in fact.items():
            if value is None:
                continue  # absent and null differ in the engine; absent means undocumented
            out[key] = number(value) if isinstance(value, int | float) else value
        if "id" in out:
            out[KEY] = out["id"]
        return out

    def _check(self, result: Any, what: str) -> None:
        code = result[0] if isinstance(result, tuple) else result
        if code == _NOT_HANDLED:
            raise EngineError.single("engine_failed", f"durable_rules did not handle {what}")
        if code == _OBSERVED:
            # Two distinct facts whose 32-bit content hashes collide look identical to the
            # engine; deleting such a session crashes the process, so it is left in place.
            self.poisoned = True
            raise EngineError.single("engine_failed", f"durable_rules saw {what} twice")
        if isinstance(result, tuple) and len(result) > 1:
            self.state = result[1]

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(self.handle, *args)
        except EngineError:
            raise
        except Exception as error:
            raise EngineError.single("engine_failed", f"durable_rules failed: {error}") from error

    def _assert(self, facts: list[dict[str, Any]], what: str) -> None:
        try:
            text = engine_json(facts)  # the ruleset's own encoding (see engine_json)
        except ValueError as error:
            raise EngineError.single(
                "engine_failed", f"{what} cannot be given to the engine: {error}"
            ) from error
        self._check(self._call(_dre.assert_facts, text), what)

    def run(self, facts: Iterable[Mapping[str, Any]]) -> None:
        """Give the engine the case's facts and every stage; run what fires."""
        self.assert_batch(facts)
        for stage in range(1, self.program.stages + 1):
            self.assert_stage(stage)
        self.flush()
        self.complete = True
        self.check_required()

    def check_required(self) -> None:
        """Fail closed: a clause the program requires a status of (`Program.required`) got
        none from the engine (no rule matched: a leaf's fact passed none of its tests)."""
        statuses = self.trace.statuses
        for clause, node in self.program.required.items():
            if clause not in statuses:
                raise EngineError.single(
                    "engine_incomplete",
                    f"node `{node}` got no value; the rules did not decide it, so there is no "
                    "determination",
                )

    def admit(self, fact: Mapping[str, Any]) -> dict[str, Any] | None:
        """Return a case fact as the engine gets it, or None when no rule can read it.

        Only the fact types and fields some rule reads go to the engine (`projection`); the
        rest stay with the caller, which reads evidence by fact id. A fact with no type still
        goes, for the engine to refuse (trap 1), and a number the engine could not take fails
        the case wherever it is, as when every field went to the engine.
        """
        kind = fact.get("t")
        types = self.projection.types
        # Values that need no normalising (nearly all of them) are copied by a comprehension;
        # any other value (a float, to be normalised or refused) takes the loop below.
        plain = _PLAIN_TYPES.issuperset(map(type, fact.values()))
        if types is not None and kind not in types and kind is not None:
            if not plain:
                for value in fact.values():
                    if isinstance(value, float):
                        number(value)  # as below
            return None
        fields = self.projection.fields
        out: dict[str, Any] = {"sid": self.sid}
        if plain:  # absent and null differ; absent means undocumented
            out.update({k: v for k, v in fact.items() if v is not None and k in fields})
        else:
            for key, value in fact.items():
                if isinstance(value, float):
                    # a number the engine could not take fails, whether a rule reads it or not
                    engine_number = number(value)
                    if key in fields:
                        out[key] = engine_number
                elif value is not None and key in fields:
                    out[key] = value
        if "id" in out:
            out[KEY] = out["id"]
        return out

    def assert_batch(self, facts: Iterable[Mapping[str, Any]]) -> None:
        """Queue the case facts: they go to the engine with the first stage's marker.

        Every rule waits for its stage marker, which comes last in that batch, so the whole
        case is in before any rule can match (trap 2) and one call is saved.
        """
        listed = list(facts)
        _check_unique(listed)
        admit = self.admit
        try:
            admitted = [admit(f) for f in listed]
        except ValueError as error:
            raise EngineError.single(
                "engine_failed", f"a fact cannot be given to the engine: {error}"
            ) from error
        self.pending = [f for f in admitted if f is not None]

    def assert_stage(self, stage: int) -> None:
        """Assert what the previous stage derived together with this stage's marker.

        Only later stages read a stage's derived facts (the compiler stratifies), and every rule
        waits for its stage marker, which comes last in the batch: one call per stage instead
        of two. A firing of any other stage's rule means the strata are wrong (see `apply`).
        """
        self.stage = stage
        ident = f"stage{stage}"  # as `normalise` writes it
        marker = {"sid": self.sid, "t": "stage", "id": ident, "s": stage, KEY: ident}
        batch, self.pending = self.pending, []
        batch.append(marker)
        self._assert(batch, f"stage {stage}")
        self.drain()

    def flush(self) -> None:
        """Assert what the last stage derived: no rule reads it, but the engine still checks
        that nothing fires once every stage has run."""
        self.stage = self.program.stages + 1
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self._assert(batch, "derived facts")
        self.drain()

    def drain(self) -> None:
        """Run every pending action; each may assert facts that queue further actions."""
        if self.state is None:
            return
        plans, apply, handle, state = self.plans, self.apply, self.handle, self.state
        first = self._call(_dre.start_action_for_state, state)
        message = first[1] if first else None
        while message:
            for rule_name, matched in orjson.loads(message).items():
                plan = plans.get(rule_name)
                apply(_planned(plans, rule_name)[0] if plan is None else plan[0], matched)
            try:  # as `_call`, inline: once per firing
                message = _dre.complete_and_start_action(handle, state)
            except Exception as error:
                raise EngineError.single(
                    "engine_failed", f"durable_rules failed: {error}"
                ) from error

    def abandon(self) -> None:
        _abandon(self.handle, self.state)

    def close(self) -> bool:
        """Delete the session when that is safe; return False when it is left in place."""
        fired = self.trace.firings > 0
        return _close(self.handle, self.sid, safe=self.complete and not self.poisoned and fired)

    # -- actions ---------------------------------------------------------------------------

    def apply(self, rule: Rule, matched: Any) -> None:
        if isinstance(matched, list):
            # A counted rule delivers its batch of matches; its action needs no bound ids.
            matched = matched[0] if matched else {}
        if rule.stage != self.stage:
            # A rule read a fact derived in its own or a later stage: the strata are wrong.
            raise EngineError.single(
                "engine_failed",
                f"rule `{rule.name}` of stage {rule.stage} fired in stage {self.stage}",
            )
        trace = self.trace
        trace.firings += 1
        ids = {alias: str(f.get(KEY)) for alias, f in matched.items() if alias != "stage"}
        plan = self.plans.get(rule.name)
        _, kind, records = _planned(self.plans, rule.name) if plan is None else plan
        action: Any = rule.action
        before = len(self.pending)
        if kind == _STATUS:
            self._status(rule, action, ids, records)
        elif kind == _VALUE:
            self._value(rule, action, ids, records)
        elif kind == _FACT:
            self._fact(rule, action, matched, ids)
        elif kind == _PAIR:
            self._pair(action, matched, ids)
        elif kind == _VERDICT:
            if trace.verdict not in (None, action.determination):
                raise EngineError.single("engine_failed", "two determinations were derived")
            trace.verdict = action.determination
        elif kind == _MISSING:
            bound = ", ".join(
                f"{alias}={ids[key]}"
                for alias, key in zip(action.aliases, action.keys, strict=True)
            )
            fact = f" for fact `{ids[action.source]}`" if action.source else ""
            raise EngineError.single(
                "engine_incomplete",
                f"node `{action.node}` got no value{fact}"
                + (f" with {bound}" if bound else "")
                + "; the rules did not decide it, so there is no determination",
            )
        else:  # an action this module does not know derives nothing: never a quiet skip
            raise EngineError.single(
                "engine_failed", f"rule `{rule.name}` has an action the engine cannot run"
            )
        if trace.log is not None:  # tracing observes: what this action just queued
            verdict = action.determination if kind == _VERDICT else None
            trace.log.append(Firing(rule.name, ids, tuple(self.pending[before:]), verdict))

    def _assert_derived(self, fact: dict[str, Any], derived: bool = False) -> None:
        """Queue a derived fact (a value, candidate, pair or status; with `derived`, an
        EmitFact's fact, numbered on its own)."""
        if derived:
            number = self.derived_counter
            self.derived_counter = number + 1
        else:
            number = self.counter
            self.counter = number + 1
        fact["id"] = f"{fact['t']}{number}"
        self.pending.append(self.normalise(fact))

    def _assert_plain(self, fact: dict[str, Any]) -> None:
        """Queue a value, candidate or status fact: it holds only strings and integers, which
        need no normalising; written as `normalise` writes it."""
        number = self.counter
        self.counter = number + 1
        fact["id"] = ident = f"{fact['t']}{number}"
        self.pending.append({"sid": self.sid, **fact, KEY: ident})

    def _value(
        self, rule: Rule, action: EmitValue, ids: Mapping[str, str], records: _Records
    ) -> None:
        keys = tuple([ids[k] for k in action.keys])
        if records:
            # Every firing of a folded rule matched another candidate fact: record them all.
            self._records(rule, records, ids, keys)
        value = int(action.value)
        fact: dict[str, Any] = {"t": action.kind, "n": action.node, "v": value}
        for i, key in enumerate(keys, start=1):
            fact[f"k{i}"] = key
        if action.source is not None:
            fact["f"] = ids[action.source]
        if action.kind == CAND:
            seen = (f"cand {action.node} {fact.get('f')}", keys)
            earlier = self.candidate_values.get(seen)
            if earlier is not None:
                if earlier != value:
                    raise EngineError.single(
                        "engine_failed",
                        f"node `{action.node}` derived both {earlier} and {value} for fact "
                        f"`{fact.get('f')}`",
                    )
                return
            self.candidate_values[seen] = value
            self._assert_plain(fact)
            self.trace.candidates.append(Emitted(fact, rule.name, ids))
            return
        existing = self.trace.values.get((action.node, keys))
        if existing is not None:
            if existing.fact["v"] != value:
                raise EngineError.single(
                    "engine_failed",
                    f"node `{action.node}` derived both {existing.fact['v']} and {value}"
                    + (f" for the bound facts {', '.join(keys)}" if keys else ""),
                )
            return
        self._assert_plain(fact)
        self.trace.values[(action.node, keys)] = Emitted(fact, rule.name, ids)

    def _fact(
        self,
        rule: Rule,
        action: EmitFact,
        matched: Mapping[str, Mapping[str, Any]],
        ids: Mapping[str, str],
    ) -> None:
        fact: dict[str, Any] = {"t": action.fact}
        for name, value in action.values.items():
            if isinstance(value, FromField):
                source = matched[f"b_{value.alias}"]
                for physical in action.copy.get(name, (value.field,)):
                    if physical in source:
                        fact[name + physical[len(value.field) :]] = source[physical]
            else:
                fact[name] = value
        # Derived facts are a set: the same content derived twice (by two rules, or from two
        # case facts that say the same, e.g. one block listed twice) is one fact, so counting
        # derived facts counts distinct things.
        seen = (f"fact {json.dumps(fact, sort_keys=True)}", ())
        if seen in self.seen_facts:
            return
        self.seen_facts.add(seen)
        # Provenance: a fact whose values all come from one case fact keeps that fact's source.
        aliases = {v.alias for v in action.values.values() if isinstance(v, FromField)}
        if len(aliases) == 1:
            src = matched[f"b_{aliases.pop()}"].get("src")
            if src is not None:
                fact["src"] = src
        self._assert_derived(fact, derived=True)
        self.trace.derived.append(Emitted(fact, rule.name, ids))

    def _pair(
        self, action: EmitPair, matched: Mapping[str, Mapping[str, Any]], ids: Mapping[str, str]
    ) -> None:
        """Copy two bound facts' fields into one pair fact; the engine compares them there."""
        keys = tuple(ids[k] for k in action.keys)
        seen = (f"pair {action.node}", keys)
        if seen in self.seen_facts:
            return
        self.seen_facts.add(seen)
        fact: dict[str, Any] = {"t": PAIR, "n": action.node}
        for i, key in enumerate(keys, start=1):
            fact[f"k{i}"] = key
        for name, alias, physical in action.fields:
            if physical in matched[alias]:
                fact[name] = matched[alias][physical]
        self._assert_derived(fact)

    def _status(
        self, rule: Rule, action: EmitStatus, ids: Mapping[str, str], records: _Records
    ) -> None:
        if records:
            # Every firing of a folded rule matched another candidate fact: record them all.
            self._records(rule, records, ids, ())
        status = _status_text(action)
        existing = self.trace.statuses.get(action.clause)
        if existing is not None:
            if existing.fact["status"] != status:
                raise EngineError.single(
                    "engine_failed",
                    f"clause `{action.clause}` derived both {existing.fact['status']} and {status}",
                )
            return
        fact = {"t": "status", "clause": action.clause, "status": status}
        if action.asserted:
            self._assert_plain(fact)
        else:  # no rule reads it (compiler `_unread`): numbered as if asserted, kept here
            fact["id"] = f"status{self.counter}"
            self.counter += 1
        self.trace.statuses[action.clause] = Emitted(fact, rule.name, ids)

    def _records(
        self, rule: Rule, records: _Records, ids: Mapping[str, str], keys: tuple[str, ...]
    ) -> None:
        """Keep the node values a folded rule's patterns establish for the bound facts `keys`,
        for evidence; nothing is asserted, so they cost no round trip. Two firings that
        disagree are an engine error. A value already kept is only compared: the fact is
        built the first time."""
        values = self.trace.values
        for node, value, source, candidate in records:
            if candidate:
                seen = (f"cand {node} {ids[source] if source is not None else None}", keys)
                if seen not in self.seen_facts:
                    self.seen_facts.add(seen)
                    fact = self._record(node, value, source, ids, keys)
                    fact["t"] = CAND
                    self.trace.candidates.append(Emitted(fact, rule.name, ids))
                continue
            existing = values.get((node, keys))
            if existing is None:
                fact = {"t": VAL, "n": node, "v": value}
                for i, key in enumerate(keys, start=1):
                    fact[f"k{i}"] = key
                if source is not None:
                    fact["f"] = ids[source]
                values[(node, keys)] = Emitted(fact, rule.name, ids)
            elif existing.fact["v"] != value:
                raise EngineError.single(
                    "engine_failed",
                    f"node `{node}` derived both {existing.fact['v']} and {value}",
                )

    @staticmethod
    def _record(
        node: str, value: int, source: str | None, ids: Mapping[str, str], keys: tuple[str, ...]
    ) -> dict[str, Any]:
        fact: dict[str, Any] = {"t": VAL, "n": node, "v": value}
        for i, key in enumerate(keys, start=1):
            fact[f"k{i}"] = key
        if source is not None:
            fact["f"] = ids[source]
        return fact


def _abandon(handle: int, state: int | None) -> None:
    """Drop the actions still pending in a session (before it is left or deleted, trap 13)."""
    if state is None:
        return
    with contextlib.suppress(Exception):
        while _dre.start_action_for_state(handle, state):
            _dre.abandon_action(handle, state)


def _close(handle: int, sid: str, *, safe: bool) -> bool:
    """Delete a session when `safe`; return False when it is left in place."""
    # delete_state aborts or segfaults the process on a session that has not received its
    # facts and every stage (an error or a Ctrl-C before the last stage, trap 20), and on
    # one that reported a duplicate (trap 4): such a session is left in place. The same crash
    # comes from a complete session in which no action ever ran: state.c `createStateNode`
    # leaves the session's action context (`context.messages`, `context.stateFact`)
    # uninitialised, and only a completed action sets them to NULL, so `deleteStateNode`
    # frees whatever pointers the recycled memory held ("free(): invalid pointer"); callers
    # pass `safe` only for a session where an action ran. A session left in place keeps one
    # of the ruleset's 1,024 sessions (trap 8), which only repeated engine errors in one
    # process can use up; each ends in an EngineError, never in a determination.
    if not safe:
        return False
    with contextlib.suppress(Exception):
        _dre.delete_state(handle, sid)
    return True


__all__ = ["Emitted", "Engine", "Firing", "Trace"]
