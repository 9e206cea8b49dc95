# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure selection of log indices to delete: older than N days by the date in their name
(logs-YYYY.MM.DD) or by their creation date. No I/O; table-tested.

OpenSearch has no Curator (Curator refuses OpenSearch versions), so this is ours.
"""

from __future__ import absolute_import, annotations, division, print_function

import fnmatch
import re
from datetime import UTC, datetime, timedelta

#: strftime directives a date in an index name may use, and what each matches.
_DIRECTIVES = {"Y": r"\d{4}", "m": r"\d{2}", "d": r"\d{2}", "j": r"\d{3}", "y": r"\d{2}",
               "H": r"\d{2}"}


def date_regex(date_format):
    """A regex finding `date_format` (e.g. %Y.%m.%d) inside an index name.
    Raises ValueError for a format without a year or with unsupported directives."""
    out = []
    i = 0
    seen = set()
    while i < len(date_format):
        char = date_format[i]
        if char == "%" and i + 1 < len(date_format):
            directive = date_format[i + 1]
            if directive not in _DIRECTIVES:
                raise ValueError("date_format %r: %%%s is not supported (use %s)" % (
                    date_format, directive, " ".join("%" + d for d in _DIRECTIVES)))
            out.append(_DIRECTIVES[directive])
            seen.add(directive)
            i += 2
            continue
        out.append(re.escape(char))
        i += 1
    if not seen & {"Y", "y"}:
        raise ValueError("date_format %r has no year (%%Y)" % date_format)
    return re.compile("".join(out))


def date_in_name(name, date_format):
    """The UTC date in an index name (the last match of the format), or None."""
    regex = date_regex(date_format)
    for match in reversed(list(regex.finditer(name))):
        try:
            return datetime.strptime(match.group(0), date_format).replace(tzinfo=UTC)
        except ValueError:
            continue  # e.g. 2020.13.45: digits of the right shape, not a date
    return None


def select_old_indices(indices, pattern, older_than_days, date_source, date_format, now):
    """Decide each index: [{index, date, age_days, action, reason}] sorted by name.

    `indices` are [{"index": name, "creation_date_ms": int}] as listed for `pattern`; an index
    whose name does not match `pattern` is never deleted (it should not have been listed).
    By name: an index dated D is older than N days when today - D > N days (whole days, UTC).
    By creation: when now - creation > N x 24 h.
    """
    decisions = []
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for item in sorted(indices, key=lambda i: i["index"]):
        name = item["index"]
        entry = {"index": name}
        if not fnmatch.fnmatchcase(name, pattern):
            entry.update(action="keep", date=None, age_days=None,
                         reason="does not match %s" % pattern)
            decisions.append(entry)
            continue
        if date_source == "name":
            date = date_in_name(name, date_format)
            if date is None:
                entry.update(action="keep", date=None, age_days=None,
                             reason="no %s date in the name" % date_format)
                decisions.append(entry)
                continue
            age = (today - date).days
        else:
            created_ms = item.get("creation_date_ms")
            if created_ms is None:
                entry.update(action="keep", date=None, age_days=None,
                             reason="creation date unknown")
                decisions.append(entry)
                continue
            date = datetime.fromtimestamp(int(created_ms) / 1000.0, tz=UTC)
            age = (now - date) / timedelta(days=1)
        entry.update(date=date.isoformat(), age_days=round(age, 3))
        if age > older_than_days:
            entry.update(action="delete", reason="%s date %s is %.0f day(s) old (> %s)" % (
                date_source, date.date().isoformat(), age, older_than_days))
        else:
            entry.update(action="keep", reason="%.0f day(s) old (<= %s)" % (age, older_than_days))
        decisions.append(entry)
    return decisions
