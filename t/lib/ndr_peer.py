#!/usr/bin/env python3
"""ndr_peer.py PORT -- a small SMTP server on 127.0.0.1:PORT for the bh-ndr
tests: it offers no DSN extension, refuses every recipient whose local part
starts with "bad" with "550 5.1.1 <ADDR>: no such user here", accepts the
rest, and keeps nothing. It runs until killed."""
import socketserver
import sys


class Session(socketserver.StreamRequestHandler):
    timeout = 30

    def reply(self, text):
        self.wfile.write(text.encode() + b'\r\n')
        self.wfile.flush()

    def data(self):
        self.reply('354 go ahead')
        while True:
            line = self.rfile.readline(65536)
            if not line or line in (b'.\r\n', b'.\n'):
                break
        self.reply('250 2.0.0 accepted')

    def handle(self):
        self.reply('220 peer.example.net ESMTP test peer')
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.decode('ascii', 'replace').strip()
            verb = cmd[:4].upper()
            if verb in ('EHLO', 'HELO'):
                self.reply('250-peer.example.net\r\n250 8BITMIME')
            elif verb == 'RCPT':
                addr = cmd[cmd.find('<') + 1:cmd.find('>')]
                if addr.lower().startswith('bad'):
                    self.reply('550 5.1.1 <%s>: no such user here' % addr)
                else:
                    self.reply('250 2.1.5 ok')
            elif verb == 'DATA':
                self.data()
            elif verb == 'QUIT':
                self.reply('221 2.0.0 bye')
                return
            else:
                self.reply('250 2.0.0 ok')


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True


if __name__ == '__main__':
    Server(('127.0.0.1', int(sys.argv[1])), Session).serve_forever()
