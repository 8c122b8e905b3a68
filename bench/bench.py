#!/usr/bin/env python3
"""(Copied from the peers' harness, shared/peers/bench.py, with two additions for
Warrant: --resource (RFC 8707, for HS256 audiences) and oha looked up in
bench/.tools and the peers' tools as well.)

One load run against a token endpoint (or any GET URL) with oha; prints ONE line.

Usage (normally through bench.sh):
  bench.sh [options] BASE_URL [TOKEN_PATH]
  bench.sh -c 64 -z 10 http://127.0.0.1:4001 /token
  bench.sh --get /jwks -c 16 http://127.0.0.1:4001          # plain GET load

Output, key=value pairs on one line, e.g.
  label=- url=http://127.0.0.1:4001/token c=16 dur_s=10.0 rps=812.3 p50_ms=19.1
  p99_ms=41.0 ok=8123 errors=0 aborted=16 server_cpu=1.62 gen_cpu=0.12 other_cpu=0.00
  ok_per_server_cpu_s=501

  rps        2xx responses per second of wall time
  p50/p99    latency of the 2xx responses (oha --stats-success-breakdown)
  errors     non-2xx responses + transport errors (timeouts, resets, refused),
             NOT counting requests still in flight at the deadline ("aborted")
  server_cpu cores used on average by the server's processes (the processes that
             listen on the port, and their descendants), from /proc
  gen_cpu    cores used by oha itself
  other_cpu  cores the machine spent on anything else during the run (other
             programs, unattributed kernel work): machine busy time (/proc/stat)
             minus server and oha; should be near 0, else the run was disturbed
  ok_per_server_cpu_s  2xx responses per CPU-second of server time: an efficiency
             figure that holds up better than rps when load generator and server share
             2 cores
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def find_oha():
    for cand in (os.environ.get("OHA"), os.path.join(HERE, ".tools", "bin", "oha"),
                 os.path.join(HERE, "tools", "oha", "bin", "oha"), "/tmp/peers/tools/oha/bin/oha",
                 shutil.which("oha")):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("oha not found: cargo install oha --root bench/.tools, or set OHA=")


# ---------------------------------------------------------------- /proc accounting
def proc_table():
    """pid -> (ppid, ticks, is_kernel_thread) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        # fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... flags(6)
        ppid = int(rest[1])
        flags = int(rest[6])
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        table[int(name)] = (ppid, ticks, bool(flags & 0x00200000) or ppid == 2 or int(name) == 2)
    return table


def listener_pids(port):
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % port], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {int(p) for p in re.findall(r"pid=(\d+)", out)}


def descendants(table, roots):
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, []))
    return seen


def tick_delta(before, after, pids):
    total = 0
    for pid in pids:
        if pid in after:
            total += after[pid][1] - (before[pid][1] if pid in before else 0)
    return total


def comm(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def machine_busy_ticks():
    """Busy CPU ticks of the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    return sum(vals[:8]) - vals[3] - vals[4]


def top_process(window=0.5):
    """(pid, cmdline) of the process that used the most CPU over a short window."""
    before = proc_table()
    time.sleep(window)
    after = proc_table()
    busy = {}
    for pid, (_, ticks, kthread) in after.items():
        if pid in before and not kthread:
            busy[pid] = ticks - before[pid][1]
    if not busy:
        return None, "?"
    pid = max(busy, key=busy.get)
    return pid, comm(pid)


def wait_quiet(max_wait, threshold=0.15):
    """Wait (up to max_wait s) until the machine as a whole uses less than
    `threshold` cores over a 1 s window (the server is idle then). Returns
    (seconds waited, last load)."""
    t_start = time.monotonic()
    said = False
    while True:
        b0, t0 = machine_busy_ticks(), time.monotonic()
        time.sleep(1)
        load = (machine_busy_ticks() - b0) / TICK / (time.monotonic() - t0)
        waited = time.monotonic() - t_start
        if load < threshold or waited >= max_wait:
            if said:
                print("  ... waited %.0fs for quiet (machine load now %.2f cores)" % (waited, load),
                      file=sys.stderr)
            return waited, load
        if not said:
            pid, cmd = top_process()
            print("  machine busy: %.2f cores in use (top: pid %s %s); waiting up to %ds"
                  % (load, pid, cmd, max_wait), file=sys.stderr)
            said = True


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description="one oha run, one result line",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("base_url")
    ap.add_argument("token_path", nargs="?", default="/token")
    ap.add_argument("-z", "--duration", type=float, default=10, help="seconds (default 10)")
    ap.add_argument("-c", "--concurrency", type=int, default=16, help="connections (default 16)")
    ap.add_argument("-u", "--client-id", default=os.environ.get("CLIENT_ID", "bench-client"))
    ap.add_argument("-p", "--client-secret", default=os.environ.get("CLIENT_SECRET", "bench-secret"))
    ap.add_argument("-s", "--scope", default=os.environ.get("SCOPE", "read write"),
                    help="scope to request; '' sends no scope parameter")
    ap.add_argument("-r", "--resource", default="", help="RFC 8707 resource parameter to send")
    ap.add_argument("--get", metavar="PATH", help="GET BASE_URL+PATH instead of the token POST")
    ap.add_argument("-l", "--label", default="-", help="first field of the line")
    ap.add_argument("-t", "--timeout", default="30s", help="per-request timeout (oha -t)")
    ap.add_argument("--server-pid", type=int, action="append",
                    help="server pid(s) for CPU accounting (default: whoever listens on the port)")
    ap.add_argument("--json-out", help="also save oha's raw JSON here")
    ap.add_argument("--format", choices=("kv", "json"), default="kv")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long until other processes use < 0.15 cores")
    a = ap.parse_args()

    base = a.base_url.rstrip("/")
    parsed = urllib.parse.urlsplit(base)
    host, port = parsed.hostname, parsed.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("refusing to load a non-loopback address: %s" % host)

    oha = find_oha()
    cmd = [oha, "-z", "%gs" % a.duration, "-c", str(a.concurrency), "--no-tui",
           "--output-format", "json", "--stats-success-breakdown", "-t", a.timeout]
    if a.get:
        url = base + a.get
    else:
        url = base + a.token_path
        cred = "%s:%s" % (urllib.parse.quote_plus(a.client_id), urllib.parse.quote_plus(a.client_secret))
        form = {"grant_type": "client_credentials"}
        if a.scope:
            form["scope"] = a.scope
        if a.resource:
            form["resource"] = a.resource
        cmd += ["-m", "POST", "-T", "application/x-www-form-urlencoded",
                "-H", "Authorization: Basic " + base64.b64encode(cred.encode()).decode(),
                "-d", urllib.parse.urlencode(form)]
    cmd.append(url)

    roots = set(a.server_pid or []) or listener_pids(port)
    me = os.getpid()
    waited, quiet_load = 0, None
    if a.wait_quiet > 0:
        waited, quiet_load = wait_quiet(a.wait_quiet)
    before = proc_table()
    busy0 = machine_busy_ticks()
    server = descendants(before, roots)
    usage0 = os.times()
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, err = proc.communicate()
        wall = time.monotonic() - t0
        busy1 = machine_busy_ticks()
        after = proc_table()
        usage1 = os.times()
        out.seek(0)
        raw = out.read()
    if proc.returncode != 0:
        sys.exit("oha failed (%d): %s" % (proc.returncode, err.decode(errors="replace")[-500:]))
    d = json.loads(raw)
    if a.json_out:
        with open(a.json_out, "wb") as f:
            f.write(raw)

    # CPU accounting
    server |= descendants(after, roots)
    gen_ticks = ((usage1.children_user + usage1.children_system)
                 - (usage0.children_user + usage0.children_system)) * TICK
    server_ticks = tick_delta(before, after, server)
    # everything else the machine did meanwhile: other programs, plus kernel work
    # not charged to a process (normally small)
    other_ticks = max(0, (busy1 - busy0) - server_ticks - gen_ticks)

    codes = {int(k): v for k, v in d.get("statusCodeDistribution", {}).items()}
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    non2xx = sum(v for k, v in codes.items() if not 200 <= k < 300)
    errdist = d.get("errorDistribution", {}) or {}
    aborted = sum(v for k, v in errdist.items() if "deadline" in k)
    transport = sum(v for k, v in errdist.items() if "deadline" not in k)
    dur = d["summary"]["total"] or a.duration
    pct = d.get("latencyPercentilesSuccessful") or d.get("latencyPercentiles") or {}

    def ms(v):
        return None if v is None else round(v * 1000, 2)

    res = {
        "label": a.label,
        "url": url,
        "method": "GET" if a.get else "POST",
        "c": a.concurrency,
        "dur_s": round(dur, 2),
        "rps": round(ok / dur, 1),
        "p50_ms": ms(pct.get("p50")),
        "p99_ms": ms(pct.get("p99")),
        "ok": ok,
        "errors": non2xx + transport,
        "aborted": aborted,
        "server_cpu": round(server_ticks / TICK / wall, 2) if server else None,
        "gen_cpu": round(gen_ticks / TICK / wall, 2),
        "other_cpu": round(other_ticks / TICK / wall, 2),
        "ok_per_server_cpu_s": round(ok / (server_ticks / TICK)) if server_ticks else None,
    }
    if waited >= a.wait_quiet > 0:
        res["busy_before"] = round(quiet_load, 2)
    if non2xx:
        res["codes"] = ",".join("%d:%d" % kv for kv in sorted(codes.items()))
    if transport:
        res["errkinds"] = ";".join("%s:%d" % (k.replace(" ", "_"), v) for k, v in errdist.items()
                                   if "deadline" not in k)
    if a.format == "json":
        print(json.dumps(res))
    else:
        print(" ".join("%s=%s" % (k, "NA" if v is None else v) for k, v in res.items()))


if __name__ == "__main__":
    main()
