#!/usr/bin/env python3
"""Helpers of bench/scale.sh (see there); each subcommand prints JSON.

  scale.py clone DB N REAL_ID TEMPLATE_ID... [--ids-out FILE]
      BENCHMARK FIXTURE: fills the SQLite database DB up to N clients by
      copying the template rows (made with `warrant client create`) under new
      ids scale-0000001..., every copy with the secret hash of REAL_ID. Every
      copy therefore has the same secret: never do this in production.
  scale.py settle PID
      waits until the server's VmRSS is stable; prints it (KiB) and VmHWM.
  scale.py idle PID SECONDS
      the server's CPU while nothing changes (its polling), ns per second.
  scale.py changes PID --idle-ns-per-s X --ids FILE ...
      K client changes with the CLI (disable/enable of clones), each waited
      for until the server has applied it; CPU, wall time and RSS of each.
  scale.py check PID URL SECRET --ids FILE ...
      one disable and one enable of a clone, each followed by a token request
      (401, then 200): proves the wait of `changes` saw the change applied.
  scale.py quiet PID
      waits until the server is idle.
  scale.py churn --ids FILE --seconds S --every S ...
      one change per --every seconds for S seconds (the load under churn).
  scale.py table RESULTS.json...
      one markdown table, a column per run.

Server CPU is the sum over the server's threads of the on-CPU time in
/proc/PID/task/*/schedstat (ns; the 10 ms ticks of /proc/PID/stat are too
coarse for one change of a small database), cross-checked against
/proc/PID/stat over the whole phase.
"""
import argparse
import base64
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse

TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- /proc
def task_cpu_ns(pid):
    """{tid: on-CPU ns} for the live threads of pid."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                out[int(tid)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def stat_cpu_ns(pid):
    """utime + stime of the whole process (dead threads included), in ns."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * 1_000_000_000 // TICK


class Cpu:
    """CPU of a process between two reads: ns-precise while its threads live;
    a thread that ended in between is counted through /proc/PID/stat."""

    def __init__(self, pid):
        self.pid = pid
        self.tasks = task_cpu_ns(pid)
        self.stat = stat_cpu_ns(pid)

    def since(self, before):
        delta = 0
        gone = False
        for tid, ns in self.tasks.items():
            delta += ns - before.tasks.get(tid, 0)
        for tid in before.tasks:
            if tid not in self.tasks:
                gone = True
        if gone:
            return max(delta, self.stat - before.stat)
        return delta


def busy_threads(pid):
    """Threads running or waiting for a CPU (R) or for the disk (D): a reload
    stalled on I/O (file pages evicted by a busy machine) uses no CPU."""
    n = 0
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/stat" % (base, tid)) as f:
                n += f.read().rsplit(")", 1)[1].split()[0] in ("R", "D")
        except (OSError, IndexError):
            pass
    return n


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- clone
def clone(a):
    """BENCHMARK FIXTURE, see the module doc: one argon2 hash for all copies."""
    db = sqlite3.connect(a.db, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    cols = [r[1] for r in db.execute("PRAGMA table_info(clients)")]
    for needed in ("client_id", "name", "secret_hash"):
        if needed not in cols:
            sys.exit("clients has no column %s; update bench/scale.py" % needed)
    row = db.execute("SELECT secret_hash FROM clients WHERE client_id = ?", (a.real_id,)).fetchone()
    if row is None:
        sys.exit("no client %s" % a.real_id)
    have = db.execute("SELECT count(*) FROM clients").fetchone()[0]
    copies = a.n - have
    width = max(6, len(str(a.n)))
    t0 = time.monotonic()
    if copies > 0:
        db.execute("BEGIN")
        db.execute("DROP TABLE IF EXISTS temp.tpl")
        db.execute("CREATE TEMP TABLE tpl AS SELECT 0 AS k, * FROM clients WHERE 0")
        for k, tid in enumerate(a.templates):
            n = db.execute("INSERT INTO temp.tpl SELECT ?, * FROM clients WHERE client_id = ?",
                           (k, tid)).rowcount
            if n != 1:
                sys.exit("no template client %s" % tid)
        fields = []
        for c in cols:
            if c in ("client_id", "name"):
                fields.append("printf('scale-%%0%dd', seq.i)" % width)
            elif c == "secret_hash":
                fields.append(":hash")
            else:
                fields.append('tpl."%s"' % c)
        sql = ('INSERT INTO clients (%s) WITH RECURSIVE seq(i) AS '
               '(SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :m) '
               'SELECT %s FROM seq JOIN temp.tpl AS tpl ON tpl.k = seq.i %% :t'
               % (", ".join('"%s"' % c for c in cols), ", ".join(fields)))
        db.execute(sql, {"m": copies, "t": len(a.templates), "hash": row[0]})
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = db.execute("SELECT count(*) FROM clients").fetchone()[0]
    if a.ids_out:
        # up to 10,000 copies spread over the table: the ones changes touch
        step = max(1, copies // 10000)
        ids = ["scale-%0*d" % (width, i) for i in range(1, copies + 1, step)]
        if not ids:
            ids = [t for t in a.templates if t != a.real_id]
        with open(a.ids_out, "w") as f:
            f.write("".join(i + "\n" for i in ids))
    db.close()
    print(json.dumps({"clients": total, "copies": max(copies, 0), "id_width": width,
                      "clone_s": round(time.monotonic() - t0, 2)}))


def clone_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


# ---------------------------------------------------------------- settle / idle
def settle(a):
    """RSS stable within 1 % over 1 s twice in a row (at most --max s)."""
    deadline = time.monotonic() + a.max
    last, stable = status_kib(a.pid, "VmRSS"), 0
    while time.monotonic() < deadline and stable < 2:
        time.sleep(1)
        now = status_kib(a.pid, "VmRSS")
        stable = stable + 1 if abs(now - last) <= max(64, last // 100) else 0
        last = now
    print(json.dumps({"rss_kib": last, "hwm_kib": status_kib(a.pid, "VmHWM")}))


def idle(a):
    b = Cpu(a.pid)
    t0 = time.monotonic()
    time.sleep(a.seconds)
    e = Cpu(a.pid)
    wall = time.monotonic() - t0
    print(json.dumps({"idle_ns_per_s": round(e.since(b) / wall), "wall_s": round(wall, 2),
                      "stat_ns_per_s": round((e.stat - b.stat) / wall)}))


# ---------------------------------------------------------------- changes
def cli_change(a, cid, enabled):
    """One change through the CLI; (seconds it took, ok)."""
    t0 = time.monotonic()
    r = subprocess.run([a.warrant, "client", "enable" if enabled else "disable", cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        print("  CLI failed: %s" % r.stderr.decode(errors="replace").strip()[-300:], file=sys.stderr)
    return time.monotonic() - t0, r.returncode == 0


def wait_applied(a, idle_ns_per_s):
    """After a change's commit: at least one refresh interval (the next poll
    has started by then), then until the server has used no more than its
    idle CPU (+ 1 % of a core) over `--quiet` consecutive 100 ms windows,
    with no thread running or in disk wait at the end of each.
    Returns (seconds waited, timed out)."""
    t0 = time.monotonic()
    time.sleep(a.refresh_ms / 1000 + 0.05)
    window = 0.1
    limit = idle_ns_per_s * window + 0.01 * window * 1e9
    quiet = 0
    prev = Cpu(a.pid)
    while quiet < a.quiet:
        if time.monotonic() - t0 > a.apply_timeout:
            return time.monotonic() - t0, True
        time.sleep(window)
        cur = Cpu(a.pid)
        quiet = quiet + 1 if cur.since(prev) <= limit and not busy_threads(a.pid) else 0
        prev = cur
    return time.monotonic() - t0 - a.quiet * window, False


def changes(a):
    ids = clone_ids(a.ids)
    checkpoints = sorted({int(x) for x in a.checkpoints.split()} | {a.k})
    per = []
    rss_at = {}
    rss0 = status_kib(a.pid, "VmRSS")
    start = time.monotonic()
    stat0 = stat_cpu_ns(a.pid)
    timeouts = cli_fail = 0
    j = 0
    while j < a.k and time.monotonic() - start < a.budget and alive(a.pid):
        # disable a clone, then enable it again: every change is one update
        cid = ids[(j // 2 * 7919) % len(ids)]
        b = Cpu(a.pid)
        t0 = time.monotonic()
        cli_s, ok = cli_change(a, cid, enabled=(j % 2 == 1))
        cli_fail += not ok
        applied_s, timed_out = wait_applied(a, a.idle_ns_per_s)
        timeouts += timed_out
        e = Cpu(a.pid)
        wall = time.monotonic() - t0
        cpu = e.since(b) - a.idle_ns_per_s * wall
        j += 1
        rss = status_kib(a.pid, "VmRSS")
        per.append({"cpu_ms": round(cpu / 1e6, 3), "wall_s": round(wall, 3),
                    "cli_s": round(cli_s, 3), "applied_s": round(applied_s, 3), "rss_kib": rss})
        if j in checkpoints:
            rss_at[j] = rss
            print("  %d changes: RSS %.1f MiB, median %.2f ms server CPU per change"
                  % (j, rss / 1024, statistics.median(p["cpu_ms"] for p in per)), file=sys.stderr)
    wall_all = time.monotonic() - start
    with open(a.raw, "w") as f:
        for p in per:
            f.write(json.dumps(p) + "\n")
    if not per:
        print(json.dumps({"changes": 0}))
        return
    cpus = sorted(p["cpu_ms"] for p in per)
    stat_total = stat_cpu_ns(a.pid) - stat0 - a.idle_ns_per_s * wall_all
    rss_at[j] = per[-1]["rss_kib"]
    print(json.dumps({
        "changes": j, "asked": a.k, "budget_s": a.budget, "stopped_by_budget": j < a.k,
        "wall_s": round(wall_all, 1),
        "cpu_ms_median": cpus[len(cpus) // 2], "cpu_ms_p10": cpus[len(cpus) // 10],
        "cpu_ms_p90": cpus[min(len(cpus) - 1, len(cpus) * 9 // 10)],
        "cpu_ms_mean_stat": round(stat_total / 1e6 / j, 2),
        "applied_s_median": statistics.median(p["applied_s"] for p in per),
        "cli_s_median": statistics.median(p["cli_s"] for p in per),
        "rss_before_kib": rss0, "rss_after_kib": {str(k): v for k, v in sorted(rss_at.items())},
        "hwm_kib": status_kib(a.pid, "VmHWM"), "apply_timeouts": timeouts, "cli_failures": cli_fail,
    }))


def quiet(a):
    """Until the server is idle (a reload still running would disturb the
    quiet load run)."""
    waited, timed_out = wait_applied(a, a.idle_ns_per_s)
    print(json.dumps({"waited_s": round(waited, 2), "timed_out": timed_out}))


# ---------------------------------------------------------------- check
def token_status(url, cid, secret):
    u = urllib.parse.urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("loopback only")
    cred = "%s:%s" % (urllib.parse.quote_plus(cid), urllib.parse.quote_plus(secret))
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", u.path, body="grant_type=client_credentials",
                 headers={"Content-Type": "application/x-www-form-urlencoded",
                          "Authorization": "Basic " + base64.b64encode(cred.encode()).decode()})
    status = conn.getresponse().status
    conn.close()
    return status


def check(a):
    ids = clone_ids(a.ids)
    cid = ids[len(ids) // 2]
    out = {"client": cid}
    for enabled, expect in ((False, 401), (True, 200)):
        cli_change(a, cid, enabled)
        wait_applied(a, a.idle_ns_per_s)
        out["enabled" if enabled else "disabled"] = token_status(a.url, cid, a.secret)
        out["ok"] = out.get("ok", True) and out["enabled" if enabled else "disabled"] == expect
    print(json.dumps(out))


# ---------------------------------------------------------------- churn
def churn(a):
    ids = clone_ids(a.ids)
    end = time.monotonic() + a.seconds
    j = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        cli_change(a, ids[(j // 2 * 104729 + 1) % len(ids)], enabled=(j % 2 == 1))
        j += 1
        time.sleep(max(0.0, a.every - (time.monotonic() - t0)))
    if j % 2 == 1:  # leave every clone enabled
        cli_change(a, ids[((j - 1) // 2 * 104729 + 1) % len(ids)], enabled=True)
    print(json.dumps({"churn_changes": j, "seconds": a.seconds}))


# ---------------------------------------------------------------- table
def fmt_int(v):
    return "-" if v is None else "{:,}".format(int(round(v)))


def mib(kib):
    return "-" if kib is None else "%.1f" % (kib / 1024)


def table(a):
    runs = [json.load(open(p)) for p in a.results]
    rows = []

    def row(label, f):
        vals = []
        for r in runs:
            try:
                vals.append(f(r))
            except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
                vals.append("-")
        rows.append("| %s | %s |" % (label, " | ".join(vals)))

    def ch(r):
        return r["changes"]

    def load(r, which):
        return r["load"][which]

    row("clients (N)", lambda r: fmt_int(r["n"]))
    row("ready: spawn to first /readyz 200, ms", lambda r: fmt_int(r["ready_ms"]))
    row("idle RSS, MiB", lambda r: mib(r["idle"]["rss_kib"]))
    row("RSS of the same server with 1 client, MiB", lambda r: mib(r["base"]["rss_kib"]))
    row("RSS per client: (RSS - 1-client RSS) / (N - 1), bytes",
        lambda r: fmt_int((r["idle"]["rss_kib"] - r["base"]["rss_kib"]) * 1024 / (r["n"] - 1)))
    row("peak RSS (VmHWM) at start, MiB", lambda r: mib(r["idle"]["hwm_kib"]))
    row("idle server CPU (polling), ms per s", lambda r: "%.2f" % (r["idle_cpu"]["idle_ns_per_s"] / 1e6))
    row("changes applied (asked; time budget)",
        lambda r: "%d (%d; %d s)" % (ch(r)["changes"], ch(r)["asked"], ch(r)["budget_s"]))
    row("server CPU per change, ms: median (p10-p90)",
        lambda r: "%.1f (%.1f-%.1f)" % (ch(r)["cpu_ms_median"], ch(r)["cpu_ms_p10"], ch(r)["cpu_ms_p90"]))
    row("server CPU per change, ms: mean from /proc/PID/stat", lambda r: "%.1f" % ch(r)["cpu_ms_mean_stat"])
    row("change to applied (CLI return to server quiet), s: median",
        lambda r: "%.2f" % ch(r)["applied_s_median"])
    row("RSS before the changes, MiB", lambda r: mib(ch(r)["rss_before_kib"]))
    for k in a.checkpoints.split():
        row("RSS after %s changes, MiB (x before)" % k,
            lambda r, k=k: "%s (%.2f)" % (mib(ch(r)["rss_after_kib"][k]),
                                          ch(r)["rss_after_kib"][k] / ch(r)["rss_before_kib"]))
    row("RSS after all changes made, MiB (x before)",
        lambda r: "%s (%.2f)" % (mib(ch(r)["rss_after_kib"][str(ch(r)["changes"])]),
                                 ch(r)["rss_after_kib"][str(ch(r)["changes"])] / ch(r)["rss_before_kib"]))
    row("peak RSS (VmHWM) after the changes, MiB", lambda r: mib(ch(r)["hwm_kib"]))
    row("change seen by a token request (401 disabled, 200 enabled)",
        lambda r: "%s (%s, %s)" % ("yes" if r["check"]["ok"] else "NO", r["check"]["disabled"], r["check"]["enabled"]))
    row("tokens/s quiet, c=%s" % runs[0].get("conc", 64), lambda r: fmt_int(load(r, "quiet")["rps"]))
    row("p99 quiet, ms", lambda r: "%.2f" % load(r, "quiet")["p99_ms"])
    row("tokens/s under churn (1 change/s)", lambda r: fmt_int(load(r, "churn")["rps"]))
    row("p99 under churn, ms", lambda r: "%.2f" % load(r, "churn")["p99_ms"])
    row("churn / quiet: tokens/s, p99",
        lambda r: "%.2f, %.2f" % (load(r, "churn")["rps"] / load(r, "quiet")["rps"],
                                  load(r, "churn")["p99_ms"] / load(r, "quiet")["p99_ms"]))
    row("errors quiet / churn", lambda r: "%d / %d" % (load(r, "quiet")["errors"], load(r, "churn")["errors"]))
    row("changes made during the churn run", lambda r: fmt_int(r["churn"]["churn_changes"]))
    row("server CPU cores quiet / churn",
        lambda r: "%s / %s" % (load(r, "quiet")["server_cpu"], load(r, "churn")["server_cpu"]))
    row("other CPU cores (rest of the machine) quiet / churn",
        lambda r: "%s / %s" % (load(r, "quiet")["other_cpu"], load(r, "churn")["other_cpu"]))
    row("load average at start / end (uptime)", lambda r: "%s / %s" % (r["load_start"], r["load_end"]))
    print("| | %s |" % " | ".join("N = %s" % fmt_int(r["n"]) for r in runs))
    print("|---|" + "---|" * len(runs))
    print("\n".join(rows))


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("clone")
    p.add_argument("db")
    p.add_argument("n", type=int)
    p.add_argument("real_id")
    p.add_argument("templates", nargs="+")
    p.add_argument("--ids-out", help="write ids that may be changed here")
    p.set_defaults(f=clone)
    p = sub.add_parser("settle")
    p.add_argument("pid", type=int)
    p.add_argument("--max", type=float, default=15)
    p.set_defaults(f=settle)
    p = sub.add_parser("idle")
    p.add_argument("pid", type=int)
    p.add_argument("seconds", type=float)
    p.set_defaults(f=idle)
    for name, f in (("changes", changes), ("check", check), ("churn", churn)):
        p = sub.add_parser(name)
        p.add_argument("--warrant", required=True, help="the CLI binary")
        p.add_argument("--ids", required=True, help="file with the ids that may be changed")
        p.add_argument("--refresh-ms", type=float, default=1000)
        p.add_argument("--quiet", type=int, default=3, help="quiet 100 ms windows that mean applied")
        p.add_argument("--apply-timeout", type=float, default=300)
        p.add_argument("--idle-ns-per-s", type=float, default=0)
        p.set_defaults(f=f)
        if name in ("changes", "check"):
            p.add_argument("pid", type=int)
        if name == "changes":
            p.add_argument("-k", type=int, default=1000)
            p.add_argument("--budget", type=float, default=180, help="seconds at most")
            p.add_argument("--checkpoints", default="10 100 1000")
            p.add_argument("--raw", required=True, help="one JSON line per change")
        if name == "check":
            p.add_argument("url", help="the token endpoint")
            p.add_argument("secret", help="the secret every clone shares")
        if name == "churn":
            p.add_argument("--seconds", type=float, required=True)
            p.add_argument("--every", type=float, default=1)
    p = sub.add_parser("quiet")
    p.add_argument("pid", type=int)
    p.add_argument("--refresh-ms", type=float, default=0)
    p.add_argument("--quiet", type=int, default=5)
    p.add_argument("--apply-timeout", type=float, default=120)
    p.add_argument("--idle-ns-per-s", type=float, default=0)
    p.set_defaults(f=quiet)
    p = sub.add_parser("table")
    p.add_argument("results", nargs="+")
    p.add_argument("--checkpoints", default="10 100 1000")
    p.set_defaults(f=table)
    a = ap.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
