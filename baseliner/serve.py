"""
The web server: uvicorn, with each worker process on a listening socket of its own.

    python -m baseliner.serve baseliner.asgi:application --workers 2 [any other uvicorn option]

With ``--workers N`` uvicorn's supervisor binds one socket and every worker accepts from it,
so whichever worker is ready (or idle) first takes the connections waiting. A terminal's
WebSocket lives for hours, so a bad split lasts all day: after a restart one of two workers
took all 200 terminals of a reconnect storm, and the other core served none of them
(bench/RESULTS.md, "Terminals spread over the workers").

Here the supervisor binds N sockets to the same address with SO_REUSEPORT, one per worker
slot, and listens on each before any worker starts. The kernel spreads new connections over
the sockets by their addresses, so each worker gets its share, even of connections that
arrived while it was starting; a worker that dies is replaced on its own slot, and its slot's
connections wait for the replacement in that socket's backlog. A Unix socket, ``--fd``, a
single worker or a system without SO_REUSEPORT is served exactly as uvicorn serves it. Every
other option, signal and health check is uvicorn's own (its version is pinned in
requirements.txt; tests/test_web_workers.py checks the spread).
"""
from __future__ import annotations

import importlib
import logging
import socket

from uvicorn.supervisors.multiprocess import STARTUP_FAILURE, Multiprocess, Process

logger = logging.getLogger("uvicorn.error")  # uvicorn's supervisor logs here


def slot_sockets(shared: socket.socket, n: int, backlog: int) -> list[socket.socket]:
    """``n`` listening sockets on ``shared``'s address, SO_REUSEPORT; ``shared`` is closed (it
    was bound without SO_REUSEPORT, which would keep the others off its port)."""
    address = shared.getsockname()
    family = shared.family
    shared.close()
    slots = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            slots.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in slots:
            sock.close()
        raise
    return slots


def _can_balance(config, sockets: list[socket.socket]) -> bool:
    return (config.workers > 1 and len(sockets) == 1 and config.fd is None and not config.uds
            and hasattr(socket, "SO_REUSEPORT") and sockets[0].family in (socket.AF_INET, socket.AF_INET6))


class SlotSupervisor(Multiprocess):
    """uvicorn's supervisor, with worker ``i`` always on slot socket ``i``. A worker added with
    SIGTTIN has no slot of its own and serves all of them (uvicorn's way)."""

    def __init__(self, config, sockets: list[socket.socket]) -> None:
        self.slots = slot_sockets(sockets[0], config.workers, config.backlog) if _can_balance(config, sockets) else []
        super().__init__(config, self.slots or sockets)

    def _process(self, idx: int) -> Process:
        return Process(self.config, [self.slots[idx]] if idx < len(self.slots) else self.sockets)

    # The three methods below are uvicorn 0.54's, with Process(self.config, self.sockets)
    # replaced by the worker's own slot.
    def init_processes(self) -> None:
        for idx in range(self.processes_num):
            process = self._process(idx)
            process.start()
            self.processes.append(process)

    def restart_all(self) -> None:
        for idx, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._process(idx)
            new_process.start()
            if not new_process.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new_process.kill()
                new_process.join()
                if not self.should_exit.is_set():
                    logger.error(f"New child process [{new_process.pid}] was not ready in time; "
                                 f"keeping worker [{old_process.pid}] and aborting the restart.")
                return
            old_process.terminate()
            old_process.join()
            self.processes[idx] = new_process

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died")
            process = self._process(idx)
            process.start()
            self.processes[idx] = process


def main() -> None:
    # uvicorn.main.run() builds its supervisor from this module-level name: uvicorn's own
    # command line, options and signals, with the supervisor above. (The module, not the
    # package's attribute ``uvicorn.main``, which is the command's function.)
    cli = importlib.import_module("uvicorn.main")
    cli.Multiprocess = SlotSupervisor
    cli.main()


if __name__ == "__main__":
    main()
