"""uvicorn's WebSocket protocol with the two controls the agent gateway needs.

ASGI gives an application no way to drop a connection whose peer stopped reading (a close
frame waits behind the unsent data, forever) nor to limit the size of a message before it
is read whole. ``peephole server`` runs uvicorn with :class:`GatewayWebSocketProtocol`,
which puts a :class:`SocketControl` in the scope's extensions (``EXTENSION``):
``abort()`` drops the connection at once, ``allow()`` raises the message size limit to the server's.
Until the application allows more, the agent path accepts messages no larger than a
``hello`` (``protocol.MAX_HELLO_BYTES``): a client without a valid key cannot make the
server buffer more. Under another ASGI server the gateway falls back to checking sizes
after receipt and to cancelling its own tasks.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from peephole import protocol

__all__ = ["EXTENSION", "GatewayWebSocketProtocol", "SocketControl"]

EXTENSION = "peephole.socket"


class SocketControl:
    """What the application may do to its connection's socket."""

    def __init__(self, owner: GatewayWebSocketProtocol) -> None:
        self._owner = owner

    def abort(self) -> None:
        """Drop the connection now, discarding what the peer has not read."""
        self._owner.transport.abort()

    def allow(self) -> None:
        """Accept messages up to the server's configured size from now on."""
        self._owner.conn.max_message_size = self._owner.config.ws_max_size


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """Messages are limited to a hello's size until the application raises the limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = protocol.MAX_HELLO_BYTES

    def handle_connect(self, event: Any) -> None:
        if not event.path.startswith(protocol.AGENT_PATH):
            self.conn.max_message_size = self.config.ws_max_size
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = SocketControl(self)
