#!/usr/bin/env python3
"""summarize.py OUTDIR: medians of OUTDIR/raw.jsonl (one bench.py JSON line per
run, with "label"), plus OUTDIR/extra.json (raw signature rates, start-up,
memory, cold cache), as a markdown table and a list of targets met / missed.
Ratios are between numbers measured in the same run, never absolute times."""
import json
import os
import statistics
import sys


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, nd=0):
    if v is None:
        return "-"
    return ("{:,.%df}" % nd).format(v)


def main():
    out = sys.argv[1]
    rows = {}
    with open(os.path.join(out, "raw.jsonl")) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            rows.setdefault((r["label"], r["method"], r["c"]), []).append(r)
    # The raw RSA-2048 rates measured right before each RS256 run (load.sh),
    # paired in order with the RS256 runs at the same concurrency.
    paired = {}
    if os.path.exists(os.path.join(out, "paired.jsonl")):
        raw_runs = {}
        with open(os.path.join(out, "raw.jsonl")) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    if r["label"] == "warrant-RS256":
                        raw_runs.setdefault(r["c"], []).append(r)
        seen = {}
        with open(os.path.join(out, "paired.jsonl")) as f:
            for line in f:
                if not line.strip():
                    continue
                p = json.loads(line)
                i = seen.get(p["c"], 0)
                seen[p["c"]] = i + 1
                runs = raw_runs.get(p["c"], [])
                if i < len(runs) and p.get("raw_per_s"):
                    paired.setdefault(p["c"], []).append((runs[i]["ok_per_server_cpu_s"], p))
    extra = {}
    if os.path.exists(os.path.join(out, "extra.json")):
        with open(os.path.join(out, "extra.json")) as f:
            extra = json.load(f)

    summary = {}
    for key, runs in rows.items():
        summary[key] = {
            "n": len(runs),
            "rps": med([r["rps"] for r in runs]),
            "p50": med([r["p50_ms"] for r in runs]),
            "p99": med([r["p99_ms"] for r in runs]),
            "errors": sum(r["errors"] for r in runs),
            "server_cpu": med([r["server_cpu"] for r in runs]),
            "gen_cpu": med([r["gen_cpu"] for r in runs]),
            "other_cpu": max(r["other_cpu"] for r in runs),
            "per_cpu_s": med([r["ok_per_server_cpu_s"] for r in runs]),
        }

    def get(label, c, method="POST"):
        return summary.get((label, method, c))

    raw_rsa = extra.get("raw_rsa2048_sign_per_s")
    print("### Token endpoint (POST, client_secret_basic), medians of %s interleaved %s s runs"
          % (extra.get("rounds", "?"), extra.get("duration_s", "?")))
    print()
    print("| server | c | tokens/s | p50 ms | p99 ms | errors | server CPU cores | "
          "tokens per server CPU-s | max other cores |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (label, method, c), s in sorted(summary.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        if method != "POST":
            continue
        print("| %s | %d | %s | %s | %s | %d | %s | %s | %s |" % (
            label, c, fmt(s["rps"]), fmt(s["p50"], 2), fmt(s["p99"], 2), s["errors"],
            fmt(s["server_cpu"], 2), fmt(s["per_cpu_s"]), fmt(s["other_cpu"], 2)))
    if raw_rsa:
        print("| raw RSA-2048 sign, 1 core (%s) | - | %s | | | | 1.00 | %s | |" % (
            extra.get("raw_rsa2048_source", "aws-lc-rs"), fmt(raw_rsa), fmt(raw_rsa)))
    par = extra.get("raw_rsa2048_parallel")
    if par:
        # Per core while every core signs at once: what a server keeping both
        # cores busy can reach per CPU-second (shown; the target stays on
        # the single-core rate above).
        print("| raw RSA-2048 sign, per core with %d cores signing at once (aws-lc-rs, mint bench; "
              "%.2f x its 1-thread rate of %s in the same phases%s) | - | %s | | | | %.2f | %s | |" % (
                  par["threads"], par["ratio"], fmt(par["alone_per_s"]),
                  "; DISTURBED" if par.get("disturbed") else "", fmt(par["busy_total_per_s"]),
                  par["overlap"] * par["threads"], fmt(par["busy_per_core_per_s"])))
    print()
    if paired:
        print("RS256 runs paired with the raw RSA-2048 rates measured right before each "
              "(one core alone / per core with all cores signing):")
        print()
        print("| c | tokens per server CPU-s | raw, 1 core | ratio | raw per core, all busy | ratio |")
        print("|---|---|---|---|---|---|")
        for c in sorted(paired):
            for w, p in paired[c]:
                busy = p.get("busy_per_core_per_s")
                print("| %d | %s | %s | %.2f | %s | %s |" % (
                    c, fmt(w), fmt(p["raw_per_s"]), w / p["raw_per_s"], fmt(busy),
                    "%.2f" % (w / busy) if busy else "-"))
        print()
    print("### JWKS GET")
    print()
    print("| server | c | requests/s | p50 ms | p99 ms | errors | server CPU cores | max other cores |")
    print("|---|---|---|---|---|---|---|---|")
    for (label, method, c), s in sorted(summary.items()):
        if method != "GET":
            continue
        print("| %s | %d | %s | %s | %s | %d | %s | %s |" % (
            label, c, fmt(s["rps"]), fmt(s["p50"], 2), fmt(s["p99"], 2), s["errors"],
            fmt(s["server_cpu"], 2), fmt(s["other_cpu"], 2)))
    print()
    if extra:
        print("### Start-up, memory, raw limits, argon2")
        print()
        for k in ("ready_ms_runs", "ready_ms_median", "idle_rss_kib", "idle_rss_after_load_kib",
                  "peak_rss_kib", "warrant_restarts", "raw_rsa2048_sign_per_s", "raw_rsa2048_source",
                  "openssl_rsa2048_sign_per_s", "raw_rsa2048_sign_per_s_per_core_all_busy",
                  "raw_rsa2048_parallel", "mint_bench", "cold_cache", "machine"):
            if k in extra:
                print("- %s: %s" % (k, extra[k]))
        print()

    # ---- targets
    checks = []

    def check(name, ok, detail):
        checks.append((name, ok, detail))

    rs = get("warrant-RS256", 64)
    ox2 = get("oidc-provider-x2", 64)
    if rs and raw_rsa:
        ratio = rs["per_cpu_s"] / raw_rsa
        detail = "%.0f / %.0f = %.2f" % (rs["per_cpu_s"], raw_rsa, ratio)
        par = extra.get("raw_rsa2048_parallel")
        if par:
            detail += ("; for reference, vs the raw rate per core with %d cores signing at once: "
                       "%.0f / %.0f = %.2f" % (par["threads"], rs["per_cpu_s"],
                                              par["busy_per_core_per_s"],
                                              rs["per_cpu_s"] / par["busy_per_core_per_s"]))
        pairs = paired.get(64, [])
        if pairs:
            single = med([w / p["raw_per_s"] for w, p in pairs])
            both = med([w / p["busy_per_core_per_s"] for w, p in pairs if p.get("busy_per_core_per_s")])
            detail += ("; each RS256 c=64 run against the raw rates measured right before it "
                       "(median of %d): %.2f x the one-core rate%s" % (
                           len(pairs), single,
                           ", %.2f x the per-core rate with all cores signing" % both if both else ""))
        check("RS256 tokens per server CPU-s >= 0.9 x raw RSA-2048 sign rate", ratio >= 0.9, detail)
    if rs and ox2:
        ratio = rs["rps"] / ox2["rps"]
        check("RS256 c=64 throughput >= 1.5 x oidc-provider-x2", ratio >= 1.5,
              "%.0f / %.0f = %.2f" % (rs["rps"], ox2["rps"], ratio))
        ratio = rs["p99"] / ox2["p99"]
        check("RS256 c=64 p99 <= 0.5 x oidc-provider-x2 p99", ratio <= 0.5,
              "%.2f / %.2f ms = %.2f" % (rs["p99"], ox2["p99"], ratio))
    if rs:
        errs = sum(s["errors"] for (l, m, c), s in summary.items() if l.startswith("warrant"))
        check("zero errors (all Warrant runs)", errs == 0, "%d errors" % errs)
    for alg in ("HS256", "ES256", "EdDSA"):
        for c in (16, 64):
            w, t = get("warrant-" + alg, c), get("trivial-post", c)
            if w and t:
                ratio = w["rps"] / t["rps"]
                check("%s c=%d throughput >= 0.5 x trivial actix POST" % (alg, c), ratio >= 0.5,
                      "%.0f / %.0f = %.2f" % (w["rps"], t["rps"], ratio))
    wj = [s for (l, m, c), s in summary.items() if l == "jwks:warrant" and c == 64]
    pj = [(l, s) for (l, m, c), s in summary.items()
          if l.startswith("jwks:oidc-provider") and c == 64]
    if wj and pj:
        best_label, best = max(pj, key=lambda ls: ls[1]["rps"])
        ratio = wj[0]["rps"] / best["rps"]
        check("JWKS GET >= 2 x node-oidc-provider (best of its variants: %s)" % best_label,
              ratio >= 2, "%.0f / %.0f = %.2f" % (wj[0]["rps"], best["rps"], ratio))
    if "peak_rss_kib" in extra:
        check("peak RSS under load <= 64 MiB", extra["peak_rss_kib"] <= 64 * 1024,
              "%.1f MiB" % (extra["peak_rss_kib"] / 1024))
    if "idle_rss_kib" in extra:
        check("idle RSS <= 32 MiB", extra["idle_rss_kib"] <= 32 * 1024,
              "%.1f MiB after start, %.1f MiB idle after load" % (
                  extra["idle_rss_kib"] / 1024, extra.get("idle_rss_after_load_kib", 0) / 1024))
    if "ready_ms_median" in extra:
        check("serve -> /readyz 200 with an existing database <= 200 ms",
              extra["ready_ms_median"] <= 200, "median %.0f ms of %s" % (
                  extra["ready_ms_median"], extra.get("ready_ms_runs")))
    cc = extra.get("cold_cache")
    if cc:
        want = "{'200': %d}" % cc["requests"]
        all_ok = all(str(cc.get(k, "")).strip('"') == want for k in ("cold_status", "warm_status"))
        equiv = cc.get("argon2_equiv")
        check("cold credential cache: ~one argon2 verify per client, not per request",
              all_ok and equiv is not None and equiv <= 2 * cc["clients"],
              "%d requests at c=%s from %d new client(s): %.0f ms more server CPU cold than warm "
              "= ~%s argon2 verifies (at %.1f ms each); statuses cold %s, warm %s" % (
                  cc["requests"], cc.get("concurrency", "?"), cc["clients"], cc["extra_cpu_ms"],
                  equiv, cc["argon2_ms"], cc.get("cold_status"), cc.get("warm_status")))
    if checks:
        print("### Targets")
        print()
        for name, ok, detail in checks:
            print("- [%s] %s: %s" % ("x" if ok else " ", name, detail))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"%s %s c=%d" % k: v for k, v in summary.items()}, f, indent=1)


if __name__ == "__main__":
    main()
