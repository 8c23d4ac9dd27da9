#!/usr/bin/env python3
"""bench/bench.py -- the measurements behind `make bench` (started by bench/run).

Starts, inside the work directory $BENCH_DIR (bench/run removes it and stops
everything listed in $BENCH_DIR/pids at exit, even on failure):
  - two smtp-sink receivers (one per MTA), counting messages (-c);
  - a private Postfix instance relaying everything to its sink, with a
    virtual(8) Maildir mailbox box@local.test;
  - a bridgehead root under bh-supervise relaying through a `*` smart-host
    connector to its sink, with the local mailbox demo@example.com.
Then runs the same workloads against both, interleaved, $BENCH_REPEAT times,
prints a table and writes bench/results.md (or $BENCH_RESULTS).
Loopback only.
"""
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

W = os.environ["BENCH_DIR"]
TOP = os.environ["BENCH_TOP"]
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPEAT = int(os.environ.get("BENCH_REPEAT", "1" if QUICK else "3"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(TOP, "bench/results.md"))
SOURCE = "/usr/sbin/smtp-source"
SINK = "/usr/sbin/smtp-sink"
START = time.time()

# (sessions, size, messages): acceptance and end-to-end relay workloads.
if QUICK:
    RELAY = [(1, 1024, 20), (10, 1024, 50)]
    LOCAL = (10, 1024, 50)
else:
    RELAY = [(1, 1024, 300), (10, 1024, 1500), (50, 1024, 2000),
             (1, 102400, 150), (10, 102400, 500), (50, 102400, 600)]
    LOCAL = (10, 1024, 1000)
# For experiments: BENCH_RELAY="S:SIZE:N,...", BENCH_LOCAL="S:SIZE:N" or "",
# BENCH_MTAS="postfix,bridgehead" (the table needs both), BENCH_REUSE=1
# (smtp-source -d: many messages per connection), BENCH_CPU=1 (log the CPU
# seconds of every process of each MTA at the end).
def workloads(text):
    return [tuple(int(x) for x in w.split(":")) for w in text.split(",") if w]


if "BENCH_RELAY" in os.environ:
    RELAY = workloads(os.environ["BENCH_RELAY"])
if "BENCH_LOCAL" in os.environ:
    LOCAL = (workloads(os.environ["BENCH_LOCAL"]) or [None])[0]
MTAS = os.environ.get("BENCH_MTAS", "postfix,bridgehead").split(",")
LOAD_SESSIONS = max((w[0] for w in RELAY), default=0)  # memory sampled here


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def remember(pid):
    with open(os.path.join(W, "pids"), "a") as f:
        f.write("%d\n" % pid)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_banner(port, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.settimeout(2)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("bench: nothing answers on 127.0.0.1:%d" % port)


def wait_for(cond, limit):
    """Polls cond() every 10 ms until true; the time it became true, or None."""
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return time.time()
        time.sleep(0.01)
    return None


class Sink:
    def __init__(self, name):
        self.port = free_port()
        self.out = os.path.join(W, "sink-%s.out" % name)
        f = open(self.out, "wb")
        p = subprocess.Popen([SINK, "-u", "nobody", "-c",
                              "127.0.0.1:%d" % self.port, "1024"],
                             stdout=f, stderr=subprocess.DEVNULL)
        remember(p.pid)
        time.sleep(0.2)

    def count(self):
        """Messages received so far (the last `mesg=N` smtp-sink -c printed)."""
        with open(self.out, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 200))
            tail = f.read().split(b"\r")
        for rec in reversed(tail):
            for word in rec.split():
                if word.startswith(b"mesg="):
                    return int(word[5:])
        return 0


def ptree(root):
    """Pids of root and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory(root):
    """(processes, RSS KB, PSS KB) summed over the process tree of root."""
    n = rss = pss = 0
    for pid in ptree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except OSError:
            pass
    return n, rss, pss


class Postfix:
    name = "postfix"

    def __init__(self):
        self.sink = Sink("postfix")
        self.port = free_port()
        d = self.dir = os.path.join(W, "pf")
        for sub in ("conf", "queue", "data", "log", "mail"):
            os.makedirs(os.path.join(d, sub))
        self.maildir = os.path.join(d, "mail/box/Maildir/new")
        with open("/etc/postfix/master.cf") as f:
            master = f.read().splitlines()
        out = []
        for line in master:
            w = line.split()
            if line and not line[0].isspace() and not line.startswith("#") \
                    and len(w) >= 8:
                if w[0] == "smtp" and w[1] == "inet":
                    w[0] = "127.0.0.1:%d" % self.port
                w[4] = "n"      # no chroot: the private queue has no etc/
                line = " ".join(w)
            out.append(line)
        with open(os.path.join(d, "conf/master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        with open(os.path.join(d, "conf/main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/log/maillog
maillog_file_prefixes = {d}/log
myhostname = pf.bench.test
mydomain = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_dns_support_level = disabled
relayhost = [127.0.0.1]:{self.sink.port}
mydestination =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = local.test
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:box/Maildir/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
""")
        subprocess.run(["chown", "postfix", os.path.join(d, "data")], check=True)
        subprocess.run(["chown", "65534:65534", os.path.join(d, "mail")],
                       check=True)
        with open(os.path.join(W, "postfix-conf"), "w") as f:
            f.write(os.path.join(d, "conf"))
        subprocess.run(["postfix", "-c", os.path.join(d, "conf"), "start"],
                       check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_banner(self.port)
        with open(os.path.join(d, "queue/pid/master.pid")) as f:
            self.root_pid = int(f.read().split()[0])
        self.local_rcpt = "box@local.test"


class Bridgehead:
    name = "bridgehead"

    def __init__(self):
        self.sink = Sink("bridgehead")
        self.port = free_port()
        d = self.dir = os.path.join(W, "bh")
        env = dict(os.environ, PATH=os.path.join(TOP, "bin") + ":" +
                   os.environ["PATH"], BH_ROOT=d)
        env.pop("BH_BIN", None)
        self.env = env
        subprocess.run(["bh-init", d], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(d, "cdb/servers"), "w") as f:
            f.write(f"default listen=127.0.0.1:{self.port} auth=anonymous\n"
                    f"        relay-from=127.0.0.0/8 max-size=10M\n"
                    f"        max-connections=500 max-connections-per-ip=500\n")
        with open(os.path.join(d, "cdb/connectors"), "w") as f:
            f.write(f"smart address-space=* cost=1 "
                    f"smarthost=[127.0.0.1]:{self.sink.port}\n")
        with open(os.path.join(d, "cdb/settings"), "a") as f:
            f.write("hostname bh.bench.test\n")
        subprocess.run(["make", "-s", "-C", os.path.join(d, "cdb")],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        self.maildir = os.path.join(d, "mailroot/demo/Maildir/new")
        p = subprocess.Popen([os.path.join(TOP, "bin/bh-supervise")], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(W, "supervise.log"), "w"))
        remember(p.pid)
        self.proc = p
        self.root_pid = p.pid
        wait_banner(self.port)
        self.local_rcpt = "demo@example.com"


def maildir_count(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def maildir_clear(path):
    try:
        for n in os.listdir(path):
            os.unlink(os.path.join(path, n))
    except FileNotFoundError:
        pass


def source(mta, sessions, size, count, rcpt, sample=None):
    """Runs smtp-source; (seconds, errors). sample(): called every 50 ms."""
    cmd = [SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(size),
           "-f", "bench@bench.test", "-t", rcpt, "127.0.0.1:%d" % mta.port]
    if os.environ.get("BENCH_REUSE") == "1":    # experiment: -d, no reconnect
        cmd.insert(1, "-d")
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    remember(p.pid)
    if sample:
        while p.poll() is None:
            sample()
            time.sleep(0.05)
    err = p.communicate()[1].decode(errors="replace")
    t1 = time.time()
    errors = sum(1 for line in err.splitlines() if line.strip())
    if p.returncode != 0 or errors:
        log("bench: %s: smtp-source %s: exit %d: %s" %
            (mta.name, " ".join(cmd[1:7]), p.returncode, err[:300]))
    return t0, t1, errors


def run_relay(mta, sessions, size, count, peak):
    base = mta.sink.count()
    sample = None
    if sessions == LOAD_SESSIONS and size == 1024:
        def sample():
            m = memory(mta.root_pid)
            if m[1] > peak[1]:
                peak[:] = list(m)
    t0, t1, errors = source(mta, sessions, size, count,
                            "user@remote.test", sample)
    t2 = wait_for(lambda: mta.sink.count() >= base + count, 180)
    if t2 is None:
        log("bench: %s: sink got %d of %d" %
            (mta.name, mta.sink.count() - base, count))
        t2 = float("nan")
    return count / (t1 - t0), count / (t2 - t0), errors


def run_local(mta, sessions, size, count):
    maildir_clear(mta.maildir)
    t0, t1, errors = source(mta, sessions, size, count, mta.local_rcpt)
    t2 = wait_for(lambda: maildir_count(mta.maildir) >= count, 180)
    if t2 is None:
        log("bench: %s: maildir has %d of %d" %
            (mta.name, maildir_count(mta.maildir), count))
        t2 = float("nan")
    maildir_clear(mta.maildir)
    return count / (t2 - t0), errors


def disk_rates(seconds):
    """(append+fsync per s, create+write+fsync+rename+dir fsync per s)."""
    d = os.path.join(W, "disk")
    os.makedirs(os.path.join(d, "tmp"))
    os.makedirs(os.path.join(d, "new"))
    data = b"x" * 512
    fd = os.open(os.path.join(d, "append"), os.O_WRONLY | os.O_CREAT, 0o600)
    n, end = 0, time.time() + seconds
    t0 = time.time()
    while time.time() < end:
        os.write(fd, data)
        os.fsync(fd)
        n += 1
    append = n / (time.time() - t0)
    os.close(fd)
    newfd = os.open(os.path.join(d, "new"), os.O_RDONLY | os.O_DIRECTORY)
    n, end = 0, time.time() + seconds
    t0 = time.time()
    while time.time() < end:
        tmp = os.path.join(d, "tmp", str(n))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(d, "new", str(n)))
        os.fsync(newfd)
        n += 1
    create = n / (time.time() - t0)
    os.close(newfd)
    subprocess.run(["rm", "-rf", d])
    return append, create


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def main():
    log("bench: disk")
    append, create = disk_rates(1 if QUICK else 3)
    mtas = []
    if "postfix" in MTAS:
        mtas.append(Postfix())
    if "bridgehead" in MTAS:
        mtas.append(Bridgehead())
    time.sleep(1 if QUICK else 3)
    idle = {m.name: memory(m.root_pid) for m in mtas}
    raw = {m.name: {} for m in mtas}
    peak = {m.name: [0, 0, 0] for m in mtas}
    errors = {m.name: 0 for m in mtas}

    def put(m, key, value):
        raw[m.name].setdefault(key, []).append(value)

    for rep in range(REPEAT):
        order = mtas if rep % 2 == 0 else mtas[::-1]
        for (s, size, count) in RELAY:
            for m in order:
                acc, e2e, err = run_relay(m, s, size, count, peak[m.name])
                put(m, ("accept", s, size), acc)
                put(m, ("e2e", s, size), e2e)
                errors[m.name] += err
                log("bench: rep %d %-10s %2d sessions %6d B: accept %7.1f/s "
                    "end-to-end %7.1f/s" % (rep + 1, m.name, s, size, acc, e2e))
        for m in order if LOCAL else []:
            s, size, count = LOCAL
            rate, err = run_local(m, s, size, count)
            put(m, ("local", s, size), rate)
            errors[m.name] += err
            log("bench: rep %d %-10s local delivery %7.1f/s" %
                (rep + 1, m.name, rate))
    if os.environ.get("BENCH_CPU") == "1":  # experiment: CPU per process
        for m in mtas:
            cpu_report(m)
    if len(mtas) == 2 and LOCAL:
        report(mtas, raw, idle, peak, errors, append, create)


def cpu_report(mta):
    """Logs the CPU seconds of each process of mta's tree (own, children)."""
    tick = os.sysconf("SC_CLK_TCK")
    for pid in ptree(mta.root_pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        v = st.rsplit(")", 1)[1].split()
        own = (int(v[11]) + int(v[12])) / tick
        kids = (int(v[13]) + int(v[14])) / tick
        if own + kids >= 0.05:
            log("bench: cpu %s %-14s own %6.2f s children %6.2f s" %
                (mta.name, comm, own, kids))


def report(mtas, raw, idle, peak, errors, append, create):
    pf, bh = "postfix", "bridgehead"
    rows = []

    def row(label, a, b, unit, better="higher"):
        ratio = b / a if a else float("nan")
        rows.append((label, a, b, ratio, unit, better))

    for kind in ("accept", "e2e"):
        for (s, size, _) in RELAY:
            k = (kind, s, size)
            label = "%s %d KB, %d session%s" % (
                "acceptance" if kind == "accept" else "end to end",
                size // 1024, s, "" if s == 1 else "s")
            row(label, med(raw[pf][k]), med(raw[bh][k]), "msg/s")
    s, size, _ = LOCAL
    k = ("local", s, size)
    row("local delivery 1 KB, %d sessions" % s, med(raw[pf][k]),
        med(raw[bh][k]), "msg/s")
    row("memory idle (RSS sum)", idle[pf][1] / 1024, idle[bh][1] / 1024,
        "MB", "lower")
    row("memory idle (PSS sum)", idle[pf][2] / 1024, idle[bh][2] / 1024,
        "MB", "lower")
    row("memory at %d sessions (RSS sum)" % LOAD_SESSIONS,
        peak[pf][1] / 1024, peak[bh][1] / 1024, "MB", "lower")
    per = {n: (peak[n][1] - idle[n][1]) / LOAD_SESSIONS for n in (pf, bh)}
    perp = {n: (peak[n][2] - idle[n][2]) / LOAD_SESSIONS for n in (pf, bh)}
    row("memory per session (RSS)", per[pf], per[bh], "KB", "lower")
    row("memory per session (PSS)", perp[pf], perp[bh], "KB", "lower")

    lines = ["| figure | Postfix | bridgehead | bridgehead/Postfix |",
             "|---|---:|---:|---:|"]
    for (label, a, b, ratio, unit, better) in rows:
        lines.append("| %s (%s, %s is better) | %.1f | %.1f | %.2f |" %
                     (label, unit, better, a, b, ratio))
    acc = [med(raw[n][("accept", LOAD_SESSIONS, 1024)]) for n in (pf, bh)]
    disk = [
        "Disk (the spool's file system): %.0f append+fsync/s, "
        "%.0f create+write+fsync+rename+dir-fsync/s." % (append, create),
        "Acceptance of 1 KB at %d sessions as a fraction of the "
        "create+fsync+rename rate: Postfix %.2f, bridgehead %.2f; of the "
        "append+fsync rate: Postfix %.2f, bridgehead %.2f." %
        (LOAD_SESSIONS, acc[0] / create, acc[1] / create, acc[0] / append,
         acc[1] / append),
        "Processes counted: Postfix %d idle, %d at peak; bridgehead %d idle, "
        "%d at peak. smtp-source errors: Postfix %d, bridgehead %d." %
        (idle[pf][0], peak[pf][0], idle[bh][0], peak[bh][0],
         errors[pf], errors[bh])]
    print("\n".join(lines))
    print()
    print("\n".join(disk))
    mem_kb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    head = ["## Run of %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "",
            "Machine: %s, %d cores, %.1f GB memory, kernel %s; %d repetitions "
            "(medians shown), %s; run took %.0f s." %
            (platform.node() or "?", os.cpu_count(), mem_kb / 1048576,
             platform.release(), REPEAT, "smoke variant" if QUICK else
             "full", time.time() - START), ""]
    rawl = ["", "Raw numbers (one per repetition):", "", "```"]
    for n in (pf, bh):
        for k in sorted(raw[n], key=str):
            rawl.append("%-10s %-6s %2d sessions %6d B: %s" % (
                n, k[0], k[1], k[2], " ".join("%.1f" % x for x in raw[n][k])))
        rawl.append("%-10s idle: %d processes, RSS %d KB, PSS %d KB; peak at "
                    "%d sessions: %d processes, RSS %d KB, PSS %d KB" %
                    (n, idle[n][0], idle[n][1], idle[n][2], LOAD_SESSIONS,
                     peak[n][0], peak[n][1], peak[n][2]))
    rawl.append("```")
    section = "\n".join(head + lines + [""] + disk + rawl) + "\n"
    write_results(section)


MARK = "<!-- runs: newest first, written by bench/run -->"


def write_results(section):
    try:
        with open(RESULTS) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# bridgehead beside Postfix: `make bench` results\n\n" + MARK + "\n"
    if MARK not in old:
        old += "\n" + MARK + "\n"
    before, after = old.split(MARK, 1)
    with open(RESULTS + ".tmp", "w") as f:
        f.write(before + MARK + "\n\n" + section + after.lstrip("\n"))
    os.replace(RESULTS + ".tmp", RESULTS)
    log("bench: results written to %s" % RESULTS)


if __name__ == "__main__":
    main()
