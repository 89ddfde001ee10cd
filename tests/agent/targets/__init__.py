"""Application code the agent's tests place probes in. Lines are found by their ``# @name``
marker comments, so editing these files does not break the tests."""
