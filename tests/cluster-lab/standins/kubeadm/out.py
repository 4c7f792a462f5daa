"""Output, errors and time the way kubeadm reports them."""

import os
import re
import sys
import time


class PhaseError(Exception):
    """Fails the command as `error execution phase <phase>: <msg>`."""

    def __init__(self, phase, msg):
        self.phase = phase
        super().__init__(msg)


def say(msg):
    print(msg, flush=True)


def warn(msg):
    print(f"W{time.strftime('%m%d %H:%M:%S')} {os.getpid()} {msg}", file=sys.stderr, flush=True)


def parse_duration(text):
    """Go durations as the kubeadm API writes them: 4m0s, 24h0m0s, 500ms."""
    if isinstance(text, (int, float)):
        return float(text)
    total, rest = 0.0, text.strip()
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", rest):
        total += float(num) * units[unit]
    if not re.fullmatch(r"(\d+(?:\.\d+)?(ms|h|m|s))+", rest):
        raise ValueError(f"invalid duration {text!r}")
    return total


def scaled(seconds):
    """Timeouts scaled by KUBEADM_STANDIN_TIMEOUT_SCALE (tests only; default 1)."""
    return seconds * float(os.environ.get("KUBEADM_STANDIN_TIMEOUT_SCALE", "1"))


def human(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s}s"


def poll(timeout, interval, fn):
    """Calls fn() until it returns a true value or timeout passes; returns
    (value, last exception) — value is None on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v, None
        except Exception as e:  # noqa: BLE001 - every failure is retried, as wait.Poll does
            last = e
        if time.monotonic() >= deadline:
            return None, last
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
