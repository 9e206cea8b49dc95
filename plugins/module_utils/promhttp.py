# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""HTTP reads from Prometheus-style endpoints, with errors classified for operators.

A status check must say *why* an endpoint failed (refused, DNS, TLS, timeout, HTTP code),
because each cause has a different fix.
"""

from __future__ import absolute_import, annotations, division, print_function

import base64
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Fetch:
    """The outcome of one GET: ok with a body, or a classified error."""

    url: str
    ok: bool
    status: int = 0
    body: str = ""
    error: str = ""
    seconds: float = 0.0


def classify(exc: BaseException) -> str:
    """A short operator-facing reason for a failed request."""
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP %d %s" % (exc.code, exc.reason)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "DNS lookup failed (%s)" % (reason.strerror or reason)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted (%s)" % (reason.verify_message or reason)
    if isinstance(reason, ssl.SSLError):
        return "TLS error (%s)" % (reason.reason or reason)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def get(url, timeout=5.0, username=None, password=None):
    """GET `url`; never raises for network or HTTP errors (they become Fetch.error)."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain, */*"})
    if username:
        token = base64.b64encode(("%s:%s" % (username, password or "")).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
            return Fetch(url, True, response.status, body, "", time.monotonic() - started)
    except urllib.error.HTTPError as exc:
        try:  # a Prometheus API explains a 4xx in its JSON body
            body = exc.read(65536).decode("utf-8", "replace")
        except OSError:
            body = ""
        return Fetch(url, False, exc.code, body, classify(exc), time.monotonic() - started)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Fetch(url, False, 0, "", classify(exc), time.monotonic() - started)


def tcp_probe(url, timeout=3.0):
    """Can we open a TCP connection to the URL's host:port? Returns '' or the reason."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return ""
    except OSError as exc:
        return classify(exc)


def query(base, promql, timeout=30.0, at=None, dedup=None):
    """An instant query against a Prometheus-compatible API (Thanos Query deduplicates by
    default; `dedup=False` asks it for every replica's series):
    ([{"metric": labels, "value": float}], error). Never raises for HTTP or query errors."""
    import json
    from urllib.parse import urlencode

    params = {"query": promql}
    if at is not None:
        params["time"] = "%.3f" % at
    if dedup is not None:
        params["dedup"] = "true" if dedup else "false"
    fetched = get("%s/api/v1/query?%s" % (base.rstrip("/"), urlencode(params)), timeout)
    try:
        data = json.loads(fetched.body) if fetched.body else {}
    except ValueError:
        data = {}
    if not fetched.ok and not data.get("error"):
        return [], fetched.error
    if not data:
        return [], "not a Prometheus API answer"
    if data.get("status") != "success":
        return [], "%s: %s" % (data.get("errorType", "error"), data.get("error", ""))
    result = data.get("data", {}).get("result", [])
    rows = []
    for row in result if isinstance(result, list) else []:
        rows.append({"metric": row.get("metric", {}), "value": float(row["value"][1])})
    return rows, ""
