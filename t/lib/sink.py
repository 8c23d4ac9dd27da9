#!/usr/bin/env python3
"""sink.py - a small SMTP receiver for bridgehead's tests (standard library only).

    sink.py --listen IP:PORT --dir DIR [options]

Records, in DIR (created if missing):
    commands        every command line received: "SESSION LINE" (AUTH
                    payloads included; DATA bodies not)
    N.env           per accepted message: "helo NAME", "tls yes|no",
                    "peer IP" (the client's address), "time UNIXTIME.MS",
                    "auth USER" (when authenticated), "mail <ADDR> PARAMS",
                    one "rcpt <ADDR> PARAMS" per accepted recipient
    N.eml           the message as received (dot-unstuffed; BDAT chunks joined)
    max-concurrent  the most sessions open at once (rewritten as it grows)
    max-per-domain  the most sessions at once that carried recipients of one
                    domain: "DOMAIN N" lines, rewritten as they grow
    sessions        the number of sessions accepted so far
    ready           written once listening (wait for it before sending)

Options:
    --ext LIST      extensions announced (default
                    PIPELINING,SIZE,8BITMIME,DSN,CHUNKING,BINARYMIME,ETRN and
                    STARTTLS when --tls is given, AUTH when --auth is given);
                    "--ext ''" announces none (EHLO still answers 250)
    --no-ehlo       answer EHLO with 502 (HELO only)
    --size N        SIZE limit announced and enforced (552 5.3.4)
    --tls CERT,KEY  offer STARTTLS with this certificate
    --auth USER:PASS  offer AUTH PLAIN LOGIN and require it before MAIL
    --reply 'WHAT[@N]=CODE TEXT'  answer CODE TEXT instead of accepting, where
                    WHAT is greeting, ehlo, mail, rcpt:ADDR (lower case), data
                    (the reply after the message) or quit; with @N only the
                    Nth time it happens (counted per sink; for rcpt per
                    address), e.g. 'rcpt:a@x.test@1=451 4.3.0 later'.
                    A CODE of 000 closes the connection without a reply.
    --delay SEC     wait SEC before each reply to MAIL (slow peer)
    --count-only    keep no N.env/N.eml and no commands: only the file
                    "messages" (the count, written as each session ends)
"""
import argparse
import os
import socket
import ssl
import sys
import threading

LINE_MAX = 4096


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.counts = {}
        self.active = 0
        self.max_active = 0
        self.domains = {}
        self.max_domains = {}
        self.sessions = 0
        self.messages = 0
        self.commands = None
        self.replies = []
        for r in args.reply or []:
            what, _, answer = r.partition("=")
            nth = None
            if "@" in what and what.rsplit("@", 1)[1].isdigit():
                what, n = what.rsplit("@", 1)
                nth = int(n)
            self.replies.append((what.lower(), nth, answer))

    def write(self, name, text):
        path = os.path.join(self.args.dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)

    def planned(self, what):
        """The reply planned for this occurrence of WHAT, or None."""
        with self.lock:
            n = self.counts[what] = self.counts.get(what, 0) + 1
        for w, nth, answer in self.replies:
            if w == what and (nth is None or nth == n):
                return answer
        return None

    def enter(self):
        with self.lock:
            self.active += 1
            self.sessions += 1
            self.max_active = max(self.max_active, self.active)
            self.write("max-concurrent", "%d\n" % self.max_active)
            self.write("sessions", "%d\n" % self.sessions)

    def leave(self, domains):
        with self.lock:
            self.active -= 1
            for d in domains:
                self.domains[d] -= 1
            if self.args.count_only:
                self.write("messages", "%d\n" % self.messages)

    def add_domain(self, d):
        with self.lock:
            self.domains[d] = self.domains.get(d, 0) + 1
            if self.domains[d] > self.max_domains.get(d, 0):
                self.max_domains[d] = self.domains[d]
                self.write("max-per-domain", "".join(
                    "%s %d\n" % kv for kv in sorted(self.max_domains.items())))

    def log(self, sid, line):
        if self.args.count_only:
            return
        with self.lock:
            if self.commands is None:
                # line-buffered: every line is in the file when it is read
                self.commands = open(os.path.join(self.args.dir, "commands"),
                                     "a", buffering=1)
            self.commands.write("%d %s\n" % (sid, line))

    def store(self, env, data):
        with self.lock:
            self.messages += 1
            n = self.messages
        if self.args.count_only:
            return
        with open(os.path.join(self.args.dir, "%d.eml" % n), "wb") as f:
            f.write(data)
        self.write("%d.env" % n, "".join(line + "\n" for line in env))


class Session:
    def __init__(self, state, conn, sid):
        self.st, self.conn, self.sid = state, conn, sid
        self.file = conn.makefile("rb")
        self.tls = False
        self.helo = None
        self.user = None
        self.mail = None
        self.rcpts = []
        self.domains = set()
        self.chunks = None
        self.counted_out = False
        self.peer = conn.getpeername()[0]

    def close_count(self):
        if not self.counted_out:
            self.counted_out = True
            self.st.leave(self.domains)

    def send(self, text):
        self.conn.sendall(text.encode() + b"\r\n")

    def reply(self, what, default):
        answer = self.st.planned(what)
        if answer is not None and answer.startswith("000"):
            raise ConnectionAbortedError
        self.send(answer if answer is not None else default)
        return answer is None or answer[:1] == "2" or answer[:1] == "3"

    def line(self):
        data = self.file.readline(LINE_MAX)
        if not data:
            raise ConnectionAbortedError
        text = data.decode("utf-8", "replace").rstrip("\r\n")
        self.st.log(self.sid, text)
        return text

    def extensions(self):
        a = self.st.args
        if a.ext is not None:
            ext = [e for e in a.ext.split(",") if e]
        else:
            ext = "PIPELINING SIZE 8BITMIME DSN CHUNKING BINARYMIME ETRN".split()
            if a.tls and not self.tls:
                ext.append("STARTTLS")
            if a.auth:
                ext.append("AUTH PLAIN LOGIN")
        return ["SIZE %d" % a.size if e == "SIZE" and a.size else e for e in ext]

    def ehlo(self, arg):
        if self.st.args.no_ehlo:
            return self.send("502 5.5.1 no EHLO here")
        self.helo = arg
        answer = self.st.planned("ehlo")
        if answer is not None:
            if answer.startswith("000"):
                raise ConnectionAbortedError
            return self.send(answer)
        lines = ["sink.test"] + self.extensions()
        for i, text in enumerate(lines):
            self.send("250%s%s" % (" " if i == len(lines) - 1 else "-", text))

    def starttls(self):
        if not self.st.args.tls or self.tls:
            return self.send("502 5.5.1 no TLS")
        cert, key = self.st.args.tls.split(",")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.send("220 2.0.0 go ahead")
        self.conn = ctx.wrap_socket(self.conn, server_side=True)
        self.file = self.conn.makefile("rb")
        self.tls = True
        self.helo = None

    def auth(self, arg):
        import base64
        mech, _, rest = arg.partition(" ")
        if mech.upper() == "PLAIN":
            raw = base64.b64decode(rest or self.ask("334 "))
            _, user, pw = raw.split(b"\0")
        else:
            user = base64.b64decode(self.ask("334 VXNlcm5hbWU6"))
            pw = base64.b64decode(self.ask("334 UGFzc3dvcmQ6"))
        if "%s:%s" % (user.decode(), pw.decode()) == self.st.args.auth:
            self.user = user.decode()
            return self.send("235 2.7.0 ok")
        self.send("535 5.7.8 bad credentials")

    def ask(self, prompt):
        self.send(prompt)
        return self.line()

    def mailcmd(self, arg):
        import time
        if self.st.args.auth and not self.user:
            return self.send("530 5.7.0 authentication required")
        if self.st.args.delay:
            time.sleep(self.st.args.delay)
        if self.reply("mail", "250 2.1.0 ok"):
            self.mail = arg[5:].strip()
            self.rcpts = []

    def rcptcmd(self, arg):
        if self.mail is None:
            return self.send("503 5.5.1 MAIL first")
        rest = arg[3:].strip()
        addr = rest[1:rest.find(">")].lower() if rest.startswith("<") else rest
        if self.reply("rcpt:" + addr, "250 2.1.5 ok"):
            self.rcpts.append(rest)
            d = addr.rsplit("@", 1)[-1]
            if d not in self.domains:
                self.domains.add(d)
                self.st.add_domain(d)

    def data(self):
        if not self.rcpts:
            return self.send("554 5.5.1 no valid recipients")
        self.send("354 go ahead")
        body = bytearray()
        while True:
            data = self.file.readline(1 << 20)
            if not data:
                raise ConnectionAbortedError
            if data == b".\r\n":
                break
            body += data[1:] if data.startswith(b".") else data
        self.finish(bytes(body))

    def bdat(self, arg):
        words = arg.split()
        size = int(words[1])
        chunk = self.file.read(size)
        self.chunks = (self.chunks or b"") + chunk
        if len(words) > 2 and words[2].upper() == "LAST":
            data, self.chunks = self.chunks, None
            if not self.rcpts:
                return self.send("554 5.5.1 no valid recipients")
            return self.finish(data)
        self.send("250 2.0.0 chunk ok")

    def finish(self, data):
        a = self.st.args
        if a.size and len(data) > a.size:
            self.send("552 5.3.4 too big")
        elif self.reply("data", "250 2.0.0 queued"):
            import time
            env = ["helo %s" % self.helo, "tls %s" % ("yes" if self.tls else "no"),
                   "peer %s" % self.peer, "time %.3f" % time.time()]
            if self.user:
                env.append("auth %s" % self.user)
            env.append("mail %s" % self.mail)
            env += ["rcpt %s" % r for r in self.rcpts]
            self.st.store(env, data)
        self.mail, self.rcpts = None, []

    def run(self):
        if not self.reply("greeting", "220 sink.test ESMTP"):
            return
        while True:
            text = self.line()
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.ehlo(arg)
            elif verb == "HELO":
                self.helo = arg
                self.send("250 sink.test")
            elif verb == "STARTTLS":
                self.starttls()
            elif verb == "AUTH":
                self.auth(arg)
            elif verb == "MAIL":
                self.mailcmd(arg)
            elif verb == "RCPT":
                self.rcptcmd(arg)
            elif verb == "DATA":
                self.data()
            elif verb == "BDAT":
                self.bdat(text)
            elif verb == "RSET":
                self.mail, self.rcpts = None, []
                self.send("250 2.0.0 ok")
            elif verb == "ETRN":
                self.send("250 2.0.0 queuing started")
            elif verb == "NOOP":
                self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                # the client counts the session over once it has the 221:
                # so do we, before sending it
                self.close_count()
                self.reply("quit", "221 2.0.0 bye")
                return
            else:
                self.send("500 5.5.2 unknown command")


def serve(state, conn, sid):
    s = Session(state, conn, sid)
    state.enter()
    try:
        s.run()
    except (ConnectionError, OSError, ValueError, ssl.SSLError):
        pass
    finally:
        s.close_count()
        try:
            s.conn.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--ext")
    p.add_argument("--no-ehlo", action="store_true")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--tls")
    p.add_argument("--auth")
    p.add_argument("--reply", action="append")
    p.add_argument("--delay", type=float, default=0)
    p.add_argument("--count-only", action="store_true")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    state = State(args)
    host, port = args.listen.rsplit(":", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(256)
    state.write("ready", "%d\n" % os.getpid())
    sid = 0
    while True:
        conn, _ = srv.accept()
        sid += 1
        threading.Thread(target=serve, args=(state, conn, sid), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
