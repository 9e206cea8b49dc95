"""A slow link for one lab fault: a TCP proxy that holds every byte for a fixed time in each
direction before passing it on (what `tc netem delay` does, for kernels without netem).

`PodNetwork.delay` runs it inside a pod's namespace and redirects that pod's connections to
one destination through it; its own connection to the destination carries a socket mark the
redirect rule skips.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import socket
import threading
import time

SO_MARK = 36  # <linux/socket.h>; Python's socket module lacks the constant on some builds


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    held: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def release() -> None:
        while True:
            due, data = held.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    threading.Thread(target=release, daemon=True).start()
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        held.put((time.monotonic() + delay, data))
        if not data:
            return


def _serve(client: socket.socket, target: tuple[str, int], delay: float, mark: int) -> None:
    upstream = socket.socket()
    upstream.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    try:
        upstream.connect(target)
    except OSError:
        client.close()
        upstream.close()
        return
    threading.Thread(target=_pump, args=(client, upstream, delay), daemon=True).start()
    _pump(upstream, client, delay)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port to accept on")
    parser.add_argument("--target", required=True, help="host:port to pass to")
    parser.add_argument("--delay", type=float, required=True, help="seconds, each direction")
    parser.add_argument("--mark", type=int, required=True, help="socket mark of our own sends")
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    thost, tport = args.target.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(64)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve, args=(client, (thost, int(tport)), args.delay,
                                              args.mark), daemon=True).start()


if __name__ == "__main__":
    main()
