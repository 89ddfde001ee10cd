"""The safety layer: reading the application's values without running any of its code.

``access`` holds the primitives (exact-type dispatch, C descriptors), ``capture`` turns values
and stacks into the protocol's JSON shape, ``expressions`` evaluates the safe subset of Python
used by conditions, watches and templates, and ``redaction`` decides what never leaves the
process. Everything that reads application data goes through here.
"""
