#!/usr/bin/env python3
"""callgrind_split.py [--requests N] [--strace FILE] [--baseline FILE] CALLGRIND_OUT

Instructions per request of a callgrind profile of `warrant serve` (see
bench/callgrind.sh) and their split. The token handler's share is split by
its direct callees (callgrind_annotate --tree=calling), so nothing is
counted twice:

  HTTP + runtime     total minus the token handler: actix-http parsing and
                     writing, routing, tokio; what a trivial handler pays too
                     (--baseline: the same for the trivial_post profile)
  signature          the bare aws-lc-rs signature inside SigningKey::sign
  JWS around it      the rest of SigningKey::sign: claims JSON, base64url
  log line           telemetry::log_token_request (or, in builds before it,
                     tracing's Event::dispatch): formatting, then the write
                     or the copy into the log buffer
  client auth        credentials parsing, the remembered-secret HMAC check,
                     the client lookup
  response           the token response: JSON body, headers
  randomness         request id and jti (aws-lc-rs RAND_bytes)
  form body          reading and parsing the form body
  rest               everything else the handler does itself or calls

Functions the compiler inlined have no cost of their own and count in
their caller. --strace adds the system calls per request from `strace -c -f`
output (callgrind sees user space only)."""
import argparse
import re
import subprocess

HANDLER = r"^warrant::routes::token::issue::\{\{closure\}\}$"
# When the compiler inlines `issue` into actix's handler future, that future
# is the handler (the token endpoint is the only route this load hits).
INLINED_HANDLER = r"^actix_web::handler::handler_service::\{\{closure\}\}::\{\{closure\}\}$"
# Phases of the handler that are split further by their own callees.
PHASE = r"^warrant::routes::token::"
# The phase that signs; when SigningKey::sign is inlined into it, its crypto
# callees are the signature and its serde/base64 callees the JWS around it.
MINT = r"^warrant::routes::token::mint$"
JWS_WORK = r"^serde|^base64::|^alloc::|^core::fmt|^warrant::crypto::"
JWS = r"^warrant::crypto::jws::SigningKey::sign$"
# aws-lc-rs and AWS-LC, except the random generator (counted on its own).
CRYPTO = re.compile(r"^aws_lc_rs::(?!rand::)|aws_lc_0_|^AWS_LC")
GROUPS = [
    ("log line", r"^tracing_core::event::Event::dispatch$|^tracing::__macro_support"
                 r"|^warrant::telemetry::request_line::log_token_request$"),
    ("client auth", r"ClientAuthenticator::remembers|Credentials::from_request|parse_basic"
                    r"|ClientAuthenticator::authenticate|ClientAuthenticator::with_secret"
                    r"|RememberedSecrets::contains|^warrant::routes::token::request::credentials$"
                    r"|ClientId::parse|Snapshot::client$|drop_in_place<warrant::routes::token::Credentials>"),
    ("response", r"HttpResponseBuilder::json|token_response|HttpResponse>::Ok$|no_store$"
                 r"|HeaderMap::insert|HttpResponseBuilder::(body|content_type|insert_header)"),
    ("randomness", r"^aws_lc_rs::rand::fill$|token::request_id$|token::random_ids|crypto::random_bytes"
                   r"|RequestIds::draw"),
    ("form body", r"TokenForm::parse|drop_in_place<warrant::routes::token::(request::)?TokenForm>|Payload as futures_core"
                  r"|read_body|Bytes::copy_from_slice"),
]


def annotate(path, *args):
    return subprocess.run(["callgrind_annotate", "--threshold=100", *args, path],
                          capture_output=True, text=True, check=True).stdout


def clean(name):
    name = re.sub(r"\s+\([\d,]+x\)", "", name)
    name = re.sub(r"\s+\[[^\]]*\]$", "", name).strip()
    return name.split(":", 1)[1] if name.startswith(("???:", "./", "/")) else name


LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+([*<>])?\s*(.*)$")


def calling_tree(path):
    """(total, {function: (exclusive, {callee: inclusive of the calls})})."""
    total, tree, current = None, {}, None
    for line in annotate(path, "--tree=calling").splitlines():
        if not line.strip():
            current = None
            continue
        m = LINE.match(line)
        if not m:
            continue
        ir, mark, name = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        if name.startswith("PROGRAM TOTALS"):
            total = ir
        elif mark == "*":
            current = clean(name)
            tree[current] = (ir, {})
        elif mark == ">" and current is not None:
            callee = clean(name)
            calls = tree[current][1]
            calls[callee] = calls.get(callee, 0) + ir
    return total, tree


def inclusive(path):
    costs = {}
    for line in annotate(path, "--inclusive=yes").splitlines():
        m = LINE.match(line)
        if m and not m.group(3).startswith("PROGRAM TOTALS"):
            name = clean(m.group(3))
            costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
    return costs


def strace_calls(path):
    calls = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls[parts[-1]] = int(parts[3])
    return calls


def fmt(ir, n):
    return "{:,.0f}".format(ir / n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--strace")
    ap.add_argument("--baseline", help="callgrind profile of examples/trivial_post, same load")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("profile")
    a = ap.parse_args()
    n = a.requests
    total, tree = calling_tree(a.profile)
    costs = inclusive(a.profile)
    handler_name = next((k for k in costs if re.search(HANDLER, k)), None)
    if handler_name is None:
        handler_name = next((k for k in costs if re.search(INLINED_HANDLER, k)), None)
    handler = costs.get(handler_name, 0)
    own, callees = tree.get(handler_name, (0, {}))

    jws_callees = next((c for k, (_, c) in tree.items() if re.search(JWS, k)), {})
    jws_total = sum(v for k, v in costs.items() if re.search(JWS, k))
    signature = sum(v for k, v in jws_callees.items() if CRYPTO.search(k))
    groups = {label: 0 for label, _ in GROUPS}
    rest = own
    jws = 0
    listed = []
    inlined_signature = []

    def split(calls, depth):
        nonlocal rest, jws
        for callee, ir in calls.items():
            if re.search(JWS, callee):
                jws += ir
                continue
            label = next((l for l, p in GROUPS if re.search(p, callee)), None)
            if label:
                groups[label] += ir
            elif re.search(MINT, callee) and callee in tree:
                exclusive, inner = tree[callee]
                jws += exclusive
                inner_rest = {}
                for k, v in inner.items():
                    if re.search(JWS, k):
                        jws += v
                    elif CRYPTO.search(k):
                        jws += v
                        inlined_signature.append(v)
                    elif re.search(JWS_WORK, k):
                        jws += v
                    else:
                        inner_rest[k] = v
                split(inner_rest, depth + 1)
                continue
            elif depth < 4 and re.search(PHASE, callee) and callee in tree:
                exclusive, inner = tree[callee]
                rest += exclusive
                split(inner, depth + 1)
                continue
            else:
                rest += ir
            if not CRYPTO.search(callee):
                listed.append((callee, ir))

    split(callees, 0)
    signature += sum(inlined_signature)
    jws = jws or jws_total
    rows = [("total", total),
            ("HTTP + runtime (outside the handler)", total - handler),
            ("token handler", handler),
            ("  signature (aws-lc-rs)", signature),
            ("  JWS around it (claims JSON, base64url)", jws - signature)]
    rows += [("  " + label, ir) for label, ir in groups.items()]
    rows.append(("  rest of the handler", rest))
    rows.append(("total without the signature", total - signature))
    print("#### %s: instructions per request (%d requests)" % (a.profile, n))
    print()
    print("| part | instructions / request | share |")
    print("|---|---|---|")
    for label, ir in rows:
        print("| %s | %s | %.1f %% |" % (label, fmt(ir, n), 100.0 * ir / total))
    if a.baseline:
        btotal, _ = calling_tree(a.baseline)
        print("| trivial_post: total (same load) | %s | %.2f x |" % (fmt(btotal, n), btotal / total))
    print()
    print("The handler's largest non-crypto callees (inclusive instructions / request):")
    print()
    for k, v in jws_callees.items():
        if not CRYPTO.search(k):
            listed.append(("SigningKey::sign > " + k, v))
    for name, ir in sorted(listed, key=lambda kv: -kv[1])[:a.top]:
        print("- %8s  %s" % (fmt(ir, n), name[:140]))
    if a.strace:
        calls = strace_calls(a.strace)
        print()
        print("System calls per request (strace -c -f, native): " + ", ".join(
            "%s %.2f" % (k, v / n) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
            if v / n >= 0.01) + "; all %.2f" % (sum(calls.values()) / n))


if __name__ == "__main__":
    main()
