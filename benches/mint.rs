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
//! Lines starting with `RESULT` are for scripts (bench/compare.sh reads the
//! raw RS256 rate from them). Arguments: an optional algorithm filter
//! (`RS256`, `ES256`, `EdDSA`, `HS256`) and `--rounds N`.
//!
//! No criterion on purpose: `std::time::Instant`, batches of many
//! iterations, medians over rounds.

// A benchmark binary: failing loudly on a broken key is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use warrant::crypto::{Algorithm, SigningKey};

/// The claims the token endpoint signs (RFC 9068 §2.2), same field order.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
}

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
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(rounds),
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
}
