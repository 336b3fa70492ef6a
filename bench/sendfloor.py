"""The machine's floor for fan-out: what one frame to each of N sockets costs the kernel.

    python -m bench.sendfloor [--sockets 1000,5000] [--rate 10] [--seconds 5] [--out FILE]

No Django, no Daphne, no Python per socket beyond the ``send`` call: a thread accepts N
WebSocket connections from the bench's own load-client process (``bench.loadclients``, the
same receivers as in the e2e measure), answers each upgrade, and then sends every socket one
pre-framed text message per round, ``--rate`` rounds a second. The frame is the size of a
deflated round of the e2e measure (~3.4 KB: 50 tiles of ~1 KB). It reports the CPU per send
(the sending thread's own CPU time, user + system) and per message received (the load-client
process), and what those cost at the board's round rates: on loopback the kernel's receive
path runs in the sender's ``send``, so this is the least any server in any language pays per
socket and round on this machine, and the load clients' share is what the e2e measure's
neighbours take from the server it measures.
"""

import argparse
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ctiboard.lib.wsframes import text_frame

from .e2e import LoadClients
from .procs import cpu_seconds

FRAME_PAYLOAD = 3_400
ROUND_RATES = {"every 20 ms (CTIBOARD_PUSH_INTERVAL)": 50.0, "every 100 ms": 10.0}


class Sender:
    """Accepts WebSocket upgrades on 127.0.0.1 and keeps the sockets, in a thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        hello = text_frame(b"hello", deflated=False)
        self.listener.settimeout(0.2)
        while not self._stop:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(10)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed before its request")
                    request += chunk
                connection.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + hello)
            except OSError:
                connection.close()  # the load client counts it as failed
                continue
            connection.setblocking(False)
            self.sockets.append(connection)

    def rounds(self, frame: bytes, rate: float, seconds: float) -> dict[str, Any]:
        """Send ``frame`` to every socket ``rate`` times a second for ``seconds``, from this
        thread; its CPU time is what the sends cost."""
        sockets = list(self.sockets)
        interval = 1 / rate
        sent = refused = rounds = 0
        cpu_started, started = time.thread_time(), time.monotonic()
        next_round = started
        while time.monotonic() - started < seconds:
            for sock in sockets:
                try:
                    sent += sock.send(frame) == len(frame)
                except BlockingIOError:
                    refused += 1
            rounds += 1
            next_round += interval
            pause = next_round - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        return {
            "rounds": rounds,
            "wall_s": time.monotonic() - started,
            "cpu_s": time.thread_time() - cpu_started,
            "sent": sent,
            "refused": refused,
        }

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()
        self.listener.close()


def measure(steps: list[int], rate: float, seconds: float, workdir: Path) -> dict[str, Any]:
    frame = text_frame(os.urandom(FRAME_PAYLOAD // 2).hex().encode(), deflated=False)
    sender = Sender()
    clients = LoadClients(workdir)
    results: list[dict[str, Any]] = []
    try:
        opened = 0
        for count in steps:
            answer = clients.command(
                cmd="connect",
                url=f"ws://127.0.0.1:{sender.port}/",
                count=count - opened,
                headers={},
                concurrency=8,
                timeout=600,
            )
            opened = answer["open"]
            deadline = time.monotonic() + 30
            while len(sender.sockets) < opened and time.monotonic() < deadline:
                time.sleep(0.05)
            received_before = clients.command(cmd="stats")["messages"]
            client_cpu_before = cpu_seconds(clients.pid)
            run = sender.rounds(frame, rate, seconds)
            time.sleep(0.5)  # the clients read what is still in flight
            received = clients.command(cmd="stats")["messages"] - received_before
            client_cpu = cpu_seconds(clients.pid) - client_cpu_before
            send_us = 1e6 * run["cpu_s"] / max(1, run["sent"])
            receive_us = 1e6 * client_cpu / max(1, received)
            results.append(
                {
                    "sockets": opened,
                    "frame_bytes": len(frame),
                    **run,
                    "rounds_per_s": round(run["rounds"] / run["wall_s"], 2),
                    "received": received,
                    "send_us": round(send_us, 2),
                    "receive_us": round(receive_us, 2),
                    "cores_at": {
                        label: {
                            "sender": round(opened * per_second * send_us / 1e6, 3),
                            "receivers": round(opened * per_second * receive_us / 1e6, 3),
                        }
                        for label, per_second in ROUND_RATES.items()
                    },
                }
            )
    finally:
        clients.close()
        sender.close()
    return {"rate": rate, "seconds": seconds, "steps": results}


def run(ctx: Any) -> dict[str, Any]:
    """The suite's "floor" measure (``python -m bench --only floor``)."""
    steps = [1000] if ctx.quick else [1000, 5000]
    workdir = ctx.workdir / "floor"
    workdir.mkdir(parents=True, exist_ok=True)
    result = measure(steps, rate=10.0, seconds=2.0 if ctx.quick else 5.0, workdir=workdir)
    for step in result["steps"]:
        ctx.log(
            f"floor N={step['sockets']}: send {step['send_us']} µs, receive"
            f" {step['receive_us']} µs per socket and round"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="1000,5000")
    parser.add_argument("--rate", type=float, default=10.0, help="rounds per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-sendfloor-") as workdir:
        steps = sorted(int(n) for n in args.sockets.split(","))
        result = measure(steps, args.rate, args.seconds, Path(workdir))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
