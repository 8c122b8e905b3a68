#!/usr/bin/env python3
"""start_ready.py --log FILE --pidfile FILE --url http://127.0.0.1:PORT/readyz -- CMD...

Starts CMD in the background (own session, output to --log), polls --url every
2 ms until it answers 200 and prints `ready_ms=<ms from spawn to first 200>`.
Exits 1 (after killing CMD) if it exits or is not ready within --timeout s.
"""
import argparse
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("loopback only")
    log = open(a.log, "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % proc.pid)
    while True:
        if proc.poll() is not None:
            sys.exit("server exited during start-up (code %s); see %s" % (proc.returncode, a.log))
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=1)
            conn.request("GET", u.path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                print("ready_ms=%.1f" % ((time.monotonic() - t0) * 1000))
                return
        except OSError:
            pass
        if time.monotonic() - t0 > a.timeout:
            os.kill(proc.pid, signal.SIGTERM)
            sys.exit("not ready after %gs; see %s" % (a.timeout, a.log))
        time.sleep(0.002)


if __name__ == "__main__":
    main()
