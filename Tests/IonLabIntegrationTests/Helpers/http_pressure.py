"""Presses on ionlab's HTTP side from loopback and prints what happened as JSON, for DashboardTests:
a client that sends its request head one byte at a time (slowloris), a head larger than the server reads,
more connections than the limit, and an event stream that is never read."""
import json
import select
import socket
import sys
import threading
import time

port, token, limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
seen = {}


def get(path, bearer=True, timeout=5):
    """One GET; the status code, or the error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            auth = f"Authorization: Bearer {token}\r\n" if bearer else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n".encode())
            return int(s.recv(64).split(b" ")[1])
    except Exception as error:
        return f"{type(error).__name__}: {error}"


# A slowloris: the head never ends; a byte every second keeps the socket busy but finishes nothing.
loris = socket.create_connection(("127.0.0.1", port))
loris.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
stop = threading.Event()
closed_at = {}


def trickle():
    start = time.time()
    while not stop.is_set():
        try:
            loris.sendall(b"X")
        except OSError:
            closed_at["loris"] = time.time() - start
            return
        time.sleep(1)


threading.Thread(target=trickle, daemon=True).start()
time.sleep(2)
seen["servedDuringLoris"] = get("/metrics")
# An event stream that is read once, then never: the server must not buffer for it without bound.
stream = socket.create_connection(("127.0.0.1", port))
stream.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
seen["streamHead"] = stream.recv(1024).split(b"\r\n")[0].decode()

# A head of 200 KiB: refused, not read into memory.
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode() + b"a" * (200 << 10) + b"\r\n\r\n")
        answer = s.recv(64)
        seen["hugeHead"] = int(answer.split(b" ")[1]) if answer else "closed"
except OSError as error:
    seen["hugeHead"] = "closed"

# Connections up to the limit are held; those past it are closed at once; afterwards all is served again.
# Which ones are past it is the server's order of accepting them (its event loops race), not the order they
# were opened in: so count the closed ones, with the loris and the stream also holding a place each.
held = []
for _ in range(limit + 4):
    held.append(socket.create_connection(("127.0.0.1", port)))
opened = time.time()
closed_in = []
waiting = list(held)
while waiting and time.time() < opened + 5:
    readable, _, _ = select.select(waiting, [], [], opened + 5 - time.time())
    for s in readable:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            closed_in.append(time.time() - opened)
            waiting.remove(s)
seen["pastLimitClosed"] = len(closed_in)
seen["pastLimitSlowestClose"] = max(closed_in, default=None)
for s in held:
    s.close()
time.sleep(1)
seen["servedAfterLimit"] = get("/metrics")

# The slowloris is closed by the idle timeout (30 s), counted from its connection.
deadline = time.time() + 45
while "loris" not in closed_at and time.time() < deadline:
    time.sleep(0.5)
stop.set()
seen["lorisClosedAfter"] = closed_at.get("loris")
stream.close()
json.dump(seen, sys.stdout)
