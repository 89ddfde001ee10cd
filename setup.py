"""Builds the agent's optional C speed-ups (``peephole.agent._speedups``).

Everything else is in pyproject.toml. The extension is optional, as coverage.py's CTracer
is: where it cannot be compiled (no compiler, no Python headers) the install goes on and
the agent uses its pure-Python equivalents (see ``peephole/agent/speedups.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "peephole.agent._speedups",
            sources=["src/peephole/agent/_speedups.c"],
            optional=True,
        )
    ]
)
