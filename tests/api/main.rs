//! The one integration-test binary: each test starts a real server on port 0
//! with a fresh database, master key and signing key.

// Test helpers are not `#[test]` functions, so clippy.toml's allow-*-in-tests
// does not reach them; a failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod cli;
mod discovery;
mod faults;
mod fuzz_corpus;
mod health;
mod helpers;
mod hygiene;
mod keys;
mod limits;
mod mutations;
mod openapi;
mod replicas;
mod startup;
mod token;
mod token_errors;
mod verifier;
