//! Replays the fuzz target's seed corpus (`fuzz/corpus/parse_token/`) on
//! stable, through the same calls as `fuzz/fuzz_targets/parse_token.rs`:
//! `valid-*` files must verify, `hostile-*` files must be refused.

// Helpers outside #[test] functions unwrap too; a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future as _;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use warrant_verifier::{Validation, Verifier, dangerous};

/// The secret the corpus's valid tokens are signed with (as in the fuzz target).
const SECRET: &[u8] = b"fuzz-corpus-secret-of-at-least-32-bytes";

#[test]
fn every_seed_of_the_fuzz_corpus_is_parsed_without_panicking_and_judged_right() {
    let verifier = Verifier::builder(Validation::new(
        "https://issuer.example",
        ["https://api.example.com"],
    ))
    .hs256_secret("fuzz", SECRET)
    .build()
    .unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/parse_token");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(token) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let _ = dangerous::decode_unverified(token, 8192);
        // HS256 only: verification completes in one poll, as in the fuzz target.
        let mut future = pin!(verifier.verify(token));
        let Poll::Ready(outcome) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("{name}: verification waited");
        };
        if name.starts_with("valid-") {
            assert!(outcome.is_ok(), "{name}: {outcome:?}");
        } else {
            assert!(outcome.is_err(), "{name} was accepted");
        }
        seen += 1;
    }
    assert!(seen >= 12, "only {seen} corpus files");
}
