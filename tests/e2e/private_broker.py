"""A RabbitMQ node of one test's own, for fault tests that kill the broker: the machine's default
node serves every other test (and other people's), so it is never touched. Debian's
rabbitmq-server runs as this user with its node name, ports, data, logs, pid file, plugins file and
Erlang cookie (HOME) in a temporary directory; kill9() kills its Erlang VM (beam.smp, from the pid
file) the way a crash or the OOM killer would, start() again recovers from the same data."""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from platform_proc import free_port, wait_for

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the script itself: the sbin wrapper drops to the rabbitmq user


def available():
    """None when a private node can be started here, else the reason it cannot."""
    if not os.path.exists(SERVER):
        return "RabbitMQ (Debian's rabbitmq-server) is not installed"
    return None


class PrivateBroker:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rp-broker-")
        self.node = "rp-fault-%s@localhost" % secrets.token_hex(4)
        self.port = free_port()
        self.env = dict(os.environ)
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")  # no management listener, nothing else to bind
        self.env.update({
            "HOME": self.dir,  # a cookie of its own
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            # files that do not exist: none of the machine's configuration applies
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),
        })
        self.proc = None
        self.url = "amqp://guest:guest@127.0.0.1:%d/" % self.port

    def start(self, timeout=180):
        """Starts the node (again, on the same data after kill9) and waits until it takes AMQP
        connections."""
        try:
            os.unlink(self.env["RABBITMQ_PID_FILE"])
        except FileNotFoundError:
            pass
        out = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen([SERVER], env=self.env, stdout=out, stderr=out, cwd=self.dir,
                                     start_new_session=True)
        out.close()
        wait_for(self._ready, timeout, "the private RabbitMQ node to start")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("the private RabbitMQ node exited with %s:\n%s" % (self.proc.returncode, self.tail()))
        # the AMQP 0-9-1 protocol header is answered with a connection.start method frame (type 1)
        # once the node takes connections; the listener opens only at the end of the boot
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1) == b"\x01" and self.pid() is not None
        except OSError:
            return False

    def pid(self):
        """The Erlang VM's process id, from the node's pid file (None before it is written)."""
        try:
            with open(self.env["RABBITMQ_PID_FILE"]) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def kill9(self):
        """SIGKILLs the broker's VM (no clean shutdown) and waits until its port is closed."""
        pid = self.pid()
        assert pid, "no pid file"
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=60)  # the start script ends with its VM

        def closed():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) != 0
        wait_for(closed, 30, "the killed broker's port to close")

    def stop(self):
        """Stops the node (SIGTERM: Erlang's clean halt; SIGKILL after 60 s) and removes its files."""
        pid = self.pid()
        if self.proc is not None and self.proc.poll() is None:
            if pid:
                os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if pid:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, n=30):
        path = os.path.join(self.dir, "log", self.node + ".log")
        try:
            with open(path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""
