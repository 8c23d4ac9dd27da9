"""t/lib/attack.py — hostile SMTP clients for t/attack.bats.

    attack.py longline PORT LISTENER_PID        a 10 MB command line, then NOOP
    attack.py rcpts PORT LISTENER_PID COUNT     COUNT pipelined RCPTs
    attack.py bdat-big PORT LISTENER_PID BYTES  one BDAT chunk of BYTES
    attack.py slow PORT INTERVAL                a command one byte per INTERVAL s
    attack.py hold PORT SOURCE_IP N             N sessions from SOURCE_IP, held
    attack.py send PORT FIRST COUNT SIZE RCPT   messages FIRST.. of SIZE bytes,
                                                 one session each, "X-Seq: N"

Each prints what it saw, one "key value" per line, for the test to assert.
Memory is the VmRSS of the session process (the listener's child), sampled
while the attack runs; "rss_growth_kb" is the largest rise over the value
after the greeting.
"""
import socket
import sys
import threading
import time


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the session's VmRSS every 20 ms until stopped."""

    def __init__(self, listener):
        super().__init__(daemon=True)
        self.listener, self.pid, self.base, self.peak = listener, None, 0, 0
        self.done = threading.Event()

    def start_on_session(self):
        deadline = time.time() + 10
        while not children(self.listener) and time.time() < deadline:
            time.sleep(0.01)
        kids = children(self.listener)
        self.pid = kids[-1] if kids else None
        self.base = self.peak = rss_kb(self.pid) if self.pid else 0
        self.start()

    def run(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_kb(self.pid))

    def stop(self):
        self.done.set()
        self.join()
        print("rss_base_kb", self.base)
        print("rss_growth_kb", self.peak - self.base)


def connect(port, source=None):
    s = socket.socket()
    s.settimeout(60)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s, s.makefile("rb")


def reply(f):
    """One whole reply (continuation lines joined); "EOF" when closed."""
    lines = []
    while True:
        try:
            line = f.readline()
        except ConnectionResetError:	# closed with our data unread
            line = b""
        if not line:
            return "EOF" if not lines else lines[-1]
        line = line.decode("latin1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return line


def longline(port, listener):
    s, f = connect(port)
    print("greeting", reply(f))
    sampler = Sampler(listener)
    sampler.start_on_session()
    s.sendall(b"EHLO attacker.example\r\n")
    reply(f)
    chunk = b"A" * 65536
    for _ in range(160):			# 10 MiB
        s.sendall(chunk)
    s.sendall(b"\r\nNOOP\r\n")
    print("longline", reply(f))
    print("noop", reply(f))
    sampler.stop()
    s.sendall(b"QUIT\r\n")
    print("quit", reply(f))


def rcpts(port, listener, count):
    s, f = connect(port)
    print("greeting", reply(f))
    sampler = Sampler(listener)
    sampler.start_on_session()
    s.sendall(b"EHLO attacker.example\r\nMAIL FROM:<a@ok.example>\r\n")
    reply(f)
    reply(f)

    def writer():
        try:
            for start in range(0, count, 10000):
                s.sendall(b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i
                                   for i in range(start, min(count, start + 10000))))
        except OSError:
            pass
    t = threading.Thread(target=writer, daemon=True)
    started = time.time()
    t.start()
    codes, last, n = {}, "", 0
    while True:
        line = reply(f)
        if line == "EOF":
            break
        n += 1
        codes[line[:9]] = codes.get(line[:9], 0) + 1
        last = line
        if n == count:
            break
    sampler.stop()
    for code in sorted(codes):
        print("reply", code.replace(" ", "_"), codes[code])
    print("replies", n)
    print("last", last)
    print("seconds", round(time.time() - started, 1))


def bdat_big(port, listener, size):
    s, f = connect(port)
    print("greeting", reply(f))
    sampler = Sampler(listener)
    sampler.start_on_session()
    s.sendall(b"EHLO attacker.example\r\nMAIL FROM:<a@ok.example> BODY=BINARYMIME\r\n"
              b"RCPT TO:<demo@example.com>\r\n")
    for _ in range(3):
        reply(f)
    s.sendall(b"BDAT %d LAST\r\n" % size)
    chunk = b"B" * 65536
    left = size
    while left > 0:
        n = min(left, len(chunk))
        s.sendall(chunk[:n])
        left -= n
    print("bdat", reply(f))
    sampler.stop()
    s.sendall(b"NOOP\r\n")
    print("noop", reply(f))


def slow(port, interval):
    s, f = connect(port)
    print("greeting", reply(f))
    started = time.time()
    sent = 0
    s.settimeout(interval)
    for byte in b"EHLO slowloris.example.with.a.long.name\r\n":
        try:
            s.sendall(bytes([byte]))
            sent += 1
            data = s.recv(4096)
            # the server spoke (a reply, or its goodbye)
            print("answer", data.decode("latin1").strip().replace("\r\n", " | "))
            break
        except socket.timeout:
            continue
        except OSError:
            break
    print("bytes_sent", sent)
    print("seconds", round(time.time() - started, 1))


def hold(port, source, count):
    held = []
    for _ in range(count):
        s, f = connect(port, source)
        print("greeting", reply(f)[:9].replace(" ", "_"))
        held.append((s, f))
    sys.stdout.flush()
    sys.stdin.read()			# held until the test closes stdin


def send(port, first, count, size, rcpt):
    """Each message in its own session; prints "msg N REPLY" with the reply
    to the end of its data (or the refusal that came first)."""
    for n in range(first, first + count):
        try:
            s, f = connect(port)
        except OSError as e:
            print("msg", n, "connect", e.errno)
            continue
        body = (b"Subject: seq %d\r\nX-Seq: %d\r\n\r\n" % (n, n)
                + (b"x" * 76 + b"\r\n") * (size // 78))
        final = reply(f)
        for cmd in (b"EHLO filler.example", b"MAIL FROM:<a@ok.example>",
                    b"RCPT TO:<%s>" % rcpt.encode(), b"DATA"):
            if not final.startswith("2") and not final.startswith("3"):
                break
            s.sendall(cmd + b"\r\n")
            final = reply(f)
        if final.startswith("354"):
            s.sendall(body + b".\r\n")
            final = reply(f)
        print("msg", n, final[:9].replace(" ", "_"), flush=True)
        try:
            s.sendall(b"QUIT\r\n")
            s.close()
        except OSError:
            pass


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "longline":
        longline(port, int(sys.argv[3]))
    elif cmd == "rcpts":
        rcpts(port, int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "bdat-big":
        bdat_big(port, int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "slow":
        slow(port, float(sys.argv[3]))
    elif cmd == "send":
        send(port, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
             sys.argv[6])
    elif cmd == "hold":
        hold(port, sys.argv[3], int(sys.argv[4]))
    sys.stdout.flush()


main()
