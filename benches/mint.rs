//! Minting micro-benchmark: `cargo bench --bench mint`.
//!
//! For each algorithm Warrant signs with, measures in the same run and
//! interleaved batch by batch:
//!
//! * `mint`: `warrant::crypto::SigningKey::sign` of a realistic RFC 9068
//!   claims set (serialize the claims, base64url, sign, base64url), on a key
//!   made with `SigningKey::generate`;
//! * `raw`: the bare aws-lc-rs signature over a message of the same length
//!   (the JWS signing input of the same token), on a key of the same kind.
//!
//! Prints the median ns/op of each, their ratio and the single-core rate.
//!
//! Then, for RS256, the raw signature rate per core when one thread signs
//! alone and when two threads sign at once (one per core on a 2-core
//! machine), alternated phase by phase: on a machine whose cores share
//! execution units (SMT siblings on the host), a power or frequency budget,
//! or caches, each core signs slower while the other one is busy too, and a
//! server that keeps both cores busy cannot reach the single-core rate per
//! CPU-second.
//!
//! Lines starting with `RESULT` are for scripts (bench/compare.sh reads the
//! raw RS256 rates from them). Arguments: an optional algorithm filter
//! (`RS256`, `ES256`, `EdDSA`, `HS256`), `--rounds N`, `--threads N` (the
//! busy phase's thread count, default: the number of CPUs),
//! `--parallel-rounds N` (undisturbed phases of each kind, default 15) and
//! `--no-parallel`.
//!
//! No criterion on purpose: `std::time::Instant`, batches of many
//! iterations, medians over rounds.

// A benchmark binary: failing loudly on a broken key is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use warrant::crypto::{Algorithm, SigningKey};
use warrant::domain::AccessTokenClaims;

const ISSUER: &str = "http://127.0.0.1:8080";
const CLIENT_ID: &str = "3WtmPZbVq0bq4bX1a9JQ2A";
const AUDIENCE: &str = "https://orders.example.com";
const SCOPE: &str = "orders:read orders:write";
const JTI: &str = "LeO3RzRn9dXVracHaz0izQ";

fn claims() -> AccessTokenClaims<'static> {
    let iat = 1_796_013_875;
    AccessTokenClaims {
        iss: ISSUER,
        sub: CLIENT_ID,
        aud: AUDIENCE,
        exp: iat + 900,
        iat,
        jti: JTI,
        client_id: CLIENT_ID,
        scope: SCOPE,
    }
}

/// A bare signature with aws-lc-rs, no JWS work around it.
enum Raw {
    Rsa(RsaKeyPair, SystemRandom),
    Ecdsa(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
    // Boxed like Warrant's own: the key holds its precomputed state.
    Hmac(Box<hmac::Key>),
}

impl Raw {
    fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::RS256 => Self::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                SystemRandom::new(),
            ),
            Algorithm::ES256 => Self::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
                SystemRandom::new(),
            ),
            Algorithm::EdDSA => Self::Ed25519(Ed25519KeyPair::generate().unwrap()),
            Algorithm::HS256 => {
                let mut secret = [0u8; 32];
                SystemRandom::new().fill(&mut secret).unwrap();
                Self::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &secret)))
            }
        }
    }

    /// Signs `message`; returns the signature length so nothing is elided.
    fn sign(&self, message: &[u8], out: &mut [u8; 512]) -> usize {
        match self {
            Self::Rsa(pair, rng) => {
                let len = pair.public_modulus_len();
                pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut out[..len])
                    .unwrap();
                len
            }
            Self::Ecdsa(pair, rng) => pair.sign(rng, message).unwrap().as_ref().len(),
            Self::Ed25519(pair) => pair.sign(message).as_ref().len(),
            Self::Hmac(key) => hmac::sign(key, message).as_ref().len(),
        }
    }
}

/// Median of `rounds` batches, in ns per operation, for two operations
/// measured alternately (so drift and noise hit both alike).
fn measure_pair(
    rounds: usize,
    batch: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which goes first, too.
        let (first, second): (&mut dyn FnMut(), &mut dyn FnMut()) = if round % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let t1 = time_batch(batch, first);
        let t2 = time_batch(batch, second);
        let (da, db) = if round % 2 == 0 { (t1, t2) } else { (t2, t1) };
        ta.push(da.as_nanos() as f64 / batch as f64);
        tb.push(db.as_nanos() as f64 / batch as f64);
    }
    (median(&mut ta), median(&mut tb))
}

/// CPU time of a batch: this thread's on-CPU nanoseconds from
/// /proc/thread-self/schedstat when Linux offers them (so time the thread
/// spent preempted by other programs on a shared machine does not count),
/// else wall time.
fn time_batch(batch: usize, op: &mut dyn FnMut()) -> Duration {
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..batch {
        op();
    }
    let wall = start.elapsed();
    match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => Duration::from_nanos(b - a),
        _ => wall,
    }
}

fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// A batch size that takes about `target` for an operation of `ns_per_op`.
fn batch_for(ns_per_op: f64, target: Duration) -> usize {
    ((target.as_nanos() as f64 / ns_per_op.max(1.0)) as usize).clamp(10, 1_000_000)
}

fn main() {
    let mut rounds = 31;
    let mut filter: Option<String> = None;
    let mut parallel = true;
    let mut parallel_rounds = 15;
    let mut threads = std::thread::available_parallelism().map_or(2, usize::from);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(rounds),
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).unwrap_or(threads),
            "--no-parallel" => parallel = false,
            "--parallel-rounds" => {
                parallel_rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(parallel_rounds);
            }
            other if !other.starts_with('-') => filter = Some(other.to_owned()),
            _ => {}
        }
    }

    let clock = if thread_cpu_ns().is_some() {
        "thread CPU time"
    } else {
        "wall time"
    };
    println!(
        "mint vs raw signature, single thread, {clock}, median of {rounds} interleaved batches (~20 ms each)"
    );
    println!(
        "{:<6} {:>12} {:>12} {:>8} {:>12} {:>14} {:>12}",
        "alg", "mint ns/op", "raw ns/op", "ratio", "overhead ns", "mint tokens/s", "raw signs/s"
    );
    let claims = claims();
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ] {
        if filter
            .as_deref()
            .is_some_and(|f| !f.eq_ignore_ascii_case(alg.as_str()))
        {
            continue;
        }
        let (key, _secret) = SigningKey::generate(alg).unwrap();
        let raw = Raw::new(alg);
        let token = key.sign(&claims).unwrap();
        let signing_input = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
        // Sanity: the payload is the claims we meant.
        let payload = signing_input.split(|&b| b == b'.').nth(1).unwrap();
        let decoded: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(decoded["scope"], SCOPE);

        let mut out = [0u8; 512];
        let mut mint = || {
            black_box(key.sign(black_box(&claims)).unwrap());
        };
        let mut bare = || {
            black_box(raw.sign(black_box(&signing_input), &mut out));
        };
        // Warm up and size the batches.
        let warm = Instant::now();
        let mut n = 0u32;
        while warm.elapsed() < Duration::from_millis(200) {
            mint();
            bare();
            n += 1;
        }
        let per_pair = warm.elapsed().as_nanos() as f64 / f64::from(n);
        let batch = batch_for(per_pair / 2.0, Duration::from_millis(20));
        let (mint_ns, raw_ns) = measure_pair(rounds, batch, &mut mint, &mut bare);
        let ratio = mint_ns / raw_ns;
        println!(
            "{:<6} {:>12.0} {:>12.0} {:>8.3} {:>12.0} {:>14.0} {:>12.0}",
            alg.as_str(),
            mint_ns,
            raw_ns,
            ratio,
            mint_ns - raw_ns,
            1e9 / mint_ns,
            1e9 / raw_ns
        );
        println!(
            "RESULT alg={} mint_ns={mint_ns:.0} raw_ns={raw_ns:.0} ratio={ratio:.4} mint_per_s={:.0} raw_per_s={:.0} token_len={}",
            alg.as_str(),
            1e9 / mint_ns,
            1e9 / raw_ns,
            token.len()
        );
    }

    if parallel
        && filter
            .as_deref()
            .is_none_or(|f| f.eq_ignore_ascii_case(Algorithm::RS256.as_str()))
    {
        let (key, _secret) = SigningKey::generate(Algorithm::RS256).unwrap();
        let token = key.sign(&claims).unwrap();
        let signing_input = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
        raw_per_core(
            Algorithm::RS256,
            &signing_input,
            threads.max(2),
            parallel_rounds,
        );
    }
}

/// One signing thread's work in a phase.
struct ThreadRun {
    ops: u64,
    cpu_ns: u64,
    wall_ns: u64,
}

/// `threads` threads each sign `message` with their own key of kind `alg`
/// for `phase`, all starting together; returns what each did.
fn signing_phase(keys: &[Raw], threads: usize, message: &[u8], phase: Duration) -> Vec<ThreadRun> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = keys[..threads]
            .iter()
            .map(|raw| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut out = [0u8; 512];
                    barrier.wait();
                    let cpu0 = thread_cpu_ns();
                    let start = Instant::now();
                    let mut ops = 0u64;
                    while start.elapsed() < phase {
                        for _ in 0..8 {
                            black_box(raw.sign(black_box(message), &mut out));
                        }
                        ops += 8;
                    }
                    let wall_ns = start.elapsed().as_nanos() as u64;
                    let cpu_ns = match (cpu0, thread_cpu_ns()) {
                        (Some(a), Some(b)) if b > a => b - a,
                        _ => wall_ns,
                    };
                    ThreadRun {
                        ops,
                        cpu_ns,
                        wall_ns,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Busy time of the whole machine, all cores, in USER_HZ ticks (1/100 s
/// on Linux), from /proc/stat.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum(),
    )
}

/// A phase and what else the machine ran meanwhile (in cores: busy time
/// minus the signing threads' CPU time, over the phase).
fn measured_phase(
    keys: &[Raw],
    threads: usize,
    message: &[u8],
    phase: Duration,
) -> (Vec<ThreadRun>, f64) {
    let busy0 = machine_busy_ticks();
    let runs = signing_phase(keys, threads, message, phase);
    let other = match (busy0, machine_busy_ticks()) {
        (Some(a), Some(b)) => {
            let wall = runs.iter().map(|r| r.wall_ns).max().unwrap_or(1) as f64 / 1e9;
            let ours = runs.iter().map(|r| r.cpu_ns as f64).sum::<f64>() / 1e9;
            ((b - a) as f64 / 100.0 - ours).max(0.0) / wall
        }
        _ => 0.0,
    };
    (runs, other)
}

/// The raw signature rate per core with one thread signing, then with
/// `threads` signing at once, alternated in 0.5 s phases until `rounds`
/// undisturbed phases of each kind (at most 4 x `rounds` attempts); medians.
/// Rates are per CPU-second of each signing thread (time it spent preempted
/// does not count). A phase is undisturbed when the rest of the machine used
/// less than 0.15 cores meanwhile and, for the busy phase, the threads
/// really ran at the same time (`overlap`: their CPU time over threads x
/// wall, at least 0.9): on a shared 2-core machine another program often
/// takes one core, and two threads then share the other.
fn raw_per_core(alg: Algorithm, message: &[u8], threads: usize, rounds: usize) {
    const QUIET: f64 = 0.15;
    const OVERLAP: f64 = 0.9;
    let keys: Vec<Raw> = (0..threads).map(|_| Raw::new(alg)).collect();
    let phase = Duration::from_millis(500);
    signing_phase(&keys, threads, message, Duration::from_millis(200));
    let rate = |r: &ThreadRun| r.ops as f64 * 1e9 / r.cpu_ns as f64;
    let (mut alone, mut busy, mut total, mut overlap) = (vec![], vec![], vec![], vec![]);
    let (mut alone_all, mut busy_all, mut total_all, mut overlap_all) =
        (vec![], vec![], vec![], vec![]);
    let mut attempt = 0;
    while (alone.len() < rounds || busy.len() < rounds) && attempt < 4 * rounds {
        // Alternate which phase goes first.
        for busy_phase in [attempt % 2 == 1, attempt % 2 == 0] {
            if busy_phase {
                let (runs, other) = measured_phase(&keys, threads, message, phase);
                let wall = runs.iter().map(|r| r.wall_ns).max().unwrap_or(1) as f64;
                let per_core = runs.iter().map(rate).sum::<f64>() / runs.len() as f64;
                let all = runs.iter().map(|r| r.ops as f64).sum::<f64>() * 1e9 / wall;
                let both =
                    runs.iter().map(|r| r.cpu_ns as f64).sum::<f64>() / (threads as f64 * wall);
                busy_all.push(per_core);
                total_all.push(all);
                overlap_all.push(both);
                if other < QUIET && both >= OVERLAP && busy.len() < rounds {
                    busy.push(per_core);
                    total.push(all);
                    overlap.push(both);
                }
            } else {
                let (runs, other) = measured_phase(&keys, 1, message, phase);
                alone_all.push(rate(&runs[0]));
                if other < QUIET && alone.len() < rounds {
                    alone.push(rate(&runs[0]));
                }
            }
        }
        attempt += 1;
    }
    let kept = format!("{} + {} undisturbed phases", alone.len(), busy.len());
    let disturbed = alone.is_empty() || busy.is_empty();
    if disturbed {
        (alone, busy, total, overlap) = (alone_all, busy_all, total_all, overlap_all);
    }
    let (alone, busy) = (median(&mut alone), median(&mut busy));
    let (total, overlap) = (median(&mut total), median(&mut overlap));
    println!();
    println!(
        "raw {} signature rate per core, 1 thread alone vs {threads} threads at once \
         (per thread CPU-second, medians of {})",
        alg.as_str(),
        if disturbed {
            format!("all phases: DISTURBED, no undisturbed phase of one kind in {attempt} attempts")
        } else {
            kept
        }
    );
    println!(
        "{:<6} {:>16} {:>18} {:>8} {:>16} {:>8}",
        "alg",
        "alone signs/s",
        format!("{threads} busy signs/s/core"),
        "ratio",
        "total signs/s",
        "overlap"
    );
    println!(
        "{:<6} {:>16.0} {:>18.0} {:>8.3} {:>16.0} {:>8.2}",
        alg.as_str(),
        alone,
        busy,
        busy / alone,
        total,
        overlap
    );
    println!(
        "RESULT parallel alg={} threads={threads} alone_per_s={alone:.0} busy_per_core_per_s={busy:.0} \
         ratio={:.4} busy_total_per_s={total:.0} overlap={overlap:.3} disturbed={}",
        alg.as_str(),
        busy / alone,
        u8::from(disturbed)
    );
}
