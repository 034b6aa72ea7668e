"""Reads one schemathesis run's reports (scripts/fuzz.sh) and prints three numbers: the
requests sent, the answers that were 5xx, and the requests that ended in a connection reset
or another network error (no answer at all).

    verdict.py REPORT_DIR      (holding requests.har, events.ndjson and, when the hooks saw
                                any, network-errors.jsonl)
"""

import json
import pathlib
import sys

NETWORK_WORDS = (
    "connectionreseterror",
    "connection reset",
    "connection aborted",
    "remotedisconnected",
    "connectionerror",
    "protocolerror",
    "network error",
)


def main(report_dir: str) -> None:
    d = pathlib.Path(report_dir)
    entries = json.loads((d / "requests.har").read_text())["log"]["entries"]
    # A request that got no answer is recorded with status 0 (or not at all); the event log
    # names its exception either way.
    answered = [e for e in entries if e["response"]["status"] > 0]
    fivexx = sum(1 for e in answered if e["response"]["status"] >= 500)
    # Written by tests/fuzz/hooks.py for each request that got no answer.
    hooked = d / "network-errors.jsonl"
    from_hook = len(hooked.read_text().splitlines()) if hooked.exists() else 0
    # The event log as a second witness, should a network error escape the hook.
    from_events = 0
    for line in (d / "events.ndjson").read_text().splitlines():
        low = line.lower()
        if any(w in low for w in NETWORK_WORDS):
            from_events += 1
    print(len(entries), fivexx, max(from_hook, from_events))


if __name__ == "__main__":
    main(sys.argv[1])
