#!/usr/bin/env python3
"""Bulk TCP transfers for the port forward tests, independent of ionlab.

  tcp_bulk.py sink PORT        accept connections on 127.0.0.1:PORT; read each to its end of input (the
                               client's half-close), then answer "BYTES SHA256" and close
  tcp_bulk.py send PORT MIB    send MIB mebibytes of varied data, half-close, and print the answer beside
                               what was sent as JSON: {"bytes", "sent", "match", "seconds"}
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time


def sink(port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)

    def serve(connection):
        digest, count = hashlib.sha256(), 0
        while True:
            chunk = connection.recv(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            count += len(chunk)
        connection.sendall(f"{count} {digest.hexdigest()}\n".encode())
        connection.close()

    while True:
        connection, _ = server.accept()
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


def send(port, mebibytes):
    connection = socket.create_connection(("127.0.0.1", port))
    digest = hashlib.sha256()
    block = bytearray(os.urandom(1 << 20))
    start = time.monotonic()
    for index in range(mebibytes):
        block[:8] = index.to_bytes(8, "little")  # no two blocks alike
        connection.sendall(block)
        digest.update(block)
    connection.shutdown(socket.SHUT_WR)
    answer = connection.makefile().readline().split()
    seconds = time.monotonic() - start
    received = int(answer[0]) if answer else -1
    print(json.dumps({"bytes": received, "sent": mebibytes << 20,
                      "match": len(answer) == 2 and answer[1] == digest.hexdigest(), "seconds": seconds}))


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(int(sys.argv[2]))
    else:
        send(int(sys.argv[2]), int(sys.argv[3]))
