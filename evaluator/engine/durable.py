"""Run a compiled Program on one case's facts in durable_rules. The only module importing it.

durable_rules is frozen at 2.0.28 and its quirks are contained here (durable-rules.md):
- it is driven through the compiled module `durable_rules_engine` directly, never through
  `durable.engine.Host`, whose two timer threads never stop and run actions off-thread (trap 9);
  with no Python action closures, no exception can be swallowed inside an action (trap 3);
- nothing is ever retracted: reusing one session for consecutive cases by retracting the
  previous case's facts crashed the process inside durable_rules (a segfault or an abort in
  `retract_facts` or a later `assert_facts`, in long test runs). A small program's cases
  (`ruleset.shares`) run one after another in one open session, `CASES_PER_SESSION` of them,
  each under its own case key that every rule joins on, so the session's set-up (zeroed state
  per beta node) is paid once for them; a case that fails takes the session with it. In batch
  mode (`Engine.run_many`) such a program's cases go `CASES_PER_BATCH` to a new session, each
  stage of them all in one call (`_Chunk`); a chunk that fails is left in place and its cases
  run again alone. Any other program, and every traced run, has a session per case (joined,
  a large program measured slower). A session is deleted once its last case received every
  stage (trap 20: deleting an unfinished one crashes the process) and some action ran in it
  (else its action context is garbage, see `_close`), so few are ever live (trap 8); a session
  that failed is left in place with whatever actions it still had pending, never deleted
  (trap 13), and a case the engine got nothing of leaves the shared session open;
  durable_rules finds a session by the 32-bit hash of its id alone, so a new id never hashes
  like a session still held (`_sid`);
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
import functools
import itertools
import json
import math
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn, cast

import durable_rules_engine as _dre
import orjson

from evaluator.compile.program import (
    CAND,
    KEY,
    PAIR,
    STATUS,
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
from evaluator.compile.ruleset import (
    CASE_KEY,
    definition_text,
    engine_json,
    number,
    projection,
    shares,
)
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


# Emitted's own `__new__` is a Python function (namedtuple's); `tuple.__new__` builds the same
# object in C, once or twice per firing.
_emitted = cast(
    Callable[[tuple[Mapping[str, Any], str, Mapping[str, str]]], Emitted],
    functools.partial(tuple.__new__, Emitted),
)


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


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_DEFAULT_TOP_PAD = 128 * 1024  # glibc's


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(option: int, value: int) -> None:
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(option, value)


def _tune_malloc() -> None:
    # Each session allocates large state arrays; glibc returns them to the OS on delete and the
    # next session faults them back in. Higher trim/mmap thresholds keep them (trap 12).
    _mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    _mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024)


@contextlib.contextmanager
def _registering() -> Iterator[None]:
    # Registering grows the engine's node pools one node at a time with realloc; with glibc's
    # 128 KB top pad the heap then grows in small steps, and in about half of the processes
    # each step moved (copied) the pools: create_ruleset took 47 or 88 ms for the founding
    # case's three programs. A 16 MB pad while registering keeps it at the lower; afterwards
    # the default again, which the sessions' runs are measured with (benchmarks/README.md).
    _mallopt(_M_TOP_PAD, 16 * 1024 * 1024)
    try:
        yield
    finally:
        _mallopt(_M_TOP_PAD, _DEFAULT_TOP_PAD)


class Engine:
    """The process-wide engine: durable_rules state is global, so there is one of these."""

    _instance: Engine | None = None
    _lock = threading.Lock()

    # durable_rules holds at most 1,024 sessions per ruleset (trap 8), and a session that failed
    # early is never deleted (trap 20). Before that many are left in one ruleset, the program
    # is registered afresh under a new name; the old ruleset keeps its dead sessions.
    LEFT_SESSIONS_LIMIT = 1000

    # How many cases run one after another in one session (`_Open`) before it is deleted and
    # replaced: the session's set-up (per beta node) is shared by them, while its memories
    # keep every case's facts (never retracted: that crashed durable_rules). Bench policy,
    # CPU per `api.evaluate`: 8 cases 240-250 us, 16: 232-238, 40: 238-250 (RSS +5 MB).
    CASES_PER_SESSION = 16

    # How many cases `run_many` gives one session, each stage of them all in one call (and
    # `api.review_many` gathers before it runs them). Bench, CPU per case against `run` one by
    # one (212-237 us, load 2.5): 4 cases 212-229, 16: 178-202, 40: 174-191; a larger group
    # keeps more cases' facts and traces alive at once, which the collector then walks.
    CASES_PER_BATCH = 16

    def __init__(self) -> None:
        self._handles: dict[str, int] = {}
        self._open: dict[str, _Open] = {}
        self._open_lock = threading.Lock()
        self._left: dict[str, int] = {}
        self._generations: dict[str, int] = {}
        # What session ids are made of; only `_sid` takes from it: an id taken unchecked
        # could name a session the ruleset still holds.
        self._sid_numbers = itertools.count(1)
        # Per ruleset (by handle), the `_sid_hash` of every session it still holds: a new
        # session's id must hash apart from them (`_sid`). Under `_sid_lock`.
        self._live: dict[int, set[int]] = {}
        self._sid_lock = threading.Lock()
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
                with _registering():
                    handle = _dre.create_ruleset(name, definition)
            except Exception as error:  # the extension raises its own bare error type
                # The static checks in ruleset.py (rules, patterns, expression slots, the
                # alpha stack) missed a limit: the policy, not the case, must change.
                raise PolicyError.single(
                    "engine_limit",
                    f"the engine cannot run policy `{program.name}` ({error}); simplify the "
                    "largest conditions (fewer words, joins or alternatives in one test)",
                ) from error
            self._handles[key] = handle
        return handle

    def _sid(self, handle: int) -> str:
        """A new session id whose hash no session the ruleset holds has.

        durable_rules finds a session by the 32-bit hash of its id alone (`_sid_hash`): a new
        id hashing like a live session's (one left in place after a failure lives on for good)
        named that session, and its case met the failed case's facts (stop 21)."""
        with self._sid_lock:
            live = self._live.setdefault(handle, set())
            while True:
                sid = str(next(self._sid_numbers))
                hashed = _sid_hash(sid)
                if hashed not in live:
                    live.add(hashed)
                    return sid

    def _closed(self, key: str, handle: int, sid: str, *, deleted: bool) -> None:
        """Account for a session `_close` deleted (its id's hash is free again) or left."""
        if not deleted:
            self._left_in_place(key)
            return
        with self._sid_lock:
            self._live.get(handle, set()).discard(_sid_hash(sid))

    def prepare(self, program: Program) -> None:
        """Register the program's ruleset now (otherwise on first use)."""
        self._handle(program)

    def run(
        self, program: Program, facts: Iterable[Mapping[str, Any]], *, trace: bool = False
    ) -> Trace:
        """Return what the engine derives from the facts; with `trace`, also every firing.

        A program that shares sessions (`ruleset.shares`) runs the case in its open session
        after the cases already there (one thread at a time; another runs alone meanwhile):
        the trace is the one the case gets alone.

        Raises EngineError when durable_rules fails or the rules contradict themselves; the
        result is then not a determination.
        """
        handle = self._handle(program)
        if trace or not shares(program):
            return self._run_alone(program, handle, facts, trace=trace)
        key = program.name
        stale = None
        with self._open_lock:
            opened = self._open.get(key)
            if opened is None or opened.handle != handle:
                # A program registered afresh (`_left_in_place`) starts a new session; the
                # old ruleset's open one is deleted, now or at the end of its running case.
                stale = opened
                opened = _Open(handle, self._sid(handle))
                self._open[key] = opened
            if not opened.lock.acquire(blocking=False):
                opened = None  # another thread runs a case in it: this one goes alone
        try:
            # Under `opened.lock`'s `finally`: a Ctrl-C inside this deletion once left the new
            # session locked for good (every later case alone, `release` waiting forever).
            if stale is not None and stale.lock.acquire(blocking=False):
                try:
                    self._drop(key, stale)
                finally:
                    stale.lock.release()
            if opened is None:
                return self._run_alone(program, handle, facts, trace=False)
            return self._run_shared(opened, program, facts)
        finally:
            if opened is not None:
                opened.lock.release()

    def _run_shared(
        self, opened: _Open, program: Program, facts: Iterable[Mapping[str, Any]]
    ) -> Trace:
        """Run one case in the program's open session, after the cases already in it."""
        listed = list(facts)  # read twice when the case is run again alone
        last = opened.last
        if last is not None and _cut_off(last):
            # The case before was cut off before it could retire the session (a second
            # Ctrl-C while the first was handled): its facts and pending actions are there.
            self._retire(program.name, opened, last)
            return self._run_alone(program, self._handle(program), listed, trace=False)
        session = _Session(opened.handle, program, opened.sid, str(opened.cases))
        opened.cases += 1
        opened.last = session
        try:
            session.run(listed)
        except BaseException as error:
            if not session.touched:
                # Refused before the engine got anything of it (a duplicate id, a number the
                # engine cannot take): the session holds nothing of this case and stays open.
                raise
            # No later case may meet this one's facts or pending actions: the session goes.
            self._retire(program.name, opened, session)
            if session.poisoned and opened.cases > 1 and isinstance(error, Exception):
                # Two facts whose 32-bit content hashes collide look identical to the engine
                # (trap 4); the more facts a session holds, the likelier. A collision with
                # another case's fact is no fault of this case: it is decided as if alone.
                return self._run_alone(program, self._handle(program), listed, trace=False)
            raise
        opened.fired = opened.fired or session.trace.firings > 0
        if opened.cases >= self.CASES_PER_SESSION or self._open.get(program.name) is not opened:
            self._retire(program.name, opened, session)
        return session.trace

    def run_many(
        self, program: Program, cases: Sequence[Iterable[Mapping[str, Any]]]
    ) -> list[Trace | Exception]:
        """Return, for each case's facts in order, the trace `run` gives them, or the Exception
        it raises: one case's error is that case's alone.

        A program that shares sessions (`ruleset.shares`) runs its cases `CASES_PER_BATCH` at
        a time in a session of their own, each stage of them all in one `assert_facts` call
        (`_Chunk`); any other program's cases go through `run` one by one. Raises PolicyError
        when the program cannot be registered (no case could run).
        """
        self._handle(program)
        listed = [list(facts) for facts in cases]  # read again when a chunk runs alone
        if not shares(program):
            return [self._caught(program, facts) for facts in listed]
        size = self.CASES_PER_BATCH
        results: list[Trace | Exception] = []
        for start in range(0, len(listed), size):
            results += self._run_chunk(program, listed[start : start + size])
        return results

    def _caught(self, program: Program, facts: Iterable[Mapping[str, Any]]) -> Trace | Exception:
        try:
            return self.run(program, facts)
        except Exception as error:  # the case's own to report
            return error

    def _run_chunk(
        self, program: Program, chunk: list[list[Mapping[str, Any]]]
    ) -> list[Trace | Exception]:
        """Run a chunk of cases in one new session, each stage of them all in one call."""
        handle = self._handle(program)  # registered afresh once too many sessions were left
        sid = self._sid(handle)
        results: list[Trace | Exception | None] = [None] * len(chunk)
        live: dict[int, _Session] = {}
        for index, facts in enumerate(chunk):
            session = _Session(handle, program, sid, str(index))
            try:
                # Refused before the engine sees any of it (a duplicate id, a number the
                # engine cannot take), as when alone: the chunk goes on without it.
                session.assert_batch(facts)
            except EngineError as error:
                results[index] = error
            else:
                live[index] = session
        if not live:
            # The engine never saw this session: its id's hash is free again.
            self._closed(program.name, handle, sid, deleted=True)
            return cast("list[Trace | Exception]", results)
        together = _Chunk(handle, program, sid, list(live.values()))
        try:
            together.run()
        except BaseException as error:
            # Left in place: a failed session is never deleted (`_close`, traps 13 and 20).
            self._closed(program.name, handle, sid, deleted=together.close())
            if not isinstance(error, Exception):
                raise
            # Whose fault it was is not known (a hash collision may be no case's at all):
            # every case of the chunk runs again alone, decided (or failing) as it is alone.
            return [
                self._alone_caught(program, facts) if result is None else result
                for facts, result in zip(chunk, results, strict=True)
            ]
        self._closed(program.name, handle, sid, deleted=together.close())
        for index, session in live.items():
            try:
                session.check_required()  # fail closed, one case at a time
            except EngineError as error:
                results[index] = error
            else:
                results[index] = session.trace
        return cast("list[Trace | Exception]", results)

    def _alone_caught(self, program: Program, facts: list[Mapping[str, Any]]) -> Trace | Exception:
        try:
            return self._run_alone(program, self._handle(program), facts, trace=False)
        except Exception as error:  # the case's own to report
            return error

    def _retire(self, key: str, opened: _Open, last: _Session) -> None:
        """Stop giving cases to `opened` and delete it when that is safe (`_close`)."""
        with self._open_lock:
            if self._open.get(key) is opened:
                del self._open[key]
        opened.retired = True  # `release` may hold it already: it must not delete it again
        fired = opened.fired or last.trace.firings > 0
        safe = last.complete and not last.poisoned and fired
        deleted = _close(opened.handle, opened.sid, safe=safe)
        self._closed(key, opened.handle, opened.sid, deleted=deleted)

    def _run_alone(
        self,
        program: Program,
        handle: int,
        facts: Iterable[Mapping[str, Any]],
        *,
        trace: bool,
    ) -> Trace:
        # a program that shares sessions has only the joined ruleset: its facts carry a key
        case = "0" if shares(program) else None
        session = _Session(handle, program, self._sid(handle), case)
        if trace:
            session.trace.log = []
        try:
            session.run(facts)
        finally:
            # Also on KeyboardInterrupt: close() leaves an unfinished session in place.
            self._closed(program.name, handle, session.sid, deleted=session.close())
        return session.trace

    def release(self) -> None:
        """Delete every open session now (each case in it is done): a later case starts a
        new one. For a caller that wants no session left between its batches (and tests)."""
        with self._open_lock:
            opened, self._open = list(self._open.items()), {}
        for key, session in opened:
            with session.lock:  # a case running in it finishes first
                self._drop(key, session)

    def _drop(self, key: str, session: _Open) -> None:
        """Delete an open session no case runs in (its lock held by the caller)."""
        if session.retired or not session.cases:
            return  # that case's end took it (`_retire`): deleted or left already
        session.retired = True
        # a case cut off before it retired the session left it unfinished (trap 20)
        safe = session.fired and (session.last is None or not _cut_off(session.last))
        deleted = _close(session.handle, session.sid, safe=safe)
        self._closed(key, session.handle, session.sid, deleted=deleted)

    def _left_in_place(self, key: str) -> None:
        left = self._left.get(key, 0) + 1
        self._left[key] = left
        if left >= self.LEFT_SESSIONS_LIMIT:
            # unlocked: another thread counting the same limit may have dropped it already
            self._handles.pop(key, None)
            self._left[key] = 0


@dataclass(eq=False)
class _Open:
    """A program's session that cases run in one after another (`Engine.run`): `cases` run so
    far; `fired` once an action ran in it (only then may it be deleted, `_close`). One thread
    at a time holds `lock`; another thread's case runs in a session of its own meanwhile."""

    handle: int
    sid: str
    cases: int = 0
    fired: bool = False
    # Set once deleted or left in place (`_retire`, `release`): never closed a second time.
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The case given it last, to tell whether it finished (`_cut_off`).
    last: _Session | None = None


def _cut_off(case: _Session) -> bool:
    """Whether the engine got some of an open session's last case but not all of it, and the
    session stayed open: only an interruption of the handler that retires it leaves that."""
    return case.touched and not case.complete


# A firing's handler: what one rule's action does, given the session and the facts the rule
# matched (alias -> the fact as the engine sent it). `_plans` makes one per rule, once per
# Program, from the factory its action's type picks (data, never generated code), with all a
# firing needs worked out in advance (names, aliases, fact templates, records), so that a
# firing only does what depends on the facts it matched.
_Handler = Callable[["_Session", Mapping[str, Any]], None]
_PLANS = "_engine_plans"
_NO_RULES: Mapping[str, _Handler] = {}


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _Plans:
    """A program's firing handlers by stage, then by rule name; its rules by name.

    A rule's handler is only in its own stage's table, so a firing looked up in the table of
    the stage being run needs no stage check of its own: a name not there is a rule of
    another stage (the strata are wrong) or one the program does not have, both engine errors
    (`_Session.misfired`)."""

    rules: dict[str, Rule]
    stages: dict[int, dict[str, _Handler]]
    # Per shape of a case fact (its field names in order), the fields of it some rule reads
    # (`_Session.admit`); filled as shapes are met, at most `_SHAPES` of them.
    kept: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def keep(self, shape: tuple[str, ...], fields: frozenset[str]) -> tuple[str, ...]:
        kept = tuple(name for name in shape if name in fields)
        if len(self.kept) < _SHAPES:
            self.kept[shape] = kept
        return kept


# Case facts come in few shapes (the schema's fields, some left out); a caller giving facts
# of ever new shapes gets no more cached than this.
_SHAPES = 4096


def _plans(program: Program) -> _Plans:
    """Return the program's firing handlers: worked out once per Program, not per firing."""
    found: _Plans | None = program.__dict__.get(_PLANS)
    if found is not None:
        return found
    stages: dict[int, dict[str, _Handler]] = {}
    for rule in program.rules:
        make = _HANDLERS.get(type(rule.action), _on_unknown)
        stages.setdefault(rule.stage, {})[rule.name] = make(rule, rule.action)
    found = _Plans({rule.name: rule for rule in program.rules}, stages)
    # Program is frozen; a memo, not part of its value (as `projection` keeps its own).
    object.__setattr__(program, _PLANS, found)
    return found


# The value types `_Session.admit` copies as they are (no float: it is normalised or refused).
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def _check_unique(facts: Iterable[Mapping[str, Any]]) -> None:
    # durable_rules rejects a fact it has seen (trap 4) and then crashes in delete_state
    # (trap 13): refuse duplicates before the engine sees them. The id is part of a fact's
    # content, so distinct ids already make the facts distinct.
    listed = facts if isinstance(facts, list) else list(facts)
    if len({f.get("id") for f in listed}) != len(listed):
        raise EngineError.single("engine_failed", "two facts share an id")


class _Session:
    """One case in one durable_rules session."""

    def __init__(self, handle: int, program: Program, sid: str, case: str | None = None) -> None:
        self.handle = handle
        self.program = program
        self.sid = sid
        # The case's key when the program's cases share sessions (`ruleset.shares`): its
        # facts carry it (every rule joins on it), and their engine ids are prefixed with it
        # (the engine tells facts apart by id); `KEY` keeps the fact's own id for evidence.
        self.case = case
        self.prefix = "" if case is None else f"{case}|"
        self.trace = Trace()
        self.counter = 0
        # Derived facts (EmitFact) are numbered on their own: evidence shows them by id, which
        # must not move when the compiler asserts fewer value facts (compile/folding.py).
        self.derived_counter = 0
        self.seen_facts: set[tuple[str, tuple[str, ...]]] = set()
        self.candidate_values: dict[tuple[str, tuple[str, ...]], int] = {}
        self.state: int | None = None
        self.poisoned = False
        # Set once the engine was given anything of this case: until then a failure leaves
        # the session as it was.
        self.touched = False
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
        if self.case is not None:
            out[CASE_KEY] = self.case
        if "id" in out:
            out[KEY] = ident = out["id"]
            if self.case is not None:
                out["id"] = self.prefix + str(ident)
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
        self.touched = True
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
        # Values that need no normalising (nearly all of them) are copied as they are; any
        # other value (a float, to be normalised or refused) takes the loop below.
        plain = _PLAIN_TYPES.issuperset(map(type, fact.values()))
        if types is not None and kind not in types and kind is not None:
            if not plain:
                for value in fact.values():
                    if isinstance(value, float):
                        number(value)  # as below
            return None
        out: dict[str, Any] = {"sid": self.sid}
        if plain:  # absent and null differ; absent means undocumented
            # Only the fields some rule reads, in the fact's own order: a case fact has a
            # few of its many fields read, and facts of one shape keep the same ones.
            shape = tuple(fact)
            kept = self.plans.kept.get(shape)
            if kept is None:
                kept = self.plans.keep(shape, self.projection.fields)
            for key in kept:
                value = fact[key]
                if value is not None:
                    out[key] = value
        else:
            fields = self.projection.fields
            for key, value in fact.items():
                if isinstance(value, float):
                    # a number the engine could not take fails, whether a rule reads it or not
                    engine_number = number(value)
                    if key in fields:
                        out[key] = engine_number
                elif value is not None and key in fields:
                    out[key] = value
        if self.case is not None:
            # after the fact's own fields: no rule reads a case fact's own `c` (`shares`)
            out[CASE_KEY] = self.case
        if "id" in out:
            out[KEY] = ident = out["id"]
            if self.case is not None:
                out["id"] = self.prefix + str(ident)
        return out

    def assert_batch(self, facts: Iterable[Mapping[str, Any]]) -> None:
        """Queue the case facts: they go to the engine with the first stage's marker.

        Every rule waits for its stage marker, which comes last in that batch, so the whole
        case is in before any rule can match (trap 2) and one call is saved.
        """
        listed = facts if isinstance(facts, list) else list(facts)
        _check_unique(listed)
        try:
            # what `admit` gives is None or a fact, never empty (it has `sid`)
            self.pending = list(filter(None, map(self.admit, listed)))
        except ValueError as error:
            raise EngineError.single(
                "engine_failed", f"a fact cannot be given to the engine: {error}"
            ) from error

    def assert_stage(self, stage: int) -> None:
        """Assert what the previous stage derived together with this stage's marker.

        Only later stages read a stage's derived facts (the compiler stratifies), and every rule
        waits for its stage marker, which comes last in the batch: one call per stage instead
        of two. A firing of any other stage's rule means the strata are wrong (see `_Plans`).
        """
        self.stage = stage
        batch, self.pending = self.pending, []
        batch.append(self.marker(stage))
        self._assert(batch, f"stage {stage}")
        self.drain()

    def marker(self, stage: int) -> dict[str, Any]:
        """The fact that starts a stage: every rule of the stage waits for it.

        Without `KEY`: no rule joins a marker on it (rules join it only on the case key) and it
        is no evidence (`_ids`), and the engine sends it back in most firings."""
        marker = {"sid": self.sid, "t": "stage", "id": f"{self.prefix}stage{stage}", "s": stage}
        if self.case is not None:
            marker[CASE_KEY] = self.case
        return marker

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
        handle, state, trace = self.handle, self.state, self.trace
        # Only this stage's rules may fire now (see `_Plans`).
        handlers = self.plans.stages.get(self.stage, _NO_RULES)
        log = trace.log
        case = self.case
        first = self._call(_dre.start_action_for_state, state)
        message = first[1] if first else None
        fired = 0
        # Looked up once per drain rather than once per firing (a patched `_dre` function is
        # still the one called: it is read here, after any patch).
        loads, complete = orjson.loads, _dre.complete_and_start_action
        try:
            while message:
                for name, given in loads(message).items():
                    handler = handlers.get(name)
                    if handler is None:
                        self.misfired(name)
                    matched = given
                    if given.__class__ is list:  # orjson makes no subclass
                        # A counted rule delivers its batch of matches; its action needs no
                        # bound ids.
                        matched = given[0] if given else {}
                    if case is not None:
                        for fact in matched.values():
                            if fact.get(CASE_KEY) != case:
                                # every rule joins its patterns on the case key (`render`)
                                self.mixed(name)
                    fired += 1
                    if log is None:
                        handler(self, matched)
                    else:
                        self.traced(handler, name, matched, log)
                try:  # as `_call`, inline: once per firing
                    message = complete(handle, state)
                except Exception as error:
                    raise EngineError.single(
                        "engine_failed", f"durable_rules failed: {error}"
                    ) from error
        finally:
            # counted here rather than per firing; also when a firing failed
            trace.firings += fired

    def mixed(self, name: str) -> NoReturn:
        """Fail on a firing that matched a fact of another case of the session."""
        raise EngineError.single("engine_failed", f"rule `{name}` matched a fact of another case")

    def misfired(self, name: str) -> NoReturn:
        """Fail on a firing that is not in the table of the stage being run (`_Plans`)."""
        rule = self.plans.rules.get(name)
        if rule is None:
            raise EngineError.single(
                "engine_failed", f"durable_rules fired an unknown rule `{name}`"
            )
        # A rule read a fact derived in its own or a later stage: the strata are wrong.
        raise EngineError.single(
            "engine_failed", f"rule `{name}` of stage {rule.stage} fired in stage {self.stage}"
        )

    def traced(
        self, handler: _Handler, name: str, matched: Mapping[str, Any], log: list[Firing]
    ) -> None:
        """Run a firing and log it: tracing observes what its action just queued."""
        before = len(self.pending)
        handler(self, matched)
        action = self.plans.rules[name].action
        verdict = action.determination if isinstance(action, EmitVerdict) else None
        asserted = self.pending[before:]
        if self.case is not None:
            # as a session of one case writes them: explanations find facts by their own ids
            asserted = [_own(fact) for fact in asserted]
        log.append(Firing(name, _ids(matched), tuple(asserted), verdict))

    def close(self) -> bool:
        """Delete the session when that is safe; return False when it is left in place."""
        fired = self.trace.firings > 0
        return _close(self.handle, self.sid, safe=self.complete and not self.poisoned and fired)

    # -- actions (run by the handlers below) -----------------------------------------------

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
        out = {"sid": self.sid, **fact, KEY: ident}
        if self.case is not None:
            out[CASE_KEY] = self.case
            out["id"] = self.prefix + ident
        self.pending.append(out)


# What a firing that matched no fact at all is taken from: of no case (`_Chunk.drain`).
_NO_CASE: Mapping[str, Any] = {}


class _Chunk:
    """Several cases (`_Session`s under their own case keys) in one durable_rules session,
    each stage of them all in one `assert_facts` call (`Engine.run_many`).

    A stage's batch holds every case's facts of that stage and then every case's stage marker:
    every rule waits for its own case's marker, so no rule fires before its case's facts are
    in (trap 2), and each firing goes to the case of the facts it matched.
    """

    def __init__(self, handle: int, program: Program, sid: str, cases: list[_Session]) -> None:
        self.handle = handle
        self.program = program
        self.sid = sid
        self.cases = {cast(str, case.case): case for case in cases}
        # Makes the chunk's calls and keeps the session's state: the cases' own calls would do
        # the same; none of its counters or trace is used.
        self.carrier = _Session(handle, program, sid)
        self.plans = _plans(program)
        self.complete = False
        self.fired = False

    def run(self) -> None:
        cases = list(self.cases.values())
        for stage in range(1, self.program.stages + 1):
            batch: list[dict[str, Any]] = []
            for case in cases:
                batch += case.pending
                case.pending = []
            for case in cases:
                case.stage = stage
                batch.append(case.marker(stage))
            self.carrier._assert(batch, f"stage {stage}")
            self.drain(stage)
        batch = []
        for case in cases:
            case.stage = self.program.stages + 1
            batch += case.pending
            case.pending = []
        if batch:
            self.carrier._assert(batch, "derived facts")
            self.drain(self.program.stages + 1)
        self.complete = True
        for case in cases:
            case.complete = True

    def drain(self, stage: int) -> None:
        """Run every pending action, each for the case whose facts it matched."""
        state = self.carrier.state
        if state is None:
            return
        handle, cases = self.handle, self.cases
        handlers = self.plans.stages.get(stage, _NO_RULES)
        first = self.carrier._call(_dre.start_action_for_state, state)
        message = first[1] if first else None
        while message:
            for name, given in orjson.loads(message).items():
                if not isinstance(given, dict):
                    # A counted rule's batch of matches (`shares` keeps them out): durable_rules
                    # counts across the session, so its matches could be of several cases.
                    raise EngineError.single(
                        "engine_failed",
                        f"rule `{name}` gave a batch of matches in a shared session",
                    )
                matched = given
                # The case whose facts the firing matched: every one of them is of that case
                # (every rule joins its patterns on the case key, `render`).
                facts = iter(matched.values())
                key = next(facts, _NO_CASE).get(CASE_KEY)
                for fact in facts:
                    if fact.get(CASE_KEY) != key:
                        self.carrier.mixed(name)
                case = cases.get(str(key))
                if case is None:
                    self.carrier.mixed(name)
                handler = handlers.get(name)
                if handler is None:
                    case.misfired(name)
                case.trace.firings += 1
                self.fired = True
                handler(case, matched)
            try:  # as `_call`, inline: once per firing
                message = _dre.complete_and_start_action(handle, state)
            except Exception as error:
                raise EngineError.single(
                    "engine_failed", f"durable_rules failed: {error}"
                ) from error

    def close(self) -> bool:
        """Delete the session when that is safe (`_close`); return False when it is left."""
        safe = self.complete and not self.carrier.poisoned and self.fired
        return _close(self.handle, self.sid, safe=safe)


def _own(fact: Mapping[str, Any]) -> dict[str, Any]:
    """A fact queued in a shared session as a session of one case queues it: without the case
    key, under its own id."""
    out = {key: value for key, value in fact.items() if key != CASE_KEY}
    if KEY in out:
        out["id"] = out[KEY]
    return out


def _ids(matched: Mapping[str, Any]) -> dict[str, str]:
    """The ids of the facts a firing matched, by alias (the stage marker is no evidence)."""
    # a loop, not a comprehension: no frame of its own, once or twice per firing
    ids = {}
    for alias, f in matched.items():
        if alias != "stage":
            ids[alias] = str(f.get(KEY))
    return ids


def _node_fact(
    kind: str, node: str, value: int, keys: tuple[str, ...], source: str | None
) -> dict[str, Any]:
    """A node's value (VAL) or one candidate's (CAND) for the bound facts `keys`, decided by
    the fact `source`; the fields in the order the engine and decision assembly have them."""
    fact: dict[str, Any] = {"t": kind, "n": node, "v": value}
    if keys:  # most have none: no loop to set up
        for i, key in enumerate(keys, start=1):
            fact[f"k{i}"] = key
    if source is not None:
        fact["f"] = source
    return fact


# A rule's records (`Record`) as `_keep` reads them, worked out once per rule: the node values
# it keeps, as (node, value as the engine writes it, source alias), and the candidates, as
# (the text a candidate is seen under less its source's id, node, value, source alias).
_Kept = tuple[tuple[str, int, str | None], ...]
_Candidates = tuple[tuple[str, str, int, str | None], ...]


def _kept(records: tuple[Record, ...]) -> _Kept:
    return tuple((r.node, int(r.value), r.source) for r in records if not r.candidate)


def _candidates(records: tuple[Record, ...]) -> _Candidates:
    return tuple(
        (f"cand {r.node} ", r.node, int(r.value), r.source) for r in records if r.candidate
    )


def _keep(
    session: _Session,
    rule: str,
    kept: _Kept,
    candidates: _Candidates,
    ids: dict[str, str],
    keys: tuple[str, ...],
) -> None:
    """Keep the node values a folded rule's patterns establish for the bound facts `keys`,
    for evidence; nothing is asserted, so they cost no round trip. Two firings that disagree
    are an engine error. A value already kept is only compared: the fact is built the first
    time."""
    trace = session.trace
    values = trace.values
    for node, value, source in kept:
        key = (node, keys)
        existing = values.get(key)
        if existing is None:
            fact = _node_fact(VAL, node, value, keys, None if source is None else ids[source])
            values[key] = _emitted((fact, rule, ids))
        elif existing.fact["v"] != value:
            raise EngineError.single(
                "engine_failed", f"node `{node}` derived both {existing.fact['v']} and {value}"
            )
    for seen_as, node, value, source in candidates:
        fact_id = None if source is None else ids[source]
        seen = (f"{seen_as}{fact_id}", keys)
        if seen not in session.seen_facts:
            session.seen_facts.add(seen)
            fact = _node_fact(CAND, node, value, keys, fact_id)
            trace.candidates.append(_emitted((fact, rule, ids)))


def _on_status(rule: Rule, action: EmitStatus) -> _Handler:
    name, clause, asserted = rule.name, action.clause, action.asserted
    status = action.status.value
    records = bool(action.records)
    kept, candidates = _kept(action.records), _candidates(action.records)

    # `_keep`'s node values for a status rule (no bound keys), each with the key it is kept
    # under made once here: inlined below, as most firings of the bench are status firings.
    kept_at = tuple(((node, ()), node, value, source) for node, value, source in kept)

    def fire(session: _Session, matched: Mapping[str, Any]) -> None:
        ids = None
        trace = session.trace
        if records:
            # Every firing of a folded rule matched another candidate fact: record them all.
            ids = _ids(matched)
            values = trace.values
            for at, node, value, source in kept_at:  # as `_keep` does, for keys ()
                existing = values.get(at)
                if existing is None:
                    kept_fact: dict[str, Any] = {"t": VAL, "n": node, "v": value}
                    if source is not None:
                        kept_fact["f"] = ids[source]
                    values[at] = _emitted((kept_fact, name, ids))
                elif existing.fact["v"] != value:
                    raise EngineError.single(
                        "engine_failed",
                        f"node `{node}` derived both {existing.fact['v']} and {value}",
                    )
            if candidates:
                _keep(session, name, (), candidates, ids, ())
        statuses = trace.statuses
        existing = statuses.get(clause)
        if existing is not None:
            if existing.fact["status"] != status:
                raise EngineError.single(
                    "engine_failed",
                    f"clause `{clause}` derived both {existing.fact['status']} and {status}",
                )
            return
        fact = {"t": STATUS, "clause": clause, "status": status}
        if asserted:
            session._assert_plain(fact)
        else:  # no rule reads it (compiler `_unread`): numbered as if asserted, kept here
            fact["id"] = f"status{session.counter}"
            session.counter += 1
        statuses[clause] = _emitted((fact, name, _ids(matched) if ids is None else ids))

    return fire


def _on_value(rule: Rule, action: EmitValue) -> _Handler:
    name, kind, node, aliases, source = (
        rule.name,
        action.kind,
        action.node,
        action.keys,
        action.source,
    )
    value = int(action.value)
    records = bool(action.records)
    kept, candidates = _kept(action.records), _candidates(action.records)
    candidate = kind == CAND
    seen_as = f"cand {node} "  # as `_keep` sees a candidate, less its fact's id

    def fire(session: _Session, matched: Mapping[str, Any]) -> None:
        ids = _ids(matched)
        keys = tuple([ids[k] for k in aliases])
        if records:
            # Every firing of a folded rule matched another candidate fact: record them all.
            _keep(session, name, kept, candidates, ids, keys)
        fact_id = ids[source] if source is not None else None
        if candidate:
            seen = (f"{seen_as}{fact_id}", keys)
            earlier = session.candidate_values.get(seen)
            if earlier is not None:
                if earlier != value:
                    raise EngineError.single(
                        "engine_failed",
                        f"node `{node}` derived both {earlier} and {value} for fact `{fact_id}`",
                    )
                return
            session.candidate_values[seen] = value
            fact = _node_fact(kind, node, value, keys, fact_id)
            session._assert_plain(fact)
            session.trace.candidates.append(_emitted((fact, name, ids)))
            return
        values = session.trace.values
        at = (node, keys)
        existing = values.get(at)
        if existing is not None:
            if existing.fact["v"] != value:
                raise EngineError.single(
                    "engine_failed",
                    f"node `{node}` derived both {existing.fact['v']} and {value}"
                    + (f" for the bound facts {', '.join(keys)}" if keys else ""),
                )
            if "id" in existing.fact:  # asserted already (a kept record has no id)
                return
            # Only kept by a folded rule's records, never given to the engine: the rules that
            # read this value would wait for it in vain, so it is asserted now.
        fact = _node_fact(kind, node, value, keys, fact_id)
        session._assert_plain(fact)
        values[at] = _emitted((fact, name, ids))

    return fire


def _on_fact(rule: Rule, action: EmitFact) -> _Handler:
    name, fact_type = rule.name, action.fact
    # Per field of the derived fact: its constant, or the matched alias it is copied from and
    # (physical field of the matched fact, field of the derived fact) for each copied part.
    steps: list[tuple[str, Any, str | None, tuple[tuple[str, str], ...]]] = []
    for field_name, value in action.values.items():
        if isinstance(value, FromField):
            parts = tuple(
                (physical, field_name + physical[len(value.field) :])
                for physical in action.copy.get(field_name, (value.field,))
            )
            steps.append((field_name, None, f"b_{value.alias}", parts))
        else:
            steps.append((field_name, value, None, ()))
    aliases = {v.alias for v in action.values.values() if isinstance(v, FromField)}
    # orjson writes NaN and infinities as null; values copied from matched facts are never
    # those (the engine's JSON has none), constants could be: such a rule keeps json's text.
    exact = all(math.isfinite(v) for v in action.values.values() if isinstance(v, float))
    # Provenance: a fact whose values all come from one case fact keeps that fact's source.
    provenance = f"b_{next(iter(aliases))}" if len(aliases) == 1 else None

    def fire(session: _Session, matched: Mapping[str, Any]) -> None:
        fact: dict[str, Any] = {"t": fact_type}
        for field_name, value, bound, parts in steps:
            if bound is None:
                fact[field_name] = value
                continue
            source = matched[bound]
            for physical, out in parts:
                if physical in source:
                    fact[out] = source[physical]
        # Derived facts are a set: the same content derived twice (by two rules, or from two
        # case facts that say the same, e.g. one block listed twice) is one fact, so counting
        # derived facts counts distinct things.
        seen = (_content(fact, exact), ())
        if seen in session.seen_facts:
            return
        session.seen_facts.add(seen)
        if provenance is not None:
            src = matched[provenance].get("src")
            if src is not None:
                fact["src"] = src
        session._assert_derived(fact, derived=True)
        session.trace.derived.append(_emitted((fact, name, _ids(matched))))

    return fire


def _content(fact: Mapping[str, Any], exact: bool) -> str:
    """The text a derived fact is told apart by (derived facts are a set): its JSON with
    sorted keys, written by orjson (about ten times faster than json.dumps) when `exact`;
    by json.dumps, a text of another form that never equals one of orjson's, for what
    orjson cannot write (an integer past 64 bits, a lone surrogate) or writes as another
    value (NaN and infinities as null)."""
    if exact:
        with contextlib.suppress(orjson.JSONEncodeError):
            return f"fact {orjson.dumps(fact, option=orjson.OPT_SORT_KEYS).decode()}"
    return f"fact~ {json.dumps(fact, sort_keys=True)}"


def _on_pair(_rule: Rule, action: EmitPair) -> _Handler:
    """Copy two bound facts' fields into one pair fact; the engine compares them there."""
    node, aliases, fields = action.node, action.keys, action.fields
    kind = f"pair {node}"

    def fire(session: _Session, matched: Mapping[str, Any]) -> None:
        ids = _ids(matched)
        keys = tuple([ids[k] for k in aliases])
        seen = (kind, keys)
        if seen in session.seen_facts:
            return
        session.seen_facts.add(seen)
        fact: dict[str, Any] = {"t": PAIR, "n": node}
        for i, key in enumerate(keys, start=1):
            fact[f"k{i}"] = key
        for field_name, alias, physical in fields:
            if physical in matched[alias]:
                fact[field_name] = matched[alias][physical]
        session._assert_derived(fact)

    return fire


def _on_verdict(_rule: Rule, action: EmitVerdict) -> _Handler:
    determination = action.determination

    def fire(session: _Session, _matched: Mapping[str, Any]) -> None:
        trace = session.trace
        if trace.verdict not in (None, determination):
            raise EngineError.single("engine_failed", "two determinations were derived")
        trace.verdict = determination

    return fire


def _on_missing(_rule: Rule, action: EmitMissing) -> _Handler:
    def fire(_session: _Session, matched: Mapping[str, Any]) -> None:
        ids = _ids(matched)
        bound = ", ".join(
            f"{alias}={ids[key]}" for alias, key in zip(action.aliases, action.keys, strict=True)
        )
        fact = f" for fact `{ids[action.source]}`" if action.source else ""
        raise EngineError.single(
            "engine_incomplete",
            f"node `{action.node}` got no value{fact}"
            + (f" with {bound}" if bound else "")
            + "; the rules did not decide it, so there is no determination",
        )

    return fire


def _on_unknown(rule: Rule, _action: Any) -> _Handler:
    def fire(_session: _Session, _matched: Mapping[str, Any]) -> None:
        # an action this module does not know derives nothing: never a quiet skip
        raise EngineError.single(
            "engine_failed", f"rule `{rule.name}` has an action the engine cannot run"
        )

    return fire


# The handler factory for each kind of action (`_plans`); any other kind gets `_on_unknown`.
_HANDLERS: dict[type, Callable[[Rule, Any], _Handler]] = {
    EmitValue: _on_value,
    EmitFact: _on_fact,
    EmitPair: _on_pair,
    EmitStatus: _on_status,
    EmitMissing: _on_missing,
    EmitVerdict: _on_verdict,
}


def _sid_hash(sid: str) -> int:
    """What durable_rules finds a session by: the 32-bit FNV-1a hash of its id, compared alone
    (state.c `fnv1Hash32`, `getStateNode`)."""
    hashed = 0x811C9DC5
    for byte in sid.encode():
        hashed = ((hashed ^ byte) * 0x01000193) & 0xFFFFFFFF
    return hashed


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
    # A session deleted here ran every action it was given (complete), so none is pending
    # (trap 13). A failed one's pending actions are not dropped first: `abandon_action` only
    # frees an action's message, `start_action_for_state` then hands out the same action
    # again, and a loop abandoning them until none was left never ended (stop 21).
    if not safe:
        return False
    with contextlib.suppress(Exception):
        _dre.delete_state(handle, sid)
    return True


__all__ = ["Emitted", "Engine", "Firing", "Trace"]
