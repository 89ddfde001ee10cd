"""``python -m peephole.demo.shop [--host H] [--port P]``: run the shop until SIGTERM/Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import List, Optional

from peephole.demo.shop.server import make_shop_server


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peephole.demo.shop", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = make_shop_server(args.host, args.port)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    print(f"shop listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("shop stopped", flush=True)
    return 0


def _exit_on_signal(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
