"""Code whose variables live in a mapping of the application's own: a class body whose
metaclass's ``__prepare__`` gives a dict subclass that records every access, with a method
that uses ``super()`` (so the body has a ``__class__`` cell, which reading ``f_locals`` before
3.13 writes into the namespace)."""

import sys
from typing import Any, List, MutableMapping, Tuple

ACCESSES: List[Tuple[str, str]] = []
FRAMES: List[Any] = []


class Recording(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: str, value: Any) -> None:
        ACCESSES.append(("set", key))
        super().__setitem__(key, value)

    def __getitem__(self, key: str) -> Any:
        ACCESSES.append(("get", key))
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        ACCESSES.append(("contains", str(key)))
        return super().__contains__(key)


class Recorded(type):
    @classmethod
    def __prepare__(  # type: ignore[override]
        mcls, name: str, bases: Tuple[type, ...], **kwargs: Any
    ) -> MutableMapping[str, object]:
        return Recording()


def record_caller() -> int:
    """Called from the class body: its caller's frame is the body's."""
    FRAMES.append(sys._getframe())
    return 1


def make() -> type:
    class Model(metaclass=Recorded):
        price = 5
        taxed = price * 2  # @class-body
        count = record_caller()

        def method(self) -> Any:
            return super().method()  # type: ignore[misc]

    return Model
