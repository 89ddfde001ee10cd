"""Event ids never repeat, in a process or between a forked child and its parent."""

from __future__ import annotations

import os

import pytest

from peephole.agent import event_ids


def test_ids_are_32_hex_digits_and_unique() -> None:
    ids = [event_ids.new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_never_repeats_its_parents_ids_without_an_agent() -> None:
    """No Agent, no peephole.agent.launch: the module's own fork hook renews the prefix."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write_end, event_ids.new_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    parent_id = event_ids.new_id()
    assert len(child_id) == 32
    assert child_id[:16] != parent_id[:16]
