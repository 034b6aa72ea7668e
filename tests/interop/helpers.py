"""Helpers the interop tests share: parsing the clients' tables, unique names, raw HTTP."""

import json
import urllib.error
import urllib.request
import uuid


def http(method, url, body=None, headers=None):
    """A raw call for checks the clients cannot express; returns (status, headers, parsed body or bytes)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, (dict, list)):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, dict(e.headers), e.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw



def unique(prefix):
    """A name no other test (or earlier run on the same database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def table(text):
    """Parses a `| Property | Value |` / `| Field | Value |` table into a dict (wrapped values joined)."""
    out = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("Property", "Field"):
            continue
        if cells[0]:
            key = cells[0]
            out[key] = cells[1]
        elif key:
            out[key] += cells[1]
    return out


def rows(text):
    """Parses a multi-column `| A | B |` table (glance image-list, member-list) into dicts."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    if not lines:
        return []
    header = [c.strip() for c in lines[0].strip().strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in l.strip().strip("|").split("|")))) for l in lines[1:]]
