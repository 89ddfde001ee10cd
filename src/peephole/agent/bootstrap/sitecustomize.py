"""Start the peephole agent at interpreter start-up, for ``peephole run``.

``peephole run`` puts this directory first on ``PYTHONPATH`` and the settings in ``PEEPHOLE_*``
variables, so every Python process of the program (a re-executed server, a spawned worker)
runs this file before its own code. Forked children need nothing from here: the agent
follows forks itself.

Being first on the path hides any other ``sitecustomize`` (a distribution's, a virtualenv's),
so that one is run first, as if this file were not there. Nothing here may stop the program:
an interpreter without peephole installed, or a bad setting, means no agent, not a crash
(a bad setting, or an agent key the server refuses, is reported in one line on stderr).
"""

import os
import sys

__all__ = []


def _run_shadowed_sitecustomize() -> None:
    """Run the ``sitecustomize`` this one hides, if there is one."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _start_agent() -> None:
    try:
        import peephole
    except Exception:
        return  # this interpreter has no peephole: run the program without the agent
    try:
        from peephole.agent.delivery.transport import say_rejections_on_stderr

        say_rejections_on_stderr()  # a wrong or missing agent key: said once, here too
        peephole.start()
    except Exception as exc:  # a bad PEEPHOLE_* value: say so once, where it was set
        sys.stderr.write(f"peephole: agent not started: {exc}\n")


try:
    _run_shadowed_sitecustomize()
finally:
    _start_agent()
