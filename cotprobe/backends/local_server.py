"""Start a local OpenAI-compatible llama.cpp server on a GGUF file (tests, benchmarks, smoke runs).

Two servers are known: the C++ `llama-server` (found as $COTPROBE_LLAMA_SERVER or on PATH; takes
token-id prompts, runs `parallel` requests at once) and llama-cpp-python's
`python -m llama_cpp.server` (text prompts, one request at a time). `kind="auto"` takes the first
that is installed, in that order.

    with LocalServer(embedded_gguf("smollm2-135m-instruct"), "smollm2-135m-instruct") as server:
        backend = OpenAIBackend(server.url, "smollm2-135m-instruct", tokenizer_folder)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KINDS = ("llama-server", "llama-cpp-python")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llama_server_binary() -> str | None:
    path = os.environ.get("COTPROBE_LLAMA_SERVER") or shutil.which("llama-server")
    return path if path and Path(path).exists() else None


def available_kinds() -> list[str]:
    kinds = []
    if llama_server_binary():
        kinds.append("llama-server")
    if importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None:
        kinds.append("llama-cpp-python")
    return kinds


class LocalServer:
    """A llama.cpp server process on 127.0.0.1, ready once `start()` returns."""

    def __init__(self, gguf: str | Path, alias: str, *, kind: str = "auto", port: int | None = None,
                 n_ctx: int = 2048, threads: int | None = None, parallel: int = 1,
                 log: str | Path | None = None, ready_timeout: float = 120):
        if kind == "auto":
            found = available_kinds()
            if not found:
                raise RuntimeError("no local server installed: build llama-server or "
                                   "pip install 'llama-cpp-python[server]' (see docs/serving.md)")
            kind = found[0]
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}: use one of {', '.join(KINDS)}")
        self.kind, self.gguf, self.alias = kind, str(gguf), alias
        self.port = port or free_port()
        self.n_ctx, self.parallel = n_ctx, parallel
        # half the cores: llama.cpp's threads spin while they wait for each other, and on a busy
        # machine (or beside the client's own work) all cores make it many times slower, not faster
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.log = Path(log) if log else None
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        if self.kind == "llama-server":
            return [llama_server_binary(), "-m", self.gguf, "--alias", self.alias, "--host", "127.0.0.1",
                    "--port", str(self.port), "-c", str(self.n_ctx * self.parallel), "-np", str(self.parallel),
                    "-t", str(self.threads), "-tb", str(self.threads), "--no-webui"]
        return [sys.executable, "-m", "llama_cpp.server", "--model", self.gguf, "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)]

    def death(self, url: str | None = None) -> str | None:
        """Why the server process is gone, in one line (its exit status or signal and its log), or None
        while it runs. `url`: a server root the client asks about; None or this server's own root
        (the client's `watch`, see `OpenAIBackend`)."""
        if self.proc is None or self.proc.poll() is None:
            return None
        if url is not None and url.rstrip("/").removesuffix("/v1") != self.url.removesuffix("/v1"):
            return None
        code = self.proc.returncode
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        log = f"its log: {self.log}" if self.log else "no log kept (LocalServer(log=...) keeps one)"
        return f"the local {self.kind} server at {self.url} (pid {self.proc.pid}) {how}; {log}"

    def start(self) -> LocalServer:
        self.proc = self._spawn()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.death()} while starting")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer on {self.url} within {self.ready_timeout:.0f} s")

    def _spawn(self) -> subprocess.Popen:
        """The server process, its output appended to the log (the child keeps the file open)."""
        if self.log is None:
            return subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        with open(self.log, "ab") as out:
            return subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
