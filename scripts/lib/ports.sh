# shellcheck shell=bash
# Shared by the scripts that start servers on loopback (lib/openbao.sh, lib/moto.sh): the one
# free-port helper. Source it; it defines functions only. Needs python3.

# free_port [COUNT]: prints a loopback port P such that P..P+COUNT-1 are all free now (COUNT
# defaults to 1; OpenBao's dev mode binds P and P+1). Another process may still take it before
# the server binds it.
free_port() {
    python3 - "${1:-1}" <<'PY'
import socket, sys
count = int(sys.argv[1])
while True:
    held = [socket.socket()]
    held[0].bind(("127.0.0.1", 0))
    port = held[0].getsockname()[1]
    try:
        for i in range(1, count):
            held.append(socket.socket())
            held[-1].bind(("127.0.0.1", port + i))
    except OSError:
        continue
    print(port)
    break
PY
}
