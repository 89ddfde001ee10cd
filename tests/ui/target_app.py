"""The service the browser tests debug, run under the agent with ``peephole run``: a small
HTTP server whose handlers hold hostile strings, a secret, a nested object and a failure.
It writes its port to ``port.txt`` once it listens."""

import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, NoReturn, Tuple
from urllib.parse import parse_qs, urlparse


class Cart:
    def __init__(self, n: int) -> None:
        self.items: List[Dict[str, Any]] = [{"sku": f"sku-{i}", "qty": i + n} for i in range(3)]
        self.owner = {"name": "Ada", "address": {"city": "Paris", "zip": "75001"}}


def checkout(n: int) -> Tuple[int, int, int, int]:
    cart = Cart(n)
    note = "<img src=x onerror=alert(1)>"
    odd = {"</script><script>alert(2)</script>": n}
    password = "hunter2"
    total = sum(item["qty"] for item in cart.items)
    return total, len(odd), len(note), len(password)  # @probe


def fail(n: int) -> NoReturn:
    order = {"id": n, "state": "<b>lost</b>"}
    raise ValueError(f"order {order['id']} <script>alert(3)</script> failed")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        n = int(parse_qs(url.query).get("n", ["1"])[0])
        status = 200
        try:
            body = {"boom": fail(n)} if url.path == "/boom" else {"total": checkout(n)[0]}
        except ValueError:
            logging.getLogger("target").exception("request failed")
            status, body = 500, {}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open("port.tmp", "w") as out:
    out.write(str(server.server_port))
os.replace("port.tmp", "port.txt")
server.serve_forever()
