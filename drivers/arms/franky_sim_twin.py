"""franky-sim's MuJoCo server (real libfranka protocol on loopback) plus what safety tests need.

franky-sim reports a zero external wrench; this twin fills O_F_ext_hat_K from MuJoCo contacts and
can put a table in front of the arm, so a force limit can be exercised over the real protocol.

    python -m drivers.arms.franky_sim_twin --hostname 127.0.0.5 [--table-top-z-m 0.4]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque

import numpy as np

from drivers.arms.contact_wrench import external_wrench, robot_body_ids
from drivers.errors import DeviceConnectionError

READY_LINE = "Connect to the server using"  # what franky-sim's own console script prints when bound


def build_simulator(table_top_z_m: float | None):
    from franky_sim.mujoco_simulator import FrankaMujocoRobot, MujocoSimulator

    class ContactWrenchRobot(FrankaMujocoRobot):
        """Reports the contact wrench at the TCP where franky-sim leaves zeros."""

        _body_ids: np.ndarray | None = None

        @property
        def state(self):
            base = super().state
            if self.model is None:
                return base
            if self._body_ids is None:
                self._body_ids = robot_body_ids(self.model, "robot0_base")
            tcp_m = np.asarray(base.O_T_EE).reshape(4, 4, order="F")[:3, 3]
            on_robot = external_wrench(self.model, self.data, self._body_ids, tcp_m)
            # libfranka's sign: the wrench the robot applies to the environment
            return base.replace(O_F_ext_hat_K=tuple(float(-w) for w in on_robot))

    sim = MujocoSimulator(enable_visualization=False)
    robot = sim.add_robot()
    robot.__class__ = ContactWrenchRobot  # add_robot() builds the plain class; this only adds a property
    if table_top_z_m is not None:
        half_height_m = table_top_z_m / 2
        ET.SubElement(
            sim.worldbody, "geom", name="table", type="box",
            size=f"0.25 0.4 {half_height_m}", pos=f"0.55 0 {half_height_m}", rgba="0.6 0.5 0.4 1",
        )
    return sim, robot


def main(argv: list[str] | None = None) -> None:
    from franky_sim import SimulationServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostname", required=True, help="loopback address to bind, e.g. 127.0.0.5")
    parser.add_argument("--table-top-z-m", type=float, default=None, help="put a table under the arm at this height")
    args = parser.parse_args(argv)

    sim, robot = build_simulator(args.table_top_z_m)
    with sim, SimulationServer(sim, hostname_candidates=[args.hostname]) as server:
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "running", False))
        print(f"{READY_LINE} '{robot.hostname}' as the robot IP address", flush=True)
        try:
            server.run_forever()
        except KeyboardInterrupt:
            pass


def _free_loopback_host() -> str:
    """A 127.x.y.z address whose libfranka port (1337) nobody holds, so parallel servers do not collide."""
    for _ in range(50):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((host, 1337))
                return host
            except OSError:
                continue
    raise DeviceConnectionError("found no free loopback address for a franky-sim server; stop stale franky-sim processes.")


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the child before exec: the kernel kills it when the parent dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: stop()/atexit still end the server
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class FrankySimProcess:
    """Runs the twin server in a child process: `with FrankySimProcess() as host: FrankyArm(host, realtime="ignore")`.

    The child gets a higher scheduling priority when allowed, since its 1 kHz loop shares the CPU.
    It dies with the thread that started it (PR_SET_PDEATHSIG), so a killed session leaves no server.
    """

    def __init__(self, table_top_z_m: float | None = None, startup_timeout_s: float = 60.0):
        self.table_top_z_m = table_top_z_m
        self.startup_timeout_s = startup_timeout_s
        self.host: str | None = None
        self._proc: subprocess.Popen | None = None
        self.output: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()

    def start(self) -> str:
        self.host = _free_loopback_host()
        cmd = [sys.executable, "-m", "drivers.arms.franky_sim_twin", "--hostname", self.host]
        if self.table_top_z_m is not None:
            cmd += ["--table-top-z-m", str(self.table_top_z_m)]
        parent_pid = os.getpid()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                      preexec_fn=lambda: _die_with_parent(parent_pid))
        try:
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, -10)
        except OSError:
            pass  # not permitted: the server still runs, only less steadily under load
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = " | ".join(list(self.output)[-5:])
                self.stop()
                raise DeviceConnectionError(f"the franky-sim server did not start ({tail or 'no output'}); run `python -m drivers.arms.franky_sim_twin --hostname 127.0.0.2` to see why.")
        return self.host

    def _drain(self) -> None:
        # keep reading so the child never blocks on a full pipe
        for line in self._proc.stdout:
            self.output.append(line.rstrip())
            if READY_LINE in line:
                self._ready.set()

    @property
    def returncode(self) -> int | None:
        """None while the server runs (or before start), else its exit status (negative: killed by that signal)."""
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> None:
        """Die like a crashed or unplugged robot: no goodbye on the sockets."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
