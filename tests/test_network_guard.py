import socket

import pytest


def test_a_test_cannot_reach_beyond_this_machine():
    # 192.0.2.0/24 is TEST-NET-1: the guard refuses before any packet leaves.
    with pytest.raises(RuntimeError, match="may only talk to localhost"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_localhost_stays_reachable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), timeout=1):
        pass
    server.close()
