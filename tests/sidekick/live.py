"""A real peephole server with a real Sidekick agent attached, and the round trip both end-to-
end tests walk: the instance registers with its identity, a tracepoint and a logpoint placed
through peephole's client are hit and stored with converted values and lines, and a removed
probe stops (shown by a later probe's event, never by waiting a fixed time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from e2e.server_process import ADMIN_TOKEN, AGENT_KEY, ServerProcess
from peephole.client import Client
from peephole.client.models import Event, Instance, NewProbe, Target
from sidekick.apps import AgentApp
from waiting import wait_until

TIMEOUT = 30.0  # generous: two cores shared by every test run on the machine


@contextmanager
def attached(
    data_dir: Path, start: Callable[[int, str], AgentApp]
) -> Iterator[tuple[ServerProcess, Client, AgentApp]]:
    """A peephole server and an app whose agent ``start(port, key)`` points at it with a
    peephole agent key; both stopped on the way out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(data_dir).start()
    try:
        app = start(server.port, AGENT_KEY)
        try:
            with Client(server.url, ADMIN_TOKEN) as client:
                yield server, client, app
        finally:
            app.stop()
    finally:
        server.stop()


def connected_instance(client: Client, service: str) -> Instance:
    """The one connected instance of ``service``, once the agent has registered."""

    def find() -> list[Instance]:
        found = [i for i in client.instances(service) if i.connected]
        return found if len(found) == 1 else []

    return wait_until(find, TIMEOUT, f"a connected instance of {service}")[0]


def registered(client: Client, service: str, runtime: str) -> Instance:
    """The app's instance, once connected, with the identity the agent's headers carry (the
    apps in apps.py set the same names, stage, version and tag for both runtimes)."""
    instance = connected_instance(client, service)
    assert (instance.runtime, instance.environment, instance.version) == (runtime, "dev", "1.2.3")
    assert instance.tags == {"team": "core"}  # Python sends "x-sidekick-app-tag-.team"
    return instance


def only_instance_is(client: Client, service: str, instance: Instance) -> None:
    """Nothing else registered for the service (the refused agent did not)."""
    assert [i.instance_id for i in client.instances(service)] == [instance.instance_id]


def events(client: Client, probe_id: str) -> list[Event]:
    return client.events(probe_id=probe_id).items


def place(client: Client, service: str, **probe: Any) -> str:
    """Create a probe for ``service`` and wait until its agent reports it active."""
    created = client.create_probe(NewProbe(target=Target(service=service), **probe))

    def active() -> bool:
        states = [s.state for s in client.probe(created.id).statuses]
        return states == ["active"]

    wait_until(active, TIMEOUT, f"probe {created.id} ({probe['kind']}) reported active")
    return created.id


def refused(client: Client, service: str, file: str, line: int) -> str:
    """Place a tracepoint the agent cannot install; the error message its status shows."""
    created = client.create_probe(
        NewProbe(kind="tracepoint", file=file, line=line, target=Target(service=service))
    )

    def failed() -> str:
        statuses = client.probe(created.id).statuses
        if [s.state for s in statuses] == ["error"]:
            return statuses[0].message or "(no message)"
        return ""

    return wait_until(failed, TIMEOUT, f"an error status for {file}:{line}")


@dataclass
class RealApp:
    """What a runtime's test gives the round trip: the app, how peephole names its files,
    and the lines of its markers."""

    app: AgentApp
    service: str
    file: str  # the probed file, as a peephole user writes it for this runtime
    checkout: int  # the probed line (``@checkout``)
    call: int  # where handle() calls checkout (``@call``): the caller frame's line
    after_file: str  # where a later line of the same hit runs (``@after``)
    after: int


def round_trip(client: Client, real: RealApp) -> tuple[Event, Event]:
    """Tracepoint and logpoint on the checkout line, one hit each; both removed, then a hit
    that must produce nothing for them. Returns the snapshot and the log line."""
    tracepoint = place(client, real.service, kind="tracepoint", file=real.file, line=real.checkout)
    assert real.app.hit("vip").startswith("done 1 10")
    snapshot = wait_until(lambda: events(client, tracepoint), TIMEOUT, "the snapshot")[0]

    template = "cart {cart.id} user={user.name} vip={user.vip}"
    logpoint = place(
        client, real.service, kind="logpoint", file=real.file, line=real.checkout, template=template
    )
    real.app.hit()
    logs = wait_until(lambda: events(client, logpoint), TIMEOUT, "the log line")
    wait_until(lambda: len(events(client, tracepoint)) == 2, TIMEOUT, "the second snapshot")
    client.delete_probe(tracepoint)
    client.delete_probe(logpoint)
    stopped(client, real, {tracepoint: 2, logpoint: 1})
    return snapshot, logs[0]


def stopped(client: Client, real: RealApp, seen: dict[str, int]) -> None:
    """The probes in ``seen`` (with their event counts) get no more events: shown by a probe
    placed now, which reaches the agent after whatever removed them. Python's agent may send a
    snapshot after a later line's event of the same hit, so this waits for the later probe's
    line of the hit after next: the stopped probes' events would be in by then."""
    barrier = place(
        client,
        real.service,
        kind="logpoint",
        file=real.after_file,
        line=real.after,
        template="after {cart.id}",
    )
    real.app.hit()
    last = real.app.hit().split()[1]
    wait_until(
        lambda: any(e.message == f"after c{last}" for e in events(client, barrier)),
        TIMEOUT,
        f"the later probe's line of hit {last}",
    )
    counts = {probe: len(events(client, probe)) for probe in seen}
    assert counts == seen, f"events of the stopped probes: {counts}, before: {seen}"


def condition_and_hit_limit(client: Client, real: RealApp) -> None:
    """A condition written the peephole way is evaluated by the agent (only the VIP hit is
    captured), and a hit limit is kept by the server, since neither agent keeps it as peephole
    means it: after two captures the probe is done and gets nothing more."""
    vip_only = place(
        client,
        real.service,
        kind="tracepoint",
        file=real.file,
        line=real.checkout,
        condition="user.vip == True",
    )
    real.app.hit()
    vip = real.app.hit("vip").split()[1]
    captured = wait_until(lambda: events(client, vip_only), TIMEOUT, "the VIP hit's snapshot")
    assert [field_value(local(e, "cart"), "id") for e in captured] == [f"c{vip}"]
    client.delete_probe(vip_only)

    limited = place(
        client, real.service, kind="tracepoint", file=real.file, line=real.checkout, hit_limit=2
    )
    real.app.hit()
    real.app.hit()
    wait_until(lambda: client.probe(limited).state == "done", TIMEOUT, "the probe done")
    stopped(client, real, {vip_only: 1, limited: 2})


def disabled_then_enabled(client: Client, real: RealApp) -> None:
    """A probe disabled through peephole leaves the agent (hits capture nothing); enabled
    again, it is put again and captures (the app is hit until it does: the put is on its way)."""
    tracepoint = place(client, real.service, kind="tracepoint", file=real.file, line=real.checkout)
    assert client.disable_probe(tracepoint).state == "disabled"
    stopped(client, real, {tracepoint: 0})
    client.enable_probe(tracepoint)
    wait_until(
        lambda: real.app.hit() and events(client, tracepoint), TIMEOUT, "a snapshot once enabled"
    )


def across_restart(server: ServerProcess, client: Client, real: RealApp) -> None:
    """A probe placed before the server restarts keeps working after it: the agent reconnects
    by itself (no backoff), registers again and its next hit is stored."""
    tracepoint = place(client, real.service, kind="tracepoint", file=real.file, line=real.checkout)
    real.app.hit()
    wait_until(lambda: events(client, tracepoint), TIMEOUT, "the snapshot before the restart")
    server.stop()
    server.start()

    def reconnected() -> bool:
        instances = client.instances(real.service)
        return len(instances) == 1 and instances[0].connected

    wait_until(reconnected, TIMEOUT, "the agent connected again")
    real.app.hit()
    wait_until(
        lambda: len(events(client, tracepoint)) == 2, TIMEOUT, "the snapshot after the restart"
    )
    statuses = [(s.state, s.message) for s in client.probe(tracepoint).statuses]
    assert statuses == [("active", None)], statuses


def local(event: Event, name: str) -> dict[str, Any]:
    """The converted value of a local variable in the snapshot's top frame."""
    return dict(event.frames[0]["locals"][name])


def field_value(value: dict[str, Any], name: str) -> Any:
    """A plain value from an object's fields or a dict's entries."""
    if "fields" in value:
        return value["fields"][name].get("v")
    for key, item in value["entries"]:
        if key.get("v") == name:
            return item.get("v")
    raise KeyError(name)
