"""The directory ``peephole run`` puts first on ``PYTHONPATH``: its ``sitecustomize`` starts the
agent in every Python process of the program, including re-executed and spawned children."""
