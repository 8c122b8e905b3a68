//! Tokens signed by an independent implementation (`jsonwebtoken`) verify,
//! for every supported algorithm, with typed claims out.

// Helpers outside #[test] functions unwrap too; a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use jsonwebtoken::Algorithm;
use serde_json::json;
use warrant_verifier::{ErrorKind, Validation, Verifier, dangerous};

#[tokio::test]
async fn tokens_signed_by_jsonwebtoken_verify_for_all_four_algorithms() {
    let verifier = fixed_verifier();
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ] {
        let mut claims = claims();
        claims["tenant"] = json!({ "id": 42 });
        let token = sign(alg, &claims);
        let verified = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(verified.issuer(), ISSUER);
        assert_eq!(verified.subject(), "client-1");
        assert_eq!(verified.client_id(), "client-1");
        assert_eq!(verified.audiences(), [AUDIENCE]);
        assert_eq!(verified.jti(), "jti-1");
        assert_eq!(verified.expires_at(), claims["exp"].as_i64().unwrap());
        assert_eq!(verified.issued_at(), claims["iat"].as_i64().unwrap());
        assert_eq!(verified.scopes(), ["read", "write"]);
        assert_eq!(verified.extra()["tenant"]["id"], 42);
        assert!(verified.require_all_scopes(&["read", "write"]).is_ok());
        assert_eq!(
            *verified.require_all_scopes(&["admin"]).unwrap_err().kind(),
            ErrorKind::InsufficientScope
        );
        assert!(verified.require_any_scope(&["admin", "read"]).is_ok());
    }
}

#[tokio::test]
async fn a_tampered_token_fails_for_every_algorithm() {
    let verifier = fixed_verifier();
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ] {
        let token = sign(alg, &claims());
        let mut other = claims();
        other["scope"] = json!("read write admin");
        let forged_claims = sign(alg, &other);
        let (head, _) = token.rsplit_once('.').unwrap();
        let (_, sig) = forged_claims.rsplit_once('.').unwrap();
        // The signature of another claims set on these claims:
        let error = verifier.verify(&format!("{head}.{sig}")).await.unwrap_err();
        assert_eq!(*error.kind(), ErrorKind::InvalidSignature, "{alg:?}");
    }
}

#[tokio::test]
async fn aud_arrays_scope_arrays_and_the_application_typ_are_accepted() {
    let verifier = fixed_verifier();
    let mut claims = claims();
    claims["aud"] = json!(["https://other.example", AUDIENCE]);
    claims["scope"] = json!(["read", "write"]);
    let header = r#"{"alg":"RS256","kid":"rsa-1","typ":"Application/AT+JWT"}"#;
    let token = sign_raw_rs256(header, &claims.to_string());
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.scopes(), ["read", "write"]);
    assert_eq!(verified.audiences().len(), 2);
}

#[tokio::test]
async fn untyped_tokens_pass_only_through_the_dangerous_module() {
    let token = sign_raw_rs256(r#"{"alg":"RS256","kid":"rsa-1"}"#, &claims().to_string());
    let strict = fixed_verifier();
    assert_eq!(
        *strict.verify(&token).await.unwrap_err().kind(),
        ErrorKind::InvalidType
    );

    let mut validation = validation();
    dangerous::accept_untyped_tokens(&mut validation);
    let keys = warrant_verifier::KeySet::from_jwks(all_public_jwks().as_bytes()).unwrap();
    let lenient = Verifier::builder(validation).keys(keys).build().unwrap();
    assert!(lenient.verify(&token).await.is_ok());

    let (header, claims) = dangerous::decode_unverified(&token, 8192).unwrap();
    assert_eq!(header.alg(), "RS256");
    assert_eq!(header.typ(), None);
    assert_eq!(claims.client_id(), "client-1");
}

#[test]
fn the_builder_refuses_unusable_settings() {
    let kind =
        |builder: warrant_verifier::VerifierBuilder| builder.build().unwrap_err().into_kind();
    assert!(matches!(
        kind(Verifier::builder(validation())),
        ErrorKind::InvalidConfiguration(_)
    ));
    let no_audience = Validation::new(ISSUER, Vec::<String>::new());
    assert!(matches!(
        kind(Verifier::builder(no_audience).hs256_secret("k", HS_SECRET)),
        ErrorKind::InvalidConfiguration(_)
    ));
    assert!(matches!(
        kind(Verifier::builder(validation()).hs256_secret("k", b"too short")),
        ErrorKind::InvalidConfiguration(_)
    ));
    assert!(matches!(
        kind(
            Verifier::builder(validation())
                .hs256_secret("k", HS_SECRET)
                .hs256_secret("k", HS_SECRET)
        ),
        ErrorKind::InvalidConfiguration(_)
    ));
}

#[test]
fn validation_defaults_are_the_documented_ones() {
    let validation = validation();
    assert_eq!(validation.leeway, std::time::Duration::from_secs(30));
    assert_eq!(validation.max_token_bytes, 8192);
    assert!(validation.leeway <= std::time::Duration::from_secs(60));
}

#[test]
fn the_public_types_can_be_shared_across_threads_and_verify_is_send() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Verifier>();
    send_sync::<warrant_verifier::JwksCache>();
    send_sync::<warrant_verifier::KeySet>();
    send_sync::<warrant_verifier::Claims>();
    send_sync::<warrant_verifier::Error>();
    fn send<T: Send>(_: &T) {}
    let verifier = fixed_verifier();
    send(&verifier.verify("a.b.c"));
}
