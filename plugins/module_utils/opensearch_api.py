# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""OpenSearch for the collection's modules: the one place a module builds an opensearch-py client,
the connection options every OpenSearch module shares, and errors translated for operators.

(The runbooks' Python side builds its clients in runbooks/clients.py; modules run in Ansible's
module runtime and receive the URL and credentials as options, so they build theirs here.)
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_snapshot import (
    SUCCESS,
    newest_successful,
)

#: Connection options of every OpenSearch module (compose with each module's own spec).
CONNECTION_SPEC = dict(
    url=dict(type="str", required=True),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    request_timeout=dict(type="float", default=30.0),
)


class OpenSearchFailure(ModuleFailure):
    """A failed OpenSearch operation."""


def connect(params):
    """An opensearch-py client for the module's connection options."""
    try:
        from opensearchpy import OpenSearch
    except ImportError as exc:  # the interpreter is the one watchkeeper runs in
        raise OpenSearchFailure("opensearch-py is not importable: %s" % exc,
                                "install watchkeeper with its dependencies") from exc
    auth = None
    if params.get("username"):
        auth = (params["username"], params.get("password") or "")
    return OpenSearch(hosts=[params["url"]], http_auth=auth, timeout=params["request_timeout"],
                      max_retries=2, retry_on_timeout=True)


def reason(exc):
    """A short operator-facing reason for an opensearch-py exception."""
    from opensearchpy import exceptions as osx

    if isinstance(exc, osx.ConnectionTimeout):
        return "timed out"
    if isinstance(exc, osx.ConnectionError):
        text = str(getattr(exc, "info", "") or exc)
        for needle, said in (("refused", "connection refused"),
                             ("Name or service not known", "DNS lookup failed"),
                             ("nodename nor servname", "DNS lookup failed"),
                             ("Temporary failure in name resolution", "DNS lookup failed"),
                             ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
                             ("No route to host", "no route to host")):
            if needle in text:
                return said
        return "connection failed (%s)" % text[:200]
    if isinstance(exc, osx.TransportError):
        status = exc.status_code
        info = exc.info if isinstance(exc.info, dict) else {}
        error = info.get("error")
        detail = ""
        if isinstance(error, dict):
            causes = error.get("root_cause") or [error]
            first = causes[0] if causes and isinstance(causes[0], dict) else error
            detail = "%s: %s" % (first.get("type", ""), first.get("reason", ""))
        elif error:
            detail = str(error)
        return ("HTTP %s %s" % (status, detail)).strip()
    return "%s: %s" % (type(exc).__name__, exc)


def status_of(exc):
    """The HTTP status of an opensearch-py exception (0 when there was no response)."""
    code = getattr(exc, "status_code", 0)
    return code if isinstance(code, int) else 0


def call(what, func, *args, **kwargs):
    """Call one API method; an error becomes an OpenSearchFailure that says what failed."""
    from opensearchpy import exceptions as osx

    try:
        return func(*args, **kwargs)
    except osx.OpenSearchException as exc:
        hint = ""
        code = status_of(exc)
        if isinstance(exc, osx.ConnectionError):
            hint = "check wk_opensearch_url and that OpenSearch is running"
        elif code == 401:
            hint = "check wk_opensearch_auth (user and password reference)"
        elif code == 403:
            hint = "the OpenSearch user lacks the permission for this call"
        raise OpenSearchFailure("%s: %s" % (what, reason(exc)), hint) from exc


def not_found(exc):
    """Is this failure a 404 (index, repository or snapshot missing)?"""
    cause = exc.__cause__ if isinstance(exc, OpenSearchFailure) else exc
    return status_of(cause) == 404


def pick_snapshot(client, repository, name):
    """The named snapshot, or the newest successful one; it must be SUCCESS."""
    try:
        if name:
            found = call("GET _snapshot/%s/%s" % (repository, name), client.snapshot.get,
                         repository=repository, snapshot=name)["snapshots"]
        else:
            found = call("GET _snapshot/%s/_all" % repository, client.snapshot.get,
                         repository=repository, snapshot="_all")["snapshots"]
    except OpenSearchFailure as exc:
        if not_found(exc):
            raise OpenSearchFailure(
                "%s not found in repository %s" % ("snapshot " + name if name else "repository",
                                                   repository),
                "list them with GET _snapshot/%s/_all" % repository) from exc
        raise
    chosen = found[0] if name else newest_successful(found)
    if chosen is None:
        raise OpenSearchFailure("repository %s holds no successful snapshot" % repository,
                                "run backup-opensearch first")
    if chosen.get("state") != SUCCESS:
        raise OpenSearchFailure("snapshot %s is %s, not SUCCESS" % (chosen["snapshot"],
                                                                    chosen.get("state")),
                                "restore a successful snapshot (-e snapshot=NAME)")
    return chosen
