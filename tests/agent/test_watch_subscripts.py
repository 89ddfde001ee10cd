"""A watch that subscripts what an attribute read returned: ``cart.items[0]['qty']``.

Found by the web UI's browser test: the watch came back as "'Redactor' object is not
subscriptable" while the agent's expression code was being reworked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, List

from conftest import Collector, line_of, tracepoint
from peephole.agent.core import Agent


def test_a_watch_reads_an_item_of_an_attribute(
    make_agent: Callable[..., Agent], collector: Collector, module_dir: Path
) -> None:
    source = (
        "class Cart:\n"
        "    def __init__(self):\n"
        "        self.items = [{'qty': 2, 'sku': 'A-1'}]\n"
        "\n"
        "def checkout(cart):\n"
        "    total = 0  # @checkout\n"
        "    return total\n"
    )
    path = module_dir / "watch_cart.py"
    path.write_text(source)
    import watch_cart

    agent = make_agent()
    line = line_of(path, "checkout")
    agent.set_probe(
        tracepoint("w", "watch_cart.py", line, watches=["cart.items[0]['qty']", "cart.items[0]"])
    )
    watch_cart.checkout(watch_cart.Cart())
    assert collector.wait(1, probe_id="w")
    watches: List[Any] = collector.of("w")[0]["watches"]
    assert [w.get("error") for w in watches] == [None, None], watches
    assert watches[0]["value"] == {"t": "int", "v": 2}
