//! Full verification next to the raw signature check of the same token, per
//! algorithm, in the same run: `cargo bench -p warrant-verifier`.
//!
//! "raw" is aws-lc-rs verifying the already-decoded signature with an
//! already-parsed key; "full" is `Verifier::verify` on the compact token
//! (size cap, split, base64, header, key lookup, signature, claims parse,
//! claim checks). Medians of interleaved rounds. DESIGN §2 targets:
//! RS256 ≤ 1.15×, HS256 ≤ 5×.

// A benchmark is a program that either runs or fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future as _;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use warrant_verifier::{KeySet, Validation, Verifier};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://orders.example.com";
const SECRET: &[u8] = b"an HS256 secret shared out of band, 32+ bytes";
const ROUNDS: usize = 41;
const ROUND_TIME: Duration = Duration::from_millis(15);

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims as Warrant mints them.
fn signing_input(alg: &str, kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({ "alg": alg, "kid": kid, "typ": "at+jwt" });
    let claims = json!({
        "iss": ISSUER, "sub": "3WtmPZbVq0bq4bX1a9JQ2A", "aud": AUDIENCE,
        "exp": now + 900, "iat": now, "jti": "LeO3RzRn9dXVracHaz0izQ",
        "client_id": "3WtmPZbVq0bq4bX1a9JQ2A", "scope": "orders:read orders:write",
    });
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

struct Case {
    name: &'static str,
    token: String,
    raw: Box<dyn Fn() -> bool>,
    verifier: Verifier,
}

fn cases() -> Vec<Case> {
    let rng = SystemRandom::new();
    let validation = || Validation::new(ISSUER, [AUDIENCE]);
    let fixed = |jwk: serde_json::Value| {
        let keys = KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        Verifier::builder(validation()).keys(keys).build().unwrap()
    };
    let mut cases = Vec::new();

    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let input = signing_input("RS256", "rsa");
    let mut signature = vec![0; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
        .unwrap();
    let public = rsa.public_key();
    let verifier = fixed(json!({
        "kty": "RSA", "kid": "rsa",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    }));
    let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public.as_ref()).unwrap();
    let token = format!("{input}.{}", b64(&signature));
    cases.push(Case {
        name: "RS256",
        token,
        raw: Box::new(move || key.verify_sig(input.as_bytes(), &signature).is_ok()),
        verifier,
    });

    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let input = signing_input("ES256", "ec");
    let signature = ec.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec();
    let point = ec.public_key().as_ref().to_vec();
    let verifier = fixed(json!({
        "kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..]),
    }));
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).unwrap();
    let token = format!("{input}.{}", b64(&signature));
    cases.push(Case {
        name: "ES256",
        token,
        raw: Box::new(move || key.verify_sig(input.as_bytes(), &signature).is_ok()),
        verifier,
    });

    let ed = Ed25519KeyPair::generate().unwrap();
    let input = signing_input("EdDSA", "ed");
    let signature = ed.sign(input.as_bytes()).as_ref().to_vec();
    let verifier = fixed(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref()),
    }));
    let key = ParsedPublicKey::new(&ED25519, ed.public_key().as_ref()).unwrap();
    let token = format!("{input}.{}", b64(&signature));
    cases.push(Case {
        name: "EdDSA",
        token,
        raw: Box::new(move || key.verify_sig(input.as_bytes(), &signature).is_ok()),
        verifier,
    });

    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    let input = signing_input("HS256", "hs");
    let tag = hmac::sign(&key, input.as_bytes()).as_ref().to_vec();
    let verifier = Verifier::builder(validation())
        .hs256_secret("hs", SECRET)
        .build()
        .unwrap();
    let token = format!("{input}.{}", b64(&tag));
    cases.push(Case {
        name: "HS256",
        token,
        raw: Box::new(move || hmac::verify(&key, input.as_bytes(), &tag).is_ok()),
        verifier,
    });
    cases
}

/// `Verifier::verify` on fixed keys completes in one poll: no executor in the way.
fn verify_now(verifier: &Verifier, token: &str) -> bool {
    let mut future = pin!(verifier.verify(token));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(outcome) => outcome.is_ok(),
        Poll::Pending => panic!("verification with fixed keys waited"),
    }
}

/// Nanoseconds per call of `f` over `iterations` calls.
fn time(iterations: u32, f: &dyn Fn() -> bool) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        assert!(black_box(f()));
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 3 } else { ROUNDS };
    println!(
        "{:<6} {:>12} {:>12} {:>8}   (medians of {rounds} interleaved rounds)",
        "alg", "raw ns/op", "full ns/op", "ratio"
    );
    for case in cases() {
        let full = || verify_now(&case.verifier, black_box(&case.token));
        assert!(full(), "{}: the benchmark token does not verify", case.name);
        // Size rounds to about ROUND_TIME of raw work.
        let once = time(200, &*case.raw).max(1.0);
        let iterations = if quick {
            50
        } else {
            ((ROUND_TIME.as_nanos() as f64 / once) as u32).max(50)
        };
        let (mut raw, mut verified) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            raw.push(time(iterations, &*case.raw));
            verified.push(time(iterations, &full));
        }
        let (raw, verified) = (median(raw), median(verified));
        println!(
            "{:<6} {:>12.0} {:>12.0} {:>7.2}x",
            case.name,
            raw,
            verified,
            verified / raw
        );
    }
}
