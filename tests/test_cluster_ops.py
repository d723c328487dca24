"""Operations (metrics: tests/test_metrics.py): ordering under load, `vani up` start/stop, `vani status`."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import httpx
import psutil
import pytest

from tests.audio_frames import frame_seq, numbered_frame
from tests.conftest import free_port
from vani.client.session_client import VaniSession
from vani.client.talk import read_pcm16, write_pcm16

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # `vani up` runs from the repository


@pytest.mark.slow
async def test_10000_frames_20_sessions_as_fast_as_possible_arrive_complete_and_in_order(vani_cluster):
    url = vani_cluster.url("fast")  # echo delay 0, flood guard off
    n = 10_000

    async def one(k: int) -> list[int]:
        # No client keepalive pings: this test saturates the client's own event loop on purpose.
        # Twenty connects at once on a busy 2-core box: the handshake may wait; the test is about the frames.
        s = await VaniSession.connect(url, f"o-{k}-{uuid.uuid4().hex[:6]}", ping_interval=None, open_timeout=60)
        got: list[int] = []

        async def send() -> None:
            for i in range(n):
                await s.send_audio(numbered_frame(i, 640))

        sender = asyncio.create_task(send())
        while len(got) < n:
            item = await asyncio.wait_for(s.recv(), 60)
            if isinstance(item, bytes):
                got.append(frame_seq(item))
        await sender
        await s.close()
        return got

    results = await asyncio.gather(*(one(k) for k in range(20)))
    for got in results:
        assert got == list(range(n))


def exposed_listeners(pid: int) -> list[tuple[int, str]]:
    """(port, process name) of every socket of ``pid``'s process tree that listens beyond loopback."""
    out = []
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            name, conns = proc.name(), proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            ip = ipaddress.ip_address(c.laddr.ip)
            ip = getattr(ip, "ipv4_mapped", None) or ip
            if c.status == psutil.CONN_LISTEN and not ip.is_loopback:
                out.append((c.laddr.port, name))
    return out


def requires_ray_token(port: int) -> bool:
    """Whether a Serve replica's gRPC server refuses a call that carries no Ray auth token."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary("/ray.serve.ASGIService/HandleRequest")(b"", timeout=20)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


@pytest.mark.parametrize("ingress", ["haproxy", "proxy"])
def test_vani_up_serves_and_stops_cleanly_on_ctrl_c(tmp_path, ingress):
    port = free_port()
    env = {
        **os.environ,
        "VANI_INGRESS": ingress,
        "VANI_HTTP_PORT": str(port),
        # The dashboard too (on a free port), so the loopback check below covers it.
        "VANI_DASHBOARD": "true" if ingress == "haproxy" else "false",
        "VANI_DASHBOARD_PORT": str(free_port()),
        "VANI_HOSTS_PER_NODE": "1",
        "VANI_ECHO_DELAY_MS": "0",
        "VANI_SESSION_MODE": "echo",
        "PYTHONUNBUFFERED": "1",
    }
    vani = os.path.join(os.path.dirname(sys.executable), "vani")
    # Ctrl-C reaches `vani up` even when this suite runs as a background job of a non-interactive shell,
    # which starts it (and so every child) with SIGINT ignored.
    proc = subprocess.Popen(
        [vani, "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        url = None
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            lines.append(line)
            m = re.match(r"vani is up: (http://\S+)", line)
            if m:
                url = m.group(1).rstrip("/")
                break
        assert url == f"http://127.0.0.1:{port}", "".join(lines)[-3000:]
        assert httpx.get(f"{url}/healthz", timeout=10).json()["ok"] is True

        async def echo_once() -> bytes:
            async with await VaniSession.connect(url.replace("http", "ws", 1), "up-check") as s:
                await s.send_audio(numbered_frame(9))
                while True:
                    item = await asyncio.wait_for(s.recv(), 10)
                    if isinstance(item, bytes):
                        return item

        assert frame_seq(asyncio.run(echo_once())) == 9
        status = subprocess.run([vani, "status", "--url", url], capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert status.returncode == 0 and "sessions" in status.stdout and "host" in status.stdout
        wav = tmp_path / "tone.wav"
        write_pcm16(str(wav), b"".join(numbered_frame(i, 3200) for i in range(10)))  # 1 s
        talk = subprocess.run(
            [vani, "talk", "--wav", str(wav), "--url", url.replace("http", "ws", 1), "--tail-s", "0.5"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert talk.returncode == 0, talk.stdout + talk.stderr
        assert read_pcm16(str(tmp_path / "tone.reply.wav")) == read_pcm16(str(wav))  # echo: every byte back
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("raylet" in " ".join(c.cmdline()) for c in children if c.is_running())
        haproxy = [c for c in children if c.is_running() and "haproxy" in c.name().lower()]
        assert bool(haproxy) == (ingress == "haproxy"), [c.name() for c in children]
        # HAProxy's config and sockets in a private directory of this run (cluster/haproxy_files.py).
        configs = {c.cmdline()[c.cmdline().index("-f") + 1] for c in haproxy if "-f" in c.cmdline()}
        run_dirs = {os.path.dirname(os.path.dirname(p)) for p in configs}
        assert run_dirs == set() if ingress == "proxy" else len(run_dirs) == 1, configs
        assert all(os.stat(d).st_mode & 0o777 == 0o700 and "vani-hap-" in d for d in run_dirs), configs
        # Everything vani and its Ray listen on is loopback, except what Ray Serve hard-codes (README
        # "Security"): each replica's inter-deployment gRPC server, which demands Ray's auth token. HAProxy's
        # stats and Prometheus pages are Unix sockets (vani-haproxy).
        exposed = exposed_listeners(proc.pid)
        grpc_ports = [p for p, name in exposed if name.startswith("ray::ServeReplica")]
        rest = [(p, name) for p, name in exposed if p not in grpc_ports]
        assert rest == [], f"listening beyond loopback: {rest}"
        assert all(requires_ray_token(p) for p in grpc_ports), grpc_ports
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        rest = proc.stdout.read()
        assert "stopped." in rest
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
            if not alive:
                break
            time.sleep(0.5)
        assert not alive, f"left running: {[' '.join(c.cmdline())[:80] for c in alive]}"
        assert not [d for d in run_dirs if os.path.exists(d)], "vani up left its HAProxy directory behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_vani_deploy_onto_a_running_cluster(vani_cluster):
    env = {
        **os.environ,
        "VANI_APP_NAME": "deployed",
        "VANI_ROUTE_PREFIX": "/deployed",
        "VANI_HOSTS_PER_NODE": "1",
        "VANI_SESSION_MODE": "echo",
        "VANI_ECHO_DELAY_MS": "0",
        "VANI_HTTP_PORT": vani_cluster.http.rsplit(":", 1)[1],
    }
    vani = os.path.join(os.path.dirname(sys.executable), "vani")
    out = subprocess.run(
        [vani, "deploy", "--address", vani_cluster.cluster.address],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0 and "vani deployed" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    try:
        assert httpx.get(f"{vani_cluster.http}/deployed/healthz", timeout=10).json()["app"] == "deployed"

        async def echo_once() -> int:
            async with await VaniSession.connect(f"{vani_cluster.ws}/deployed", "dep-1") as s:
                await s.send_audio(numbered_frame(4))
                while True:
                    item = await asyncio.wait_for(s.recv(), 10)
                    if isinstance(item, bytes):
                        return frame_seq(item)

        assert asyncio.run(echo_once()) == 4
    finally:
        from vani.cluster.config import Settings
        from vani.cluster.run import undeploy

        undeploy(Settings.load(env={}, app_name="deployed"))
