"""The optional C speed-ups (``peephole.agent._speedups``) against their pure-Python parts.

Each C part must behave exactly as the Python code it replaces, so these tests run the two
side by side on the same inputs. The whole agent suite also runs once on 3.12 with
``PEEPHOLE_NO_SPEEDUPS=1`` (see dev.py), so the pure-Python parts stay tested end to end.
"""

from __future__ import annotations

import gc
import importlib
import os
import subprocess
import sys
import tracemalloc
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from peephole.agent import speedups
from peephole.agent.safe.expressions import EvaluationError, compile_expression
from peephole.agent.safe.redaction import Redactor

MONITORING = sys.version_info >= (3, 12)
needs_monitoring = pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
# 3.11's frames have no public way to read one variable; 3.13's f_locals is a view already.
FRAME_VARS = sys.version_info[:2] in ((3, 9), (3, 10), (3, 12))
needs_frame_vars = pytest.mark.skipif(not FRAME_VARS, reason="frame_vars: 3.9, 3.10, 3.12")


def _compiled() -> types.ModuleType:
    """The C module itself, whatever PEEPHOLE_NO_SPEEDUPS says: the tests' venvs build it."""
    return importlib.import_module("peephole.agent._speedups")


def test_the_c_parts_are_built_and_used_where_they_exist() -> None:
    """dev.py installs the agent with a C compiler present: a missing build is a failure
    here, not a silent fallback that would leave the C parts untested."""
    module = _compiled()
    assert hasattr(module, "InstructionCallback") is MONITORING
    assert hasattr(module, "frame_vars") is FRAME_VARS
    for name in speedups.__all__:
        if name == "DISABLED":
            continue
        expected = None if speedups.DISABLED else getattr(module, name, None)
        assert getattr(speedups, name) is expected, name
        if name not in ("InjectedCall", "InstructionCallback", "frame_vars"):  # on every version
            assert hasattr(module, name), name
    assert hasattr(module, "InjectedCall") is not MONITORING


def _keeps_no_reference(run: Callable[[int], None], watched: Tuple[Any, ...]) -> None:
    """``run(10_000)``, after a warm-up, leaves the watched objects' reference counts as they
    were: a reference a C part forgets to give back shows there."""
    run(100)
    gc.collect()
    before = [sys.getrefcount(item) for item in watched]
    run(10_000)
    gc.collect()
    assert [sys.getrefcount(item) for item in watched] == before


# --- frame_vars (3.9, 3.10, 3.12) -------------------------------------------------------------


def _frames() -> Iterator[Tuple[str, types.FrameType]]:
    """Frames in the states a probe meets: arguments, bound and unbound locals, a deleted
    local, cells before and after assignment, free variables, a generator, a class body."""
    captured: List[Tuple[str, types.FrameType]] = []

    def grab(label: str) -> None:
        captured.append((label, sys._getframe(1)))

    def plain(a: int, *rest: int, b: int = 2, **more: int) -> None:
        c = a + b
        grab("plain, c bound")
        d = c
        del d
        grab("plain, d deleted")
        e = [x for x in rest]  # 3.12 inlines it: x is a hidden local
        grab("plain, e bound")
        del e

    def cells() -> Callable[[], int]:
        grab("cells, unassigned")
        shared = 5

        def inner() -> int:
            grab("inner, free variable")
            return shared

        grab("cells, assigned")
        return inner

    def cell_argument(arg: int, other: int) -> Callable[[], int]:
        grab("cell argument")  # 3.9, 3.10: the argument's value lives in its cell
        return lambda: arg + other

    def generator(n: int) -> Iterator[int]:
        total = 0
        for step in range(n):
            total += step
            grab("generator")
            yield total

    plain(1, 2, 3, b=4, z=5)
    cells()()
    cell_argument(7, 8)()
    list(generator(2))

    class Body:
        attribute = 1
        grab("class body")

    return iter(captured)


NAMES = (
    "a b c d e x rest more shared inner n total step attribute grab len missing __name__ arg other"
)


@needs_frame_vars
def test_frame_vars_sees_what_f_locals_sees() -> None:
    frame_vars = _compiled().frame_vars
    for label, frame in _frames():
        view = frame_vars(frame)
        f_locals = frame.f_locals
        for name in NAMES.split():
            assert (name in view) is (name in f_locals), (label, name)
            if name in f_locals:
                assert view[name] is f_locals[name], (label, name)
            else:
                with pytest.raises(KeyError):
                    view[name]


@pytest.mark.skipif(not FRAME_VARS or MONITORING, reason="frame_vars reads slots on 3.9, 3.10")
def test_frame_vars_sees_names_written_into_f_locals() -> None:
    """A name that is no variable of the code but was written into f_locals (a debugger's
    ``frame.f_locals["x"] = 1``) stays there, and frame_vars finds it there too. (3.12's
    PyFrame_GetVar does not: a difference left as it is.)"""
    frame_vars = _compiled().frame_vars
    bound = 1
    frame = sys._getframe()
    frame.f_locals["written"] = 2
    view = frame_vars(frame)
    assert view["written"] == 2 and view["bound"] == bound and "absent" not in view


@needs_frame_vars
def test_frame_vars_refuses_keys_that_are_not_names() -> None:
    frame_vars = _compiled().frame_vars
    view = frame_vars(sys._getframe())
    assert 1 not in view
    assert ("a",) not in view
    with pytest.raises(KeyError):
        view[1]
    with pytest.raises(TypeError):
        frame_vars("not a frame")


@needs_frame_vars
def test_frame_vars_gives_back_every_reference() -> None:
    frame_vars = _compiled().frame_vars
    held = object()
    shared = object()

    def inner() -> object:
        return shared

    watched = (held, shared)

    def run(count: int) -> None:
        frame = sys._getframe()
        for _ in range(count):
            view = frame_vars(frame)
            assert view["held"] is held and view["inner"] is inner and "absent" not in view
            assert "shared" not in view  # a cell of the test, not a variable of run()
            with pytest.raises(KeyError):
                view["absent"]

    _keeps_no_reference(run, watched)


@pytest.mark.parametrize(
    "source",
    ["a + b", "c", "d", "missing", "len(rest)", "shared", "total + step", "attribute", "x", "arg"],
)
def test_conditions_read_a_frame_as_they_read_its_locals(source: str) -> None:
    """``evaluate_frame`` (C variables on 3.12) against ``evaluate(f_locals, f_globals)``."""
    expression = compile_expression(source, Redactor())
    for label, frame in _frames():
        expected = _outcome(expression.evaluate, frame.f_locals, frame.f_globals)
        assert _outcome(expression.evaluate_frame, frame) == expected, label


def _outcome(evaluate: Callable[..., object], *args: Any) -> Tuple[str, object]:
    try:
        return "value", evaluate(*args)
    except EvaluationError as exc:
        return "error", str(exc)


# --- InstructionCallback (3.12+) ------------------------------------------------------------

DISABLE = object()


class _Site:
    __slots__ = ("hooks",)

    def __init__(self, *hooks: Callable[[types.FrameType], None]) -> None:
        self.hooks = hooks


def _callbacks(
    errors: List[Tuple[str, BaseException]],
) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """(name, make(sites), the module global the Python callback reports through)."""

    def report(where: str, exc: BaseException) -> None:
        errors.append((where, exc))

    yield "C", lambda sites: _compiled().InstructionCallback(sites, DISABLE, report), {}
    if sys.version_info >= (3, 12):  # spelled so type checkers see the module exists there only
        from peephole.agent.placement.instrument.monitoring import instruction_callback

        yield (
            "Python",
            lambda sites: instruction_callback(sites, DISABLE),
            {"internal_error": report},
        )


def _call_from_here(
    callback: Any, code: types.CodeType, offset: int
) -> Tuple[Any, types.FrameType]:
    return callback(code, offset), sys._getframe()


HERE = _call_from_here.__code__


@needs_monitoring
@pytest.mark.parametrize("implementation", ["C", "Python"])
def test_instruction_callbacks_agree(implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from peephole.agent.placement.instrument import monitoring

    errors: List[Tuple[str, BaseException]] = []
    make, patches = next((m, p) for name, m, p in _callbacks(errors) if name == implementation)
    for name, value in patches.items():
        monkeypatch.setattr(monitoring, name, value)
    seen: List[types.FrameType] = []
    order: List[str] = []
    failure = ValueError("a hook failed")

    def first(frame: types.FrameType) -> None:
        seen.append(frame)
        order.append("first")

    def second(frame: types.FrameType) -> None:
        order.append("second")

    def failing(frame: types.FrameType) -> None:
        raise failure

    sites: Dict[int, Dict[int, Any]] = {id(HERE): {10: _Site(first, second)}}
    callback = make(sites)

    assert _call_from_here(callback, test_instruction_callbacks_agree.__code__, 10)[0] is DISABLE
    assert _call_from_here(callback, HERE, 12)[0] is DISABLE
    result, frame = _call_from_here(callback, HERE, 10)
    assert result is None
    assert order == ["first", "second"] and seen == [frame]

    sites[id(HERE)][14] = _Site(failing, second)
    assert _call_from_here(callback, HERE, 14)[0] is None
    assert errors == [("the instruction callback", failure)]
    assert order == ["first", "second"]  # a failing hook ends the hit, as in Python

    def interrupting(frame: types.FrameType) -> None:
        raise KeyboardInterrupt

    sites[id(HERE)][16] = _Site(interrupting)
    with pytest.raises(KeyboardInterrupt):
        _call_from_here(callback, HERE, 16)
    assert len(errors) == 1


@needs_monitoring
def test_the_c_instruction_callback_takes_code_and_offset_only() -> None:
    callback = _compiled().InstructionCallback({}, DISABLE, print)
    with pytest.raises(TypeError):
        callback(HERE)
    with pytest.raises(TypeError):
        callback(HERE, 1, offset=2)
    with pytest.raises(TypeError):
        _compiled().InstructionCallback([], DISABLE, print)


@needs_monitoring
def test_the_c_parts_give_back_every_reference() -> None:
    """A process that hits a probe a million times must not grow: every reference the C parts
    take is given back (the frame, the hooks, the values read, lookups that miss, failures
    reported). Objects that already exist only show a leak in their reference counts."""
    module = _compiled()
    hooks = _Site(lambda frame: None)
    failing = _Site(_raising)
    sites: Dict[int, Dict[int, Any]] = {id(HERE): {10: hooks, 12: failing}}
    callback = module.InstructionCallback(sites, DISABLE, lambda where, exc: None)
    frame_vars = getattr(module, "frame_vars", None)
    value = object()
    watched = (hooks.hooks, failing.hooks, value, DISABLE)

    def run(count: int) -> None:
        held = value
        for _ in range(count):
            for offset in (10, 12, 14):
                _call_from_here(callback, HERE, offset)
            _call_from_here(callback, test_the_c_parts_give_back_every_reference.__code__, 10)
            if frame_vars is not None:
                view = frame_vars(sys._getframe())
                assert "held" in view and "absent" not in view and view["held"] is held

    run(100)  # warm: caches, free lists
    gc.collect()  # a failing hook's traceback and the frames it holds are a cycle
    before = [sys.getrefcount(item) for item in watched]
    tracemalloc.start()
    try:
        run(10)
        start = tracemalloc.get_traced_memory()[0]
        run(10_000)
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    gc.collect()
    assert [sys.getrefcount(item) for item in watched] == before
    assert grown < 20_000  # bytes: one frame or exception kept per call would be megabytes


def _raising(frame: types.FrameType) -> None:
    raise ValueError("a hook failed")


# Run in a child with PYTHONMALLOC=debug, which fills freed memory: a callback used after
# sys.monitoring dropped the last reference to it crashes there instead of reading stale data.
_UNREGISTERED_WHILE_RUNNING = """
import dis, sys
from peephole.agent._speedups import InstructionCallback

monitoring = sys.monitoring
tool = next(t for t in range(6) if monitoring.get_tool(t) is None)
monitoring.use_tool_id(tool, "test")
reported = []

class Site:
    __slots__ = ("hooks",)

def target():
    a = 1
    return a

def hook(frame):
    monitoring.register_callback(tool, monitoring.events.INSTRUCTION, None)  # the last reference
    [object() for _ in range(1000)]  # reuse the freed memory
    raise ValueError("a hook failed")

site = Site()
site.hooks = (hook,)
code = target.__code__
first = next(ins for ins in dis.get_instructions(code) if ins.opname != "RESUME")
sites = {id(code): {first.offset: site}}
callback = InstructionCallback(sites, monitoring.DISABLE, lambda where, exc: reported.append(where))
monitoring.register_callback(tool, monitoring.events.INSTRUCTION, callback)
del callback
monitoring.set_local_events(tool, code, monitoring.events.INSTRUCTION)
print(target(), reported)
"""


@needs_monitoring
def test_the_c_callback_outlives_its_unregistration_by_a_hook() -> None:
    """``Agent.stop()`` unregisters the callback, from any thread, possibly while a hook runs:
    the callback must hold itself for the call, as a Python function's frame does."""
    child = subprocess.run(
        [sys.executable, "-c", _UNREGISTERED_WHILE_RUNNING],
        env={**os.environ, "PYTHONMALLOC": "debug"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (child.returncode, child.stdout) == (0, "1 ['the instruction callback']\n"), child.stderr


@needs_monitoring
def test_the_c_callback_lets_an_interrupt_in_its_error_report_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt raised while a hook's failure is reported goes on into the program
    in both callbacks (only Exceptions are kept from the application)."""
    errors: List[Tuple[str, BaseException]] = []
    failing = _Site(_raising)
    sites: Dict[int, Dict[int, Any]] = {id(HERE): {10: failing}}

    def interrupted(where: str, exc: BaseException) -> None:
        raise KeyboardInterrupt

    from peephole.agent.placement.instrument import monitoring

    monkeypatch.setattr(monitoring, "internal_error", interrupted)
    for name, make, _ in _callbacks(errors):
        callback = (
            make(sites)
            if name == "Python"
            else _compiled().InstructionCallback(sites, DISABLE, interrupted)
        )
        with pytest.raises(KeyboardInterrupt):
            _call_from_here(callback, HERE, 10)


# --- same_traceback (every version) ---------------------------------------------------------


def _traceback_of(depth: int, where: int) -> types.TracebackType:
    """The traceback of a failure ``depth`` calls down, raised at one of two places."""

    def fail(remaining: int) -> None:
        if remaining:
            fail(remaining - 1)
        elif where:
            raise ValueError("here")
        raise KeyError("there")

    try:
        fail(depth)
    except Exception as exc:
        assert exc.__traceback__ is not None
        return exc.__traceback__
    raise AssertionError("fail() did not fail")


class _Hostile:
    """An object whose conversion to an int is code of its own."""

    ran = False

    def __index__(self) -> int:
        self.ran = True
        return 0

    __int__ = __index__


def _entries(tb: Any) -> Tuple[Tuple[object, int], ...]:
    entries = []
    while tb is not None:
        entries.append((tb.tb_frame.f_code, tb.tb_lasti))
        tb = tb.tb_next
    return tuple(entries)


def test_same_traceback_agrees_with_its_python() -> None:
    from peephole.agent.exception_capture import fingerprints

    tracebacks: List[Optional[types.TracebackType]] = [
        _traceback_of(depth, where) for depth in (0, 1, 3) for where in (0, 1)
    ]
    tracebacks += [_traceback_of(3, 1), None]  # an equal one, another object; no traceback
    shapes = [_entries(tb) for tb in tracebacks] + [(), ((HERE, 0),)]
    c_part = _compiled().same_traceback
    results = []
    for tb in tracebacks:
        for entries in shapes:
            expected = fingerprints._same_traceback(tb, entries)
            assert c_part(tb, entries) is expected, (tb, entries)
            results.append(expected)
    # Each traceback matches its own shape (8), the equal pair each other's (2), and no
    # traceback the empty shape given twice (1).
    assert results.count(True) == 11
    instruction_of_its_own = _Hostile()
    code = _entries(tracebacks[0])[0][0]
    assert c_part(tracebacks[0], ((code, instruction_of_its_own),)) is False
    assert not instruction_of_its_own.ran  # not converted: its __index__ is not run
    with pytest.raises(TypeError):
        c_part(tracebacks[0], [_entries(tracebacks[0])])  # a list, not a tuple
    with pytest.raises(TypeError):
        c_part(tracebacks[0], ("code",))  # not a pair


# --- InjectedCall (3.9-3.11) ----------------------------------------------------------------

needs_injection = pytest.mark.skipif(MONITORING, reason="bytecode injection is 3.9-3.11")


@needs_injection
@pytest.mark.parametrize("implementation", ["python", "c"])
def test_injected_calls_agree(implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both call every hook with the caller's frame, report a failing hook and go on to the
    next, call nothing when the site has no hooks, and let an interrupt through."""
    import peephole.agent.placement.instrument as instrument

    seen: List[Any] = []
    reported: List[Tuple[str, str]] = []

    def on_error(where: str, exc: BaseException) -> None:
        reported.append((where, type(exc).__name__))

    monkeypatch.setattr(instrument, "internal_error", on_error)  # Site.call's reporter
    site = instrument.Site()
    site.hooks = (
        lambda frame: seen.append(frame.f_code.co_name),
        _raising,
        lambda frame: seen.append(frame.f_lineno > 0),
    )
    call = site.call if implementation == "python" else _compiled().InjectedCall(site, on_error)

    def probed() -> Any:
        return call()

    assert probed() is None
    site.hooks = ()
    assert probed() is None
    site.hooks = (_interrupting,)
    with pytest.raises(KeyboardInterrupt):
        probed()
    assert (seen, reported) == (["probed", True], [("a probe hook", "ValueError")])
    with pytest.raises(TypeError):
        _compiled().InjectedCall(site, on_error)(1)


def _interrupting(frame: types.FrameType) -> None:
    raise KeyboardInterrupt


@needs_injection
def test_the_injected_call_gives_back_every_reference() -> None:
    value = object()

    def hook(frame: types.FrameType) -> None:
        assert frame is not value

    site = _Site(hook, _raising)
    call = _compiled().InjectedCall(site, lambda where, exc: None)
    watched = (site.hooks, value, site)

    def run(count: int) -> None:
        for _ in range(count):
            call()

    _keeps_no_reference(run, watched)
