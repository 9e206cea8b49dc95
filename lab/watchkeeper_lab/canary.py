"""The canary scrape target: a counter tests can reason about.

`watchkeeper_lab_canary_total{cluster}` equals the whole seconds since the lab's canary epoch
(recorded in the lab directory), so any sample's value says when it was produced, and a gap
in the series is visible as a jump.

    python -m watchkeeper_lab.canary --address 127.N.M.41:8080 --cluster k8s-cluster-01 --epoch T
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def exposition(cluster: str, epoch: float, now: float) -> str:
    value = int(now - epoch)
    return (
        "# HELP watchkeeper_lab_canary_total Seconds since the lab's canary epoch.\n"
        "# TYPE watchkeeper_lab_canary_total counter\n"
        f'watchkeeper_lab_canary_total{{canary_cluster="{cluster}"}} {value}\n'
        "# HELP watchkeeper_lab_canary_epoch_seconds The canary epoch.\n"
        "# TYPE watchkeeper_lab_canary_epoch_seconds gauge\n"
        f'watchkeeper_lab_canary_epoch_seconds{{canary_cluster="{cluster}"}} {epoch}\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--epoch", type=float, required=True)
    args = parser.parse_args()
    host, port = args.address.rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body = exposition(args.cluster, args.epoch, time.time()).encode()
                kind = "text/plain; version=0.0.4"
            elif self.path.startswith("/-/ready") or self.path.startswith("/-/healthy"):
                body, kind = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
