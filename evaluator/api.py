"""The public API: what the CLI (and any other caller) uses. Read, compile, run, assemble."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from evaluator.case import cases
from evaluator.case.cases import Case, ServiceLine
from evaluator.case.facts import FactValue
from evaluator.compile import program_cache
from evaluator.compile.program import POLICY_RESULT, Program
from evaluator.decide import alternatives, records
from evaluator.decide.decision import X12_ACTIONS, Decision, assemble, policy_key, verdict
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import (
    CaseError,
    EngineError,
    InputError,
    Location,
    NecessityError,
    PolicyError,
    PolicyNotFoundError,
    Problem,
    SourceError,
)
from evaluator.language import modules, policies
from evaluator.language.model import Determination, Policy, Procedure
from evaluator.language.policies import Library, PolicyRef
from evaluator.read import resources, schemas, source

_PROGRAMS: dict[str, Program] = {}


def program_for(policy: Policy) -> Program:
    """Return the compiled Program of a policy, compiling it once per content hash (and, with
    the disk cache, once per content across processes: compile/program_cache.py)."""
    key = policy_key(policy)
    if key not in _PROGRAMS:
        stored = program_cache.key(policy)
        program = None if stored is None else program_cache.load(stored)
        if program is None:
            program = _compiled(policy)
            if stored is not None:
                program_cache.store(stored, program)
        else:
            # the other policies' files are not in the key: check them as a compile would
            _check_reference_cycles(policy, program)
            try:
                Engine.get().prepare(program)
            except PolicyError:
                # not what this engine registered when the entry was written: compile anew,
                # which reports the limit if there is one
                program = _compiled(policy)
        _PROGRAMS[key] = program
    return _PROGRAMS[key]


def _compiled(policy: Policy) -> Program:
    """Compile a policy and register it with the engine."""
    # only a process that misses the program cache imports the compiler
    from evaluator.compile.compiler import compile_policy  # noqa: PLC0415

    program = compile_policy(policy)
    _check_reference_cycles(policy, program)
    # Registering is the engine's own limit check: a policy it refuses is a PolicyError now,
    # not an engine failure on the first case.
    try:
        Engine.get().prepare(program)
    except PolicyError:
        # Folded rules test more per fact than the per-node lowering; a limit only
        # registration finds (error 113) sends the policy back to the per-node lowering,
        # which reports its own limits as before.
        program = compile_policy(policy, fold=False)
        Engine.get().prepare(program)
    return program


def evaluate(
    case: Case,
    policy: Policy,
    lines: Iterable[str] | None = None,
    *,
    explain: bool = False,
    alternative: bool = True,
) -> Decision:
    """Return the decision of one policy on one case; with `explain`, its firing trace too.

    The policy judges `lines` (by default every line it governs). It sees the facts about the
    patient, the facts of those lines, and the facts of the lines whose procedure kind it
    governs or names under `reads` (the lines of one case are one operation); facts of other
    lines are left out. Both ways of asking (one policy, or every line) therefore give it the
    same facts. A policy that refers to another's determination (`{policy: id, is: ...}`) gets
    it as a fact: the referenced policy in force on the date of service (else the request
    date), from the same folder, is evaluated first on those same facts. The policy's
    alternative, if any, is evaluated as a request of its own (not with `alternative=False`,
    which that inner evaluation uses).
    Raises PolicyError if the policy does not compile or its references form a cycle, and
    EngineError if the engine fails (for the referenced policy too).
    """
    policy, facts = _seen(case, policy, lines)
    return _evaluate(case, policy, facts, (), explain=explain, alternative=alternative)


def _seen(
    case: Case, policy: Policy, lines: Iterable[str] | None
) -> tuple[Policy, list[dict[str, FactValue]]]:
    """Return the policy as the case's plan applies it and the case facts it sees."""
    policy = with_plan(case, policy)
    facts = facts_for(case, policy, lines)
    # The decision's provenance hashes the case's facts once per Case object: when the policy
    # sees every fact, these are the dicts that hash would make (`records.case_digest`).
    records.case_digest(case, facts)
    return policy, facts


_EFFECTIVE: dict[tuple[str, str, str], Policy] = {}


def planned_policy(library: Library, ref: PolicyRef, plan_id: str) -> Policy:
    """Return the effective policy of a plan overlay (`show --plan`): the named version, else
    the version the plan is pinned to, else the newest active one, with the overlay applied.

    Raises PolicyNotFoundError for an unknown policy, version or plan, and PolicyError for an
    overlay that does not fit.
    """
    from evaluator.language import plans  # noqa: PLC0415  (only a case or command with a plan)

    base = library.get(ref)
    path = plans.find(base, plan_id)
    if path is None:
        raise PolicyNotFoundError.single(
            "unknown_plan",
            f"policy `{ref.id}` has no plan overlay `{plan_id}`",
            Location(str(Path(base.path).parent / plans.FOLDER)),
        )
    plan = plans.load_plan(path)
    if ref.version is None and plan.base_version is not None:
        base = library.get(PolicyRef(ref.id, plan.base_version))
    return policies.with_plan(base, plan)


def with_plan(case: Case, policy: Policy) -> Policy:
    """Return the policy as the case's plan applies it (`request.plan`; plans.py).

    A policy with no overlay of that name applies as it is; a plan that no policy has is a
    CaseError (`unknown_plan`), never silently the base. A policy already effective is
    returned as it is. Raises PolicyError for an overlay that does not fit the version.
    """
    if case.plan is None or policy.plan is not None:
        return policy
    # a cold `evaluate` of a case without a plan does not import plans (its Plan class costs
    # the import a millisecond)
    from evaluator.language import plans  # noqa: PLC0415

    path = plans.find(policy, case.plan)
    if path is None:
        if not plans.known(policy, case.plan):
            raise plans.unknown_plan(case.plan, case.location("/request/plan"))
        return policy
    plan = plans.load_plan(path)
    key = (policy.path, policy.content_sha256, plan.sha256)
    if key not in _EFFECTIVE:
        _EFFECTIVE[key] = policies.with_plan(policy, plan)
    return _EFFECTIVE[key]


def _evaluate(
    case: Case,
    policy: Policy,
    seen: list[dict[str, FactValue]],
    chain: tuple[str, ...],
    *,
    explain: bool,
    alternative: bool,
) -> Decision:
    program, facts = _given(case, policy, seen, chain)
    trace = Engine.get().run(program, facts, trace=explain)
    return _decide(case, policy, program, facts, trace, explain=explain, alternative=alternative)


def _given(
    case: Case, policy: Policy, seen: list[dict[str, FactValue]], chain: tuple[str, ...]
) -> tuple[Program, list[dict[str, FactValue]]]:
    """Return the policy's program and the facts the engine gets: those it sees and the
    determinations of the policies it refers to."""
    program = program_for(policy)
    return program, [*seen, *_policy_results(case, policy, program, seen, (*chain, policy.id))]


def _decide(
    case: Case,
    policy: Policy,
    program: Program,
    facts: list[dict[str, FactValue]],
    trace: Trace,
    *,
    explain: bool,
    alternative: bool,
) -> Decision:
    """Return the decision assembled from what the engine derived for one case."""
    conflicts = [
        {"fact": c.fact, "field": c.field, "values": c.text, "reason": c.reason}
        for c in case.conflicts
    ]
    provenance = records.provenance(policy, case)
    decision = assemble(policy, program, trace, case.case_id, facts, conflicts, provenance)
    if explain:
        # only a process asked to explain imports the explainer (a cold `evaluate` does not)
        from evaluator.decide.explain import explain as explain_trace  # noqa: PLC0415

        summary = decision.alternative.summary if decision.alternative else None
        explanation = explain_trace(policy, program, trace, facts, summary)
        decision = replace(decision, explanation=explanation)
    if decision.alternative is None:
        return decision
    scope = alternatives.with_codes(case, policy, decision.alternative)
    own = {p.procedure for p in policy.procedures}
    # A scope with no procedure this policy governs is not this policy's to certify.
    if alternative and any(x.procedure in own for x in scope.lines):
        # The alternative is evaluated, not assumed: its own determination decides whether it
        # is offered (A6), pended for documents, or not offered.
        narrower = alternatives.request(case, policy, scope)
        scope = replace(scope, decision=evaluate(narrower, policy, alternative=False))
    return replace(decision, alternative=scope)


def facts_for(
    case: Case, policy: Policy, lines: Iterable[str] | None = None
) -> list[dict[str, FactValue]]:
    """Return the facts `policy` reads in `case` (see `evaluate`)."""
    judged = {line.id for line in case.lines if governs(policy, line)}
    judged.update(lines or ())
    read = set(policy.reads)
    keep = judged | {line.id for line in case.lines if line.procedure in read}
    return [
        f.as_dict()
        for f in case.facts
        if (line := f.fields.get("line", _NO_LINE)) is _NO_LINE or line in keep
    ]


# A fact of no line (a field is never None, but no value at all can be mistaken for this).
_NO_LINE = object()


def _libraries(policy: Policy) -> list[Library]:
    # The policy's own folder first; a policy copied out of its library (a scratch copy for
    # impact or a git revision for diff) still finds the bundled policies. The process's one
    # Library per folder: the CLI's (bundled) Library is the same, so a referenced policy the
    # case's lines also need is read and built once.
    # absolute first: a relative path names another file once the working folder changes
    return [Library.shared(root) for root in _library_roots(os.path.abspath(policy.path))]


@functools.lru_cache(maxsize=256)
def _library_roots(path: str) -> tuple[Path, ...]:
    """Return the folders `_libraries` looks in for a policy file's references, worked out
    once per file (bounded: scratch copies come and go), not for every referenced evaluation:
    resolving a path and finding the bundled folder ask the file system each time. The folders,
    not their Libraries: `Library.shared` stays the one keeper of those."""
    return tuple(dict.fromkeys((Path(path).resolve().parent.parent, resources.policies_dir())))


def _check_reference_cycles(policy: Policy, program: Program) -> None:
    """Raise PolicyError (`reference_cycle`) when the policies `program` refers to refer back
    to it, through any of their versions: whichever versions are in force on a line's date,
    none could be evaluated first, so such a policy does not compile. Unknown ids are left to
    evaluation (`unknown_policy_reference`)."""
    if not program.references:
        return
    libraries = _libraries(policy)
    refers: dict[str, set[str]] = {}
    pending = list(program.references)
    while pending:
        pid = pending.pop()
        if pid in refers:
            continue
        refers[pid] = set()
        library = next((lib for lib in libraries if pid in lib.ids()), None)
        if library is None or pid == policy.id:
            continue
        try:
            versions = library.versions(pid)
        except PolicyError:
            continue  # overlapping windows: reported when the policy is chosen
        for version in versions:
            refers[pid].update(r.policy for r in policies.policy_references(version))
        pending.extend(refers[pid])
    refers[policy.id] = set(program.references)
    problems = [
        Problem("reference_cycle", message, policy.locate(ref.pointer), hint)
        for ref, message, hint in policies.reference_cycles(policy, refers)
    ]
    if problems:
        raise PolicyError(problems)


def _policy_results(
    case: Case,
    policy: Policy,
    program: Program,
    seen: list[dict[str, FactValue]],
    chain: tuple[str, ...],
) -> list[dict[str, FactValue]]:
    """Return the determinations of the policies `program` refers to, one fact each.

    A referenced policy judges the facts the referring one sees (`seen`): the same lines and
    the lines it reads, so that a fusion policy's SI-joint route is decided on the SI-joint
    line the fusion policy reads, not on lines the referenced policy happens to govern.
    Only its determination is used, so its alternative is not evaluated.
    A referenced policy with no version in force gives no fact, so the reference stays
    unknown and demonstrates nothing; an unknown policy id or a cycle is a PolicyError.
    """
    if not program.references:
        return []
    libraries = _libraries(policy)
    results: list[dict[str, FactValue]] = []
    for ref in program.references:
        if ref in chain:
            cycle = " -> ".join([*chain[chain.index(ref) :], ref])
            raise PolicyError.single(
                "reference_cycle",
                f"policies refer to their own determinations: {cycle}",
                Location(policy.path),
            )
        library = next((lib for lib in libraries if ref in lib.ids()), libraries[0])
        try:
            # the version in force for the lines: on the date of service, else the request date
            referenced = with_plan(case, library.get(ref, case.in_force_date))
        except PolicyNotFoundError as error:
            if error.code == "no_version_in_force":
                continue
            raise PolicyError.single(
                "unknown_policy_reference",
                f"policy `{policy.id}` refers to the determination of unknown policy `{ref}`",
                Location(policy.path),
            ) from error
        determination = _determination(case, referenced, seen, chain)
        results.append(
            {
                "t": POLICY_RESULT,
                "id": f"{POLICY_RESULT}:{ref}",
                "policy": ref,
                "version": referenced.version,
                "determination": determination.value,
            }
        )
    return results


def _determination(
    case: Case, policy: Policy, seen: list[dict[str, FactValue]], chain: tuple[str, ...]
) -> Determination:
    """Return the determination of a referenced policy on the facts the referring one sees:
    the engine's verdict, checked as a decision's assembly checks it (`decision.verdict`),
    without the evidence and texts nobody reads."""
    program = program_for(policy)
    facts = [*seen, *_policy_results(case, policy, program, seen, (*chain, policy.id))]
    return verdict(policy, program, Engine.get().run(program, facts))


def select_policy(case: Case, ref: str | None, library: Library) -> Policy:
    """Return the named policy (without a version: the one in force on the request date), or
    without a name the policy that governs the case's first governed service line.

    Raises PolicyNotFoundError when the name is unknown or no policy governs any line, and
    CaseError when a line bills a code of a procedure its policy does not judge (named or not).
    """
    chosen = _governing(case, library)  # raises on a line billing a foreign code, named or not
    if ref is not None:
        parsed = PolicyRef.parse(ref)
        return library.get(parsed, None if parsed.version else case.in_force_date)
    governing = [p for p in chosen.values() if p is not None]
    if governing:
        return governing[0]
    procedures = ", ".join(sorted({line.procedure for line in case.lines}))
    raise PolicyNotFoundError.single(
        "no_policy_for_case",
        f"no policy governs the requested procedures ({procedures})",
        Location(case.path),
        "name one with --policy",
    )


def _governing(case: Case, library: Library) -> dict[str, Policy | None]:
    """Return, per service line, the policy in force on the request date that governs it.

    Every policy's versions are read and checked (schema, place, overlapping windows) as
    `Library.get` does, but only the versions that govern a line are built: a case of one
    procedure does not build the library's other policies.
    """
    in_force: list[Path] = []
    for policy_id in library.ids():
        try:
            in_force.append(library.chosen(policy_id, case.in_force_date))
        except PolicyNotFoundError:
            continue  # no version of this policy is in force on the request date
    dated = [library.dated(p) for p in in_force]
    chosen: dict[str, Policy | None] = {}
    for index, line in enumerate(case.lines):
        found = next(
            ((p, d) for p, d in zip(in_force, dated, strict=True) if governs(d, line)), None
        )
        _check_codes(case, index, line, None if found is None else found[1], dated)
        chosen[line.id] = None if found is None else library.load(found[0])
    return chosen


def _check_codes(
    case: Case,
    index: int,
    line: ServiceLine,
    policy: policies.Dated | None,
    in_force: list[policies.Dated],
) -> None:
    """Raise CaseError when the line bills a code that a policy in force lists for another
    procedure than the one judging the line (or one it includes): certifying the line
    certifies its codes, so a decompression line billing a fusion code, or a lumbar fusion
    billing an SI-joint fusion, was approved on criteria that never judged that code. A line
    of kind `other` billing the codes of two procedures is refused likewise, rather than
    judged by whichever policy comes first."""
    if policy is None:
        return
    judged = {p.procedure for p in policy.procedures if governs_kind(p, line)}
    allowed = judged.union(*(p.includes for p in policy.procedures if p.procedure in judged))
    for position, code in enumerate(line.cpts):
        for other in in_force:
            for procedure in other.procedures:
                if code in procedure.cpt and procedure.procedure not in allowed:
                    raise CaseError.single(
                        "foreign_code",
                        f"service line `{line.id}` is judged as {', '.join(sorted(judged))} "
                        f"by `{policy.ref}` but bills CPT {code}, which `{other.ref}` lists "
                        f"for {procedure.procedure}",
                        case.location(f"/request/lines/{index}/cpt/{position}"),
                        f"request the {procedure.procedure} on a line of its own",
                    )


def governs_kind(procedure: Procedure, line: ServiceLine) -> bool:
    """True when ``procedure`` (one of a policy's) is what the line requests: its kind, or
    for a line of kind `other` one of its codes."""
    if line.procedure != "other":
        return procedure.procedure == line.procedure
    return bool(set(procedure.cpt) & set(line.cpts))


class Overall(StrEnum):
    """The summary over service lines (X12 278 HCR01; the roll-up is `CaseReview.overall`)."""

    MEDICALLY_NECESSARY = "medically_necessary"
    PARTIALLY_MEDICALLY_NECESSARY = "partially_medically_necessary"
    MODIFIED = "modified"
    NOT_MEDICALLY_NECESSARY = "not_medically_necessary"
    INSUFFICIENT_DOCUMENTATION = "insufficient_documentation"
    NO_POLICY = "no_policy"


OVERALL_X12 = {
    Overall.MEDICALLY_NECESSARY: "A1",
    Overall.PARTIALLY_MEDICALLY_NECESSARY: "A2",
    Overall.NOT_MEDICALLY_NECESSARY: "A3",
    Overall.INSUFFICIENT_DOCUMENTATION: "A4",
    Overall.NO_POLICY: "A4",
    Overall.MODIFIED: "A6",
}
PENDED = "A4"
CERTIFIED = "A1"


@dataclass(frozen=True)
class LineResult:
    """One service line: the policy that governs it and its decision (None: no policy does)."""

    line: ServiceLine
    policy: Policy | None
    decision: Decision | None

    @property
    def determination(self) -> str:
        return self.decision.determination.value if self.decision else Overall.NO_POLICY.value

    @property
    def x12_action(self) -> str:
        """The line's X12 action: its decision's, except that a modified approval (A6) is offered
        only on a line its alternative names a scope on; a line the alternative leaves out
        entirely takes its determination's action (domain.md section 4)."""
        decision = self.decision
        if decision is None:
            return OVERALL_X12[Overall.NO_POLICY]
        action = decision.x12_action
        alternative = decision.alternative
        if action == "A6" and (
            alternative is None or all(part.line != self.line.id for part in alternative.lines)
        ):
            return X12_ACTIONS[decision.determination]
        return action


@dataclass(frozen=True)
class CaseReview:
    """A whole request: one result per service line and the overall summary."""

    case_id: str
    request_date: str
    lines: tuple[LineResult, ...]

    @property
    def overall(self) -> Overall:
        """Roll the lines' X12 actions up (domain.md section 4): pended (A4) while any line is
        pended, a line no policy governs included; A1 when every line is certified; A3 when
        every line is not certified; A2 when some line is certified and another is not
        certified or modified; otherwise (lines modified, none certified) A6."""
        actions = [line.x12_action for line in self.lines]
        if PENDED in actions:
            determinations = {line.determination for line in self.lines}
            if Determination.INSUFFICIENT_DOCUMENTATION.value in determinations:
                return Overall.INSUFFICIENT_DOCUMENTATION
            return Overall.NO_POLICY
        if all(a == CERTIFIED for a in actions):
            return Overall.MEDICALLY_NECESSARY
        if all(a == "A3" for a in actions):
            return Overall.NOT_MEDICALLY_NECESSARY
        if CERTIFIED in actions:
            return Overall.PARTIALLY_MEDICALLY_NECESSARY
        return Overall.MODIFIED

    @property
    def x12_action(self) -> str:
        return OVERALL_X12[self.overall]


def governs(policy: Policy | policies.Dated, line: ServiceLine) -> bool:
    """True when the policy governs the line's procedure kind.

    CPT codes decide only for a line of kind `other`: a fusion line billed with a decompression
    code (22612 + 63047) is still a fusion and must meet the fusion criteria.
    """
    return any(governs_kind(p, line) for p in policy.procedures)


def review_case(case: Case, library: Library, *, explain: bool = False) -> CaseReview:
    """Return one result per service line, each from the policy in force on the request date
    that governs the line's procedure; a line no policy governs is reported as such.

    Raises PolicyError, PolicyNotFoundError or EngineError; a policy is evaluated once even
    when it governs several lines.
    """
    chosen = _governing(case, library)
    decisions: dict[str, Decision] = {}
    results = []
    for line in case.lines:
        policy = chosen[line.id]
        decision = None
        if policy is not None:
            if policy.ref not in decisions:
                governed = [i for i, p in chosen.items() if p is not None and p.ref == policy.ref]
                decisions[policy.ref] = evaluate(case, policy, governed, explain=explain)
            decision = decisions[policy.ref]
        results.append(LineResult(line, policy, decision))
    return CaseReview(case.case_id, case.request_date.text, tuple(results))


def review_many(
    cases: Sequence[Case], library: Library
) -> list[CaseReview | NecessityError | Exception]:
    """Return `review_case` of each case, or the exception it raises, so that one case's
    error is that case's alone.

    Batch mode: each case's policies are chosen and their facts gathered first, then each
    program's cases go to the engine together (`Engine.run_many`: a small program's cases
    share sessions, each stage of several cases in one call), then each decision is
    assembled. A case's error is the one `review_case` raises: the first one met going
    through its policies in line order (choosing, gathering, running, assembling).
    """
    engine = Engine.get()
    results: list[CaseReview | NecessityError | Exception] = []
    # A group at a time, as many as one engine session takes: a case's facts and trace are
    # garbage soon after, as when the cases go one by one (more live objects, more GC).
    size = engine.CASES_PER_BATCH
    for start in range(0, len(cases), size):
        steps = [_Review(case) for case in cases[start : start + size]]
        for step in steps:
            step.plan(library)
        _run_together(engine, [e for step in steps for e in step.evaluations])
        results += [step.finish() for step in steps]
    return results


def evaluate_many(chosen: Sequence[tuple[Case, Policy]]) -> list[Decision | Exception]:
    """Return `evaluate(case, policy)` of each case with the policy chosen for it, or the
    exception it raises, so that one case's error is that case's alone.

    Batch mode, as `review_many` (`batch --policy`): every case's facts are gathered first,
    then each program's cases go to the engine together (`Engine.run_many`), then each
    decision is assembled.
    """
    engine = Engine.get()
    results: list[Decision | Exception] = []
    size = engine.CASES_PER_BATCH
    for start in range(0, len(chosen), size):
        group = chosen[start : start + size]
        gathered: list[_Evaluation | Exception] = []
        for case, policy in group:
            try:
                effective, seen = _seen(case, policy, None)
                program, facts = _given(case, effective, seen, ())
            except Exception as error:  # the case's own to report
                gathered.append(error)
            else:
                gathered.append(_Evaluation(policy.ref, effective, program, facts))
        _run_together(engine, [e for e in gathered if isinstance(e, _Evaluation)])
        results += [
            e if isinstance(e, Exception) else _decided(case, e)
            for (case, _), e in zip(group, gathered, strict=True)
        ]
    return results


def _run_together(engine: Engine, evaluations: list[_Evaluation]) -> None:
    """Give each evaluation its trace (or the Exception in its place), each program's cases
    run together (`Engine.run_many`), in the order given."""
    waiting: dict[str, tuple[Program, list[_Evaluation]]] = {}
    for evaluation in evaluations:
        program = evaluation.program
        waiting.setdefault(program.name, (program, []))[1].append(evaluation)
    for program, together in waiting.values():
        try:
            traces = engine.run_many(program, [e.facts for e in together])
        except Exception as error:  # the program cannot run: every case of it fails
            traces = [error] * len(together)
        for evaluation, trace in zip(together, traces, strict=True):
            evaluation.trace = trace


def _decided(case: Case, evaluation: _Evaluation) -> Decision | Exception:
    """Return the decision assembled from an evaluation's trace, or the exception in its way."""
    try:
        return _assembled(case, evaluation)
    except Exception as error:  # the case's own to report
        return error


def _assembled(case: Case, evaluation: _Evaluation) -> Decision:
    trace = evaluation.trace
    if isinstance(trace, Exception):
        raise trace
    if trace is None:  # never left unset by `_run_together`: fail, never default
        raise EngineError.single("engine_failed", "the engine did not run the case")
    return _decide(
        case,
        evaluation.policy,
        evaluation.program,
        evaluation.facts,
        trace,
        explain=False,
        alternative=True,
    )


@dataclass(eq=False)
class _Evaluation:
    """One policy's evaluation of one case in `review_many` or `evaluate_many`: what the engine
    gets and gives."""

    ref: str  # the governing policy's, as `review_case` keys its decisions
    policy: Policy
    program: Program
    facts: list[dict[str, FactValue]]
    trace: Trace | Exception | None = None


@dataclass(eq=False)
class _Review:
    """One case of `review_many`, in the order `review_case` goes: its policies' evaluations
    (in line order), and the error that stopped the gathering of the next one, if any."""

    case: Case
    chosen: dict[str, Policy | None] = field(default_factory=dict)
    evaluations: list[_Evaluation] = field(default_factory=list)
    error: Exception | None = None

    def plan(self, library: Library) -> None:
        case = self.case
        try:
            self.chosen = chosen = _governing(case, library)
            refs: set[str] = set()
            for line in case.lines:
                policy = chosen[line.id]
                if policy is None or policy.ref in refs:
                    continue
                refs.add(policy.ref)
                governed = [i for i, p in chosen.items() if p is not None and p.ref == policy.ref]
                effective, seen = _seen(case, policy, governed)
                program, facts = _given(case, effective, seen, ())
                self.evaluations.append(_Evaluation(policy.ref, effective, program, facts))
        except Exception as error:  # the case's own to report, after its earlier policies'
            self.error = error

    def finish(self) -> CaseReview | Exception:
        case = self.case
        decisions: list[Decision] = []
        try:
            for evaluation in self.evaluations:
                decisions.append(_assembled(case, evaluation))
            if self.error is not None:
                raise self.error
        except Exception as error:  # the case's own to report
            return error
        by_ref = dict(zip((e.ref for e in self.evaluations), decisions, strict=True))
        results = []
        for line in case.lines:
            policy = self.chosen[line.id]
            decision = None if policy is None else by_ref[policy.ref]
            results.append(LineResult(line, policy, decision))
        return CaseReview(case.case_id, case.request_date.text, tuple(results))


def review_path(path: str | Path, library: Library | None = None) -> CaseReview:
    """Return the per-line review of a case file; see `review_case`."""
    return review_case(cases.load_case(path), library or Library())


def evaluate_path(
    path: str | Path, policy: str | None = None, library: Library | None = None
) -> Decision:
    """Return the decision for a case file; see `select_policy` for the policy chosen."""
    library = library or Library()
    case = cases.load_case(path)
    return evaluate(case, select_policy(case, policy, library))


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, eq=False, repr=False)
class Checked:
    """One file `validate` looked at: its kind and whether it passed."""

    path: str
    kind: str
    error: InputError | None


def _check_plan(path: Path) -> None:
    from evaluator.language import plans  # noqa: PLC0415  (see with_plan)

    # the base versions from the plan's own library (policies/<id>/plans/<plan>.yaml)
    plan = plans.load_plan(path)
    library = Library.shared(path.resolve().parents[2])
    found = library.versions(plan.base_policy) if plan.base_policy in library.ids() else []
    bases = plans.bases(plan, found)
    if not bases:
        raise PolicyError([plans.missing_base(plan)])
    for base in bases:
        program_for(policies.with_plan(base, plan))


def _kind(path: Path, document: source.Document) -> str:
    data = document.data
    if isinstance(data, dict) and "module" in data and "sections" not in data:
        return "module"
    if isinstance(data, dict) and "plan" in data and "base" in data:
        return "plan"
    if path.suffix in (".yaml", ".yml") and path.parent.parent.name == "policies":
        return "policy"
    if isinstance(document.data, dict) and "sections" in document.data:
        return "policy"
    if isinstance(document.data, dict) and "tests" in document.data:
        return "policy-test"
    if _is_bundle(document.data):
        return "fhir-bundle"
    return "case"


def _check_siblings(policy: Policy, path: Path) -> None:
    # Two versions in force on one day make the choice depend on file order: an error here as
    # wherever the library is loaded. Siblings that do not load are reported on their own.
    siblings = [policy]
    for other in sorted(path.parent.glob("*.yaml")):
        if other.resolve() != path.resolve():
            try:
                sibling = policies.load_policy(other)
            except InputError:
                continue
            if sibling.id == policy.id:
                siblings.append(sibling)
    pairs = [(a, b) for a, b in policies.window_overlaps(siblings) if policy is a or policy is b]
    if pairs:
        raise PolicyError([policies.overlap_problem(a, b, policy) for a, b in pairs])


def validate_paths(paths: Iterable[str | Path]) -> list[Checked]:
    """Validate policy and case files (folders are searched); return one result per file.

    `-` is standard input, read once. A policy is also compiled, so every problem the engine
    would meet is reported here.
    """
    results = []
    for path in source.find_files(paths):
        name = source.STDIN_NAME if str(path) == source.STDIN else str(path)
        try:
            document = source.load(path)
            kind = _kind(path, document)
            if kind == "policy":
                if name == source.STDIN_NAME:
                    schemas.validate(document, policies.POLICY_SCHEMA)
                    program_for(policies.build_policy(document))
                else:
                    policy = policies.load_policy(path)
                    program_for(policy)
                    _check_siblings(policy, path)
            elif kind == "module":
                modules.check_file(path)
            elif kind == "plan":
                _check_plan(Path(path))
            elif kind == "case":
                cases.case_from_document(document)
            elif kind == "fhir-bundle":
                request_from_document(document)
            else:
                schemas.validate(document, kind)
            results.append(Checked(name, kind, None))
        except InputError as error:
            results.append(Checked(name, "file", error))
    return results


def policy_history(policy_id: str, library: Library | None = None) -> list[Policy]:
    """Return every version of a policy, oldest first.

    Raises PolicyNotFoundError for an unknown id and PolicyError when windows overlap.
    """
    library = library or Library()
    if policy_id not in library.ids():
        library.get(policy_id)  # raises the unknown-policy error naming the known ones
    return library.versions(policy_id)


def list_policies(library: Library | None = None) -> list[Policy]:
    """Return every policy version in the library, sorted by id then version."""
    return (library or Library()).all()


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, eq=False, repr=False)
class Request:
    """A case as submitted: from a case file, or mapped from a FHIR request Bundle, with what
    the mapping could not place (FHIRPath and message; empty for a case file)."""

    case: Case
    unmapped: tuple[tuple[str, str], ...] = ()


def _is_bundle(data: object) -> bool:
    """True for a document that is a FHIR Bundle (`resourceType: Bundle`); told here, not in
    case/from_fhir, which needs the optional service extra."""
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"


def request_from_document(document: source.Document) -> Request:
    """Return the case of a read document: a case file, or a FHIR Bundle (resourceType Bundle)
    mapped by evaluator.fhir, which needs the `service` extra.

    Raises the errors of `cases.case_from_document`, or SchemaError for an invalid Bundle.
    """
    data = document.data
    if _is_bundle(data):
        try:
            from evaluator.case.from_fhir import bundle_to_case  # noqa: PLC0415  (optional extra)
        except ImportError as error:
            raise SourceError.single(
                "fhir_unavailable",
                f"reading a FHIR Bundle needs the service extra ({error.name} is not installed)",
                Location(document.path),
                "pip install 'necessity[service]'",
            ) from None
        mapped = bundle_to_case(document)
        return Request(mapped.case, tuple((u.expression, u.message) for u in mapped.unmapped))
    return Request(cases.case_from_document(document))


def load_request(path: str | Path) -> Request:
    """Read a case file or a FHIR request Bundle; see `request_from_document`."""
    return request_from_document(source.load(path))
