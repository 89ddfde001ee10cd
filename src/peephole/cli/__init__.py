"""The ``peephole`` command: every action of the product from a terminal.

Commands are thin: they parse arguments, call :mod:`peephole.client` and render the result
(:mod:`peephole.cli.render`). ``python -m peephole.cli.docgen`` writes docs/cli.md from them.
"""
