//! Warrant: an OAuth 2.0 client-credentials token authority.
//!
//! `main.rs` only parses the command line; everything else is here so the
//! integration tests can start the real server in-process.

pub mod cli;
pub mod clock;
pub mod configuration;
pub mod credentials;
pub mod crypto;
pub mod domain;
pub mod forwarded;
pub mod keys;
pub mod labels;
pub mod limits;
pub mod metrics;
pub mod registry;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
