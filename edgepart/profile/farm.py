"""A farm of boards behind TVM's RPC tracker (`--tracker HOST:PORT --key KEY`).

Boards run TVM's RPC server registered with the tracker under a key (`python -m tvm.exec.rpc_server
--tracker HOST:PORT --key KEY`); a client asks the tracker for a board of that key and gets
whichever is free. `spread` runs units of work (a model to profile, say) over every board of the
key at once, a thread per board: each unit on the next free board, and a unit whose board drops out
mid-way (its server killed, its link lost) goes back to the queue for another board. Each result
records the board that measured it.

The tracker is asked in its own protocol (a request answered with the board's address and a
one-time key) rather than through TVM's TrackerSession.request, so that edgepart knows which board
it was given and can bound the wait for one.
"""

from __future__ import annotations

import collections
import socket
import statistics
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgepart import checks
from edgepart.errors import BadInputError, EdgepartError, ToolError

CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 600.0  # the longest wait for a free board
SESSION_TIMEOUT_S = 1800.0  # a board's server ends a session older than this
ATTEMPTS = 3  # boards a unit is tried on before it fails
SPEED_TOLERANCE = 0.2  # a board this far from the key's median time on the reference run is flagged


@dataclass
class Board:
    """A board the tracker handed out: its RPC server's address and the open session."""

    address: str
    session: Any

    def close(self) -> None:
        self.session = None  # TVM closes the connection when the session object goes


@dataclass
class Outcome:
    """One unit's result (or its error, after ATTEMPTS boards), the board that produced it, and
    the boards it was lost on before."""

    unit: Any
    result: Any = None
    error: str | None = None
    board: str | None = None
    lost_on: list[str] = field(default_factory=list)


class Farm:
    def __init__(self, tracker: str, key: str, option: str = "--tracker") -> None:
        address = checks.host_port(tracker)
        if address is None:
            raise BadInputError(f"{option} '{tracker}': expected HOST:PORT (a port from 1 to 65535)")
        if not key:
            raise BadInputError(f"{option}: needs --key, the key the boards registered under")
        (self.host, self.port), self.key, self.option = address, key, option
        self.boards()  # reachable now, or a clear error

    def _tracker(self, timeout_s: float) -> socket.socket:
        base = _rpc_base()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise ToolError(f"{self.option} {self.host}:{self.port}: no TVM RPC tracker reachable "
                            f"({exc.strerror or exc})") from None
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        if struct.unpack("<i", base.recvall(sock, 4))[0] != base.RPC_TRACKER_MAGIC:
            sock.close()
            raise ToolError(f"{self.option} {self.host}:{self.port}: not a TVM RPC tracker")
        return sock

    def _ask(self, message: list, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
        base = _rpc_base()
        sock = self._tracker(timeout_s)
        try:
            base.sendjson(sock, message)
            code, value = base.recvjson(sock)
        except TimeoutError:
            raise ToolError(f"{self.option}: no board of key '{self.key}' free within {timeout_s:g} s") from None
        finally:
            sock.close()
        if code != base.TrackerCode.SUCCESS:
            raise ToolError(f"{self.option}: the tracker refused the request ({value})")
        return value

    def boards(self) -> list[str]:
        """The addresses (HOST:PORT) of the boards registered under the key, free or busy."""
        summary = self._ask([_rpc_base().TrackerCode.SUMMARY])
        return [f"{address[0]}:{address[1]}" for entry in summary.get("server_info", [])
                for address in [entry.get("addr")] if entry.get("key", "").split(":")[-1] == self.key and address]

    def request(self) -> Board:
        """The next free board of the key (waiting for one up to REQUEST_TIMEOUT_S), connected."""
        base = _rpc_base()
        from tvm import rpc  # noqa: PLC0415 - after the runtime-only import

        url, port, matchkey = self._ask([base.TrackerCode.REQUEST, self.key, "", 0], REQUEST_TIMEOUT_S)
        return Board(f"{url}:{port}", rpc.connect(url, port, matchkey, session_timeout=SESSION_TIMEOUT_S))


def _rpc_base():
    """tvm.rpc.base, with TVM's runtime alone imported first (as a device has it)."""
    from edgepart.toolchain.tvm_tier import import_runtime  # noqa: PLC0415

    import_runtime("cpu")
    from tvm.rpc import base  # noqa: PLC0415

    return base


class BoardSpeeds:
    """Each board's time on one reference run, taken the first time the board is handed out, and the
    boards more than SPEED_TOLERANCE from the key's median: a board clocked down, throttling or busy
    measures something other than the key's boards do, and its profiles say so."""

    def __init__(self, reference: str, measure: Callable[[Board], float]) -> None:
        self.reference, self.measure = reference, measure
        self.seconds: dict[str, float] = {}
        self.lock = threading.Lock()

    def check(self, board: Board) -> None:
        with self.lock:
            if board.address in self.seconds:
                return
        seconds = self.measure(board)
        with self.lock:
            self.seconds[board.address] = seconds

    def summary(self) -> dict[str, Any]:
        if not self.seconds:
            return {"reference": self.reference, "seconds": {}, "median_s": None, "tolerance": SPEED_TOLERANCE,
                    "flagged": []}
        median = statistics.median(self.seconds.values())
        return {"reference": self.reference, "seconds": dict(sorted(self.seconds.items())), "median_s": median,
                "tolerance": SPEED_TOLERANCE,
                "flagged": sorted(a for a, s in self.seconds.items() if abs(s / median - 1) > SPEED_TOLERANCE)}


def spread(farm: Farm, units: list[Any], work: Callable[[Any, Board], Any],
           done: Callable[[Outcome], None] = lambda outcome: None,
           started: Callable[[Outcome, str], None] = lambda outcome, board: None,
           speeds: BoardSpeeds | None = None) -> list[Outcome]:
    """`work(unit, board)` for every unit, a thread per board of the farm's key; in the units' order.
    `started(outcome, board)` as a unit goes to a board, `done(outcome)` when it ends; `speeds`
    times each board on its reference run the first time it is handed out.
    An edgepart error (bad input, a compiler failure) ends the unit at once; any other (the board's
    connection lost, its server gone) sends it to another board, ATTEMPTS boards in all."""
    outcomes = [Outcome(unit) for unit in units]
    queue = collections.deque(outcomes)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                outcome = queue.popleft()
            board = None
            try:
                board = farm.request()
                if speeds is not None:
                    speeds.check(board)
                started(outcome, board.address)
                outcome.result, outcome.board = work(outcome.unit, board), board.address
            except EdgepartError as exc:
                outcome.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - TVM's RPC errors, sockets: the board is lost, not the unit
                outcome.lost_on.append(f"{board.address if board else 'no board'}: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''}"[:300])
                if len(outcome.lost_on) < ATTEMPTS:
                    with lock:
                        queue.append(outcome)
                    continue
                outcome.error = f"lost on {ATTEMPTS} boards; last: {outcome.lost_on[-1]}"
            finally:
                if board is not None:
                    board.close()
            done(outcome)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, len(farm.boards())))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
