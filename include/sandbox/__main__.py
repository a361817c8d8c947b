"""``python -m sandbox --acc-port 0 --buildpass-port 0 [--ready-file PATH] [--seed N] [--host ADDR]``"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

import sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="ACC and BuildPass API emulators")
    parser.add_argument("--acc-port", type=int, default=0)
    parser.add_argument("--buildpass-port", type=int, default=0)
    parser.add_argument("--ready-file", help="where to write the URLs (atomically) once both servers listen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 inside a container)")
    args = parser.parse_args(argv)

    box = sandbox.start(acc_port=args.acc_port, buildpass_port=args.buildpass_port, seed=args.seed, host=args.host)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    text = json.dumps(box.urls())
    if args.ready_file:
        target = os.path.abspath(args.ready_file)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".sandbox-ready-")
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
        os.replace(tmp, target)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
