"""A real Redis Cluster of our own on loopback: 3 primaries and 3 replicas of Debian's
redis-server, each on a free port in its own directory, made with `redis-cli --cluster create`,
stopped by PID. Shared by the tests and the bench (`--redis-cluster` capacity runs).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from framewire_bench.stack import Service, StackError, free_ports, wait_until


class RedisClusterServers:
    """`primaries` primaries with `replicas` replicas each; `node_timeout_ms` sets how soon a
    lost primary's replica takes over. `password` sets both `requirepass` and `masterauth`.
    `tls`: a directory with `ca.crt`, `server.crt` and `server.key` (see `make_certificates`):
    every node then speaks TLS only, to clients, to its replicas and on the cluster bus."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 2000,
        password: str = "",
        directory: Path | None = None,
        tls: Path | None = None,
    ) -> None:
        self.tls = tls
        self.binary = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        if self.binary is None or self.cli is None:
            raise StackError("redis-server and redis-cli are needed (Debian: apt install redis)")
        count = primaries * (1 + replicas)
        ports = free_ports(2 * count)  # each node's client port and its cluster bus port
        self.ports, self._bus = ports[:count], dict(zip(ports[:count], ports[count:], strict=True))
        self.primaries, self.replicas = primaries, replicas
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="fw-cluster-")
        self.directory = directory or Path(self._tmp.name)  # type: ignore[union-attr]
        self.nodes: dict[int, Service] = {}  # port -> its redis-server

    @property
    def seeds(self) -> str:
        """Every node as `HOST:PORT,...` (the `--redis-cluster` value)."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def url(self) -> str:
        """The `--redis-url` that carries the password (its host is one more seed)."""
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.ports[0]}/0"

    @property
    def args(self) -> list[str]:
        """The framewire options that use it."""
        return ["--redis-url", self.url, "--redis-cluster", self.seeds]

    @property
    def pids(self) -> dict[str, int]:
        """Its processes by name, for the bench's CPU readings."""
        return {f"redis-{port}": s.proc.pid for port, s in self.nodes.items()}

    @property
    def _options(self) -> dict[str, Any]:
        tls = {"ssl": True, "ssl_ca_certs": str(self.tls / "ca.crt")} if self.tls else {}
        return {"protocol": 2, "password": self.password or None, "socket_timeout": 5, **tls}

    def node(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, **self._options)

    def client(self) -> ClusterClient:
        seeds = [ClusterNode("127.0.0.1", port) for port in self.ports]
        return ClusterClient(startup_nodes=seeds, **self._options)

    def start(self) -> None:
        """Start every node, join them into a cluster, return once every node says `ok`."""
        try:
            for port in self.ports:
                self._start_node(port)
            auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
            tls = ["--tls", "--cacert", str(self.tls / "ca.crt")] if self.tls else []
            create = [self.cli, *auth, *tls, "--cluster", "create"]
            create += [f"127.0.0.1:{port}" for port in self.ports]
            create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                raise StackError(f"redis-cli --cluster create failed: {' | '.join(tail)}")
            for port in self.ports:  # a replica that never synced would not take over
                wait_until(lambda p=port: self.healthy(p), what=f"cluster node {port} ok")
        except BaseException:
            self.stop()
            raise

    def _start_node(self, port: int) -> None:
        home = self.directory / str(port)
        home.mkdir(parents=True, exist_ok=True)
        command = [self.binary or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--dir", str(home), "--save", "", "--appendonly", "no"]
        command += ["--repl-diskless-sync-delay", "0"]  # replicas sync at once
        command += ["--cluster-require-full-coverage", "no"]  # the others serve on a loss
        command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        command += ["--cluster-port", str(self._bus[port])]
        command += ["--cluster-node-timeout", str(self.node_timeout_ms)]
        if self.password:
            command += ["--requirepass", self.password, "--masterauth", self.password]
        if self.tls:
            command[command.index("--port") + 1] = "0"
            command += ["--tls-port", str(port), "--tls-cluster", "yes", "--tls-replication", "yes"]
            command += ["--tls-auth-clients", "no", "--tls-ca-cert-file", str(self.tls / "ca.crt")]
            command += ["--tls-cert-file", str(self.tls / "server.crt")]
            command += ["--tls-key-file", str(self.tls / "server.key")]
        service = Service.start(f"redis-{port}", command, home / "redis.log")
        self.nodes[port] = service
        wait_until(lambda: service.check() or self.node(port).ping(), what=f"redis-server {port}")

    def healthy(self, port: int) -> bool:
        """Whether the node sees the cluster ok and, if a replica, its primary's link up."""
        node = self.node(port)
        replication = node.info("replication")
        linked = replication["role"] == "master" or replication["master_link_status"] == "up"
        return linked and node.cluster("INFO").get("cluster_state") == "ok"

    def primary_ports(self) -> list[int]:
        """The ports of the nodes that are primaries now, as a live node sees it."""
        found = []
        for port, service in self.nodes.items():
            if service.proc.poll() is None and self.node(port).info("replication")["role"] == (
                "master"
            ):
                found.append(port)
        return sorted(found)

    def owner(self, key: str) -> int:
        """The port of the primary that owns `key`'s slot now."""
        return self.client().get_node_from_key(key).port

    def move_slot(self, slot: int, to_port: int) -> None:
        """Reshard: move one slot (and its keys) from its primary to the primary at `to_port`,
        the way `redis-cli --cluster reshard` does (IMPORTING, MIGRATING, MIGRATE, NODE)."""
        client = self.client()
        source_port = client.nodes_manager.get_node_from_slot(slot).port
        source, target = self.node(source_port), self.node(to_port)
        source_id, target_id = (
            n.execute_command("CLUSTER MYID").decode() for n in (source, target)
        )
        target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        auth = ["AUTH", self.password] if self.password else []
        while keys := source.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            source.execute_command(
                "MIGRATE", "127.0.0.1", to_port, "", 0, 5000, *auth, "KEYS", *keys
            )
        for port in self.primary_ports():
            self.node(port).execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)

    def kill(self, port: int) -> None:
        """SIGKILL one node (its process only)."""
        self.nodes[port].stop(signal.SIGKILL)

    def stop(self) -> None:
        for service in self.nodes.values():
            service.kill()
        if self._tmp is not None:
            self._tmp.cleanup()


def make_certificates(directory: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl), in
    `directory`: ca.crt, server.crt, server.key. Returns `directory`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("openssl is needed for TLS (Debian: apt install openssl)")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    new_key = ["-newkey", "rsa:2048", "-nodes"]
    run(
        "req",
        "-x509",
        *new_key,
        "-days",
        "2",
        "-subj",
        "/CN=framewire test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run("req", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return directory
