# t/lib/smtpd.bash — helpers for the bh-smtpd tests.
#   load lib/root
#   load lib/smtpd

# smtpd_server NAME ATTR... — writes the record of server NAME (replacing an
# earlier one of this test; the first call drops the default server) and
# compiles the configuration.
SMTPD_FRESH=1
smtpd_server() {
	local name=$1
	shift
	if [ "$SMTPD_FRESH" = 1 ]; then
		: > "$BH_ROOT/cdb/servers"
		SMTPD_FRESH=0
	fi
	sed -i "/^$name /d" "$BH_ROOT/cdb/servers"
	printf '%s %s\n' "$name" "$*" >> "$BH_ROOT/cdb/servers"
	config_make
}

# smtpd_start NAME HOST PORT — runs bh-smtpd -s NAME in the background (log
# in $BATS_TEST_TMPDIR/smtpd-NAME.log) and waits until HOST:PORT answers.
smtpd_start() {
	bh-smtpd -s "$1" 2>>"$BATS_TEST_TMPDIR/smtpd-$1.log" &
	kill_on_teardown $!
	wait_until 10 smtpd_listening "$2" "$3"
}

smtpd_listening() {
	python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$1" "$2" 2>/dev/null
}

# smtpd_inetd [PEER] — one session on stdin/stdout (bh-smtpd -i) with the
# default server; the input is the session's bytes (printf with \r\n).
smtpd_inetd() {
	TCPREMOTEIP=${1:-192.0.2.1} bh-smtpd -i 2>>"$BATS_TEST_TMPDIR/smtpd-inetd.log" | tr -d "\r"
}

# smtpd_chat HOST PORT < SCRIPT — a scripted client over TCP. Script lines:
#   > TEXT      send TEXT CRLF and print the whole reply
#   >> TEXT     send TEXT CRLF without waiting (pipelining)
#   =           print the next reply
#   raw BYTES   send a Python bytes literal as is, e.g. raw b"x\n.\n"
# The greeting is printed first; "EOF" when the server closed.
smtpd_chat() {
	python3 -c '
import ast, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            print("EOF")
            return
        line = line.decode("latin1").rstrip("\r\n")
        print(line, flush=True)
        if len(line) < 4 or line[3] != "-":
            return
reply()
for cmd in sys.stdin:
    cmd = cmd.rstrip("\n")
    try:
        if cmd.startswith(">> "):
            s.sendall(cmd[3:].encode("latin1") + b"\r\n")
        elif cmd.startswith("> "):
            s.sendall(cmd[2:].encode("latin1") + b"\r\n")
            reply()
        elif cmd == "=":
            reply()
        elif cmd.startswith("raw "):
            s.sendall(ast.literal_eval(cmd[4:]))
    except (BrokenPipeError, ConnectionResetError):
        print("EOF")
        break
' "$1" "$2"
}

# The envelopes in spool/incoming, one file name per line.
incoming_ids() {
	ls "$BH_ROOT/spool/incoming/new"
}

# incoming_field ID KEY — the value of an envelope field.
incoming_field() {
	sed -n "s/^$2 //p" "$BH_ROOT/spool/incoming/new/$1"
}

# content_body ID — the stored message without our Received: line (its
# first line and its indented continuation lines).
content_body() {
	python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
assert data.startswith(b"Received: ")
i = data.index(b"\r\n") + 2
while data[i:i+1] in (b" ", b"\t"):
    i = data.index(b"\r\n", i) + 2
sys.stdout.buffer.write(data[i:])
' "$BH_ROOT/spool/msg/$1"
}

# A password hash for the directory.
smtpd_hash() {
	openssl passwd -6 "$1"
}

# smtpd_user NAME ADDRESS PASSWORD — adds a mailbox with a password.
smtpd_user() {
	printf 'mailbox %s addresses=%s password=%s\n' "$1" "$2" "$(smtpd_hash "$3")" \
		>> "$BH_ROOT/cdb/directory"
	config_make
}

# A self-signed certificate in $BATS_TEST_TMPDIR/{cert,key}.pem.
smtpd_cert() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.example.test \
		-keyout "$BATS_TEST_TMPDIR/key.pem" -out "$BATS_TEST_TMPDIR/cert.pem" \
		2>/dev/null
}

