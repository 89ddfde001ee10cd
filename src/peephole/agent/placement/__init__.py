"""Placement: from ``FILE:LINE`` to armed code objects.

``locate`` matches paths by suffix, maps lines to statements and watches imports;
``instrument`` arms lines with the technique of the running Python (``sys.monitoring`` on
3.12+, bytecode injection on 3.9-3.11).
"""
