"""Failures on demand, so clients are tested against what a real exchange (and the network
between) does to them: rate limits (429), internal errors (500), requests that hang, answers
that are lost, connections reset, bodies cut short and bodies that are not JSON."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# What each kind does, and whether the request is carried out (what a client must assume):
#   429, 500        an error answer; not carried out
#   timeout         hangs `delay_s`, then the connection closes with no answer; not carried out
#   lost            carried out, then hangs `delay_s` and closes with no answer
#   reset           the connection is reset at once (TCP RST), no answer; not carried out
#   reset_after     carried out, then the connection is reset at once, no answer
#   truncated       carried out; the headers announce the whole body, half of it is sent, and
#                   the connection closes
#   malformed_json  carried out; a 200 whose body is not JSON (a proxy's page, a cut stream)
FAULT_KINDS = (
    "429",
    "500",
    "timeout",
    "lost",
    "reset",
    "reset_after",
    "truncated",
    "malformed_json",
)
# The kinds after which the request has been carried out although the caller heard no answer.
CARRIED_OUT = ("lost", "reset_after", "truncated", "malformed_json")
# The body of a 'malformed_json' answer: JSON-looking, cut off (ccxt cannot parse it).
MALFORMED_BODY = b'{"code":200,"msg":"replay fault: this body is cut off'

# The answers of the kinds that answer at all, as Binance words them.
FAULT_ANSWERS: dict[str, tuple[int, dict]] = {
    "429": (429, {"code": -1003, "msg": "Too many requests; replay fault."}),
    "500": (500, {"code": -1000, "msg": "Internal error; replay fault."}),
}


@dataclass
class FaultPlan:
    """Which requests fail, and how: the next `count` requests, or a `share` of them at random;
    only those to `path` and/or with `method` when given (e.g. POST /fapi/v1/order), and only
    after the first `skip` of those have passed (e.g. the second order of a reversal). With
    `kinds`, each fault's kind is drawn among them at random (a mix); `drawn` counts the
    faults served by kind."""

    kind: str = "500"
    count: int = 0
    share: float = 0.0
    delay_s: float = 15.0  # how long a 'timeout' or 'lost' request hangs before it is closed
    seed: int = 0
    path: str | None = None
    method: str | None = None
    skip: int = 0
    kinds: tuple[str, ...] = ()
    drawn: dict[str, int] = field(init=False, default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)
    _deck: list[str] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS or not set(self.kinds) <= set(FAULT_KINDS):
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("fault share must lie in [0, 1]")
        self.method = self.method.upper() if self.method else None
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(
        cls,
        spec: str,
        delay_s: float = 15.0,
        seed: int = 0,
        path: str | None = None,
        method: str | None = None,
    ) -> FaultPlan:
        """`KIND:N` fails the next N requests; `KIND:0.25` fails a quarter of them at random."""
        kind, _, amount = spec.partition(":")
        if not amount:
            raise ValueError(f"fault spec {spec!r} must look like 500:3 or 429:0.2")
        where = {"delay_s": delay_s, "seed": seed, "path": path, "method": method}
        if "." in amount:
            return cls(kind=kind, share=float(amount), **where)
        return cls(kind=kind, count=int(amount), **where)

    def matches(self, method: str | None, path: str | None) -> bool:
        return self.path in (None, path) and self.method in (None, method)

    def draw(self, method: str | None = None, path: str | None = None) -> str | None:
        if not self.matches(method, path):
            return None
        if self.skip > 0:
            self.skip -= 1
            return None
        if self.count > 0:
            self.count -= 1
            return self._served()
        if self.share > 0 and self._rng.random() < self.share:
            return self._served()
        return None

    def _served(self) -> str:
        if self.kinds and not self._deck:
            self._deck = list(self.kinds)
            self._rng.shuffle(self._deck)
        kind = self._deck.pop() if self.kinds else self.kind
        self.drawn[kind] = self.drawn.get(kind, 0) + 1
        return kind
