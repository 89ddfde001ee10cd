"""A demo to try peephole on: a small web shop with real bugs, traffic for it, and a launcher.

``python3 dev.py demo`` runs :mod:`peephole.demo.launcher`, which starts a peephole server,
the shop (:mod:`peephole.demo.shop`) under the agent and the traffic generator
(:mod:`peephole.demo.traffic`). Nothing here is imported by the agent or the server.
"""
