//! Feeds arbitrary bytes to the token parser and to a full verification
//! (HS256, so no key fetching): neither may panic, whatever the input.

#![no_main]

use std::future::Future as _;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use warrant_verifier::{dangerous, Validation, Verifier};

/// The secret the seed corpus's valid tokens are signed with.
const SECRET: &[u8] = b"fuzz-corpus-secret-of-at-least-32-bytes";

fn verifier() -> Option<&'static Verifier> {
    static VERIFIER: OnceLock<Option<Verifier>> = OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            Verifier::builder(Validation::new(
                "https://issuer.example",
                ["https://api.example.com"],
            ))
            .hs256_secret("fuzz", SECRET)
            .build()
            .ok()
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = dangerous::decode_unverified(token, 8192);
    if let Some(verifier) = verifier() {
        // With HS256 secrets only, verification never waits: one poll completes it.
        let mut future = pin!(verifier.verify(token));
        let mut context = Context::from_waker(Waker::noop());
        if let Poll::Ready(outcome) = future.as_mut().poll(&mut context) {
            let _ = outcome;
        }
    }
});
