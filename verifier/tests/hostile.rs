//! Hostile tokens: every one must be refused, with the right reason.

// Helpers outside #[test] functions unwrap too; a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_lc_rs::hmac;
use common::*;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use warrant_verifier::ErrorKind;

async fn refusal(token: &str) -> ErrorKind {
    match fixed_verifier().verify(token).await {
        Ok(claims) => panic!("accepted a hostile token: {claims:?}"),
        Err(error) => error.into_kind(),
    }
}

const RS_HEADER: &str = r#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}"#;

/// Well signed by the RSA key, with `change` applied to good claims.
fn rs256_with(change: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims();
    change(&mut claims);
    sign_raw_rs256(RS_HEADER, &claims.to_string())
}

fn hs256(header: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("{input}.{}", b64(hmac::sign(&key, input.as_bytes())))
}

#[tokio::test]
async fn alg_none_is_refused() {
    let header = r#"{"alg":"none","kid":"rsa-1","typ":"at+jwt"}"#;
    let body = claims().to_string();
    let unsigned = format!("{}.{}.", b64(header), b64(&body));
    assert!(matches!(refusal(&unsigned).await, ErrorKind::Malformed(_)));
    let with_junk = format!("{}.{}.{}", b64(header), b64(&body), b64("x"));
    assert_eq!(refusal(&with_junk).await, ErrorKind::UnsupportedAlgorithm);
    let none_caps = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"NONE","kid":"rsa-1","typ":"at+jwt"}"#),
        b64(&body),
        b64("x")
    );
    assert_eq!(refusal(&none_caps).await, ErrorKind::UnsupportedAlgorithm);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let keys = keys();
    let header = r#"{"alg":"HS256","kid":"rsa-1","typ":"at+jwt"}"#;
    let body = claims().to_string();
    let pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            &keys.rsa_public_der
        )
    );
    for secret in [
        &keys.rsa_public_der[..],
        pem.as_bytes(),
        keys.rsa_jwk.to_string().as_bytes(),
    ] {
        // Under the RSA key's kid: no HS256 secret has it, the RSA key is not tried.
        assert_eq!(
            refusal(&hs256(header, &body, secret)).await,
            ErrorKind::UnknownKeyId
        );
        // Under the configured secret's kid: wrong secret.
        let header = header.replace("rsa-1", HS_KID);
        assert_eq!(
            refusal(&hs256(&header, &body, secret)).await,
            ErrorKind::InvalidSignature
        );
    }
}

#[tokio::test]
async fn a_key_never_verifies_another_algorithm() {
    // ES256 header naming the RSA key, with a valid RSA signature.
    let token = sign_raw_rs256(
        r#"{"alg":"ES256","kid":"rsa-1","typ":"at+jwt"}"#,
        &claims().to_string(),
    );
    assert_eq!(refusal(&token).await, ErrorKind::AlgorithmMismatch);
    let token = sign_raw_rs256(
        r#"{"alg":"RS256","kid":"ec-1","typ":"at+jwt"}"#,
        &claims().to_string(),
    );
    assert_eq!(refusal(&token).await, ErrorKind::AlgorithmMismatch);
}

#[tokio::test]
async fn keys_offered_in_the_header_are_ignored() {
    let header = json!({
        "alg": "RS256", "typ": "at+jwt", "kid": "attacker",
        "jwk": keys().rsa_jwk, "jku": "http://127.0.0.1:1/jwks", "x5u": "http://127.0.0.1:1/x5u", "x5c": ["MIIB"],
    });
    let token = sign_raw_rs256(&header.to_string(), &claims().to_string());
    assert_eq!(refusal(&token).await, ErrorKind::UnknownKeyId);
    // And with a known kid they change nothing: the token verifies.
    let header = header.to_string().replace("attacker", "rsa-1");
    let token = sign_raw_rs256(&header, &claims().to_string());
    assert!(fixed_verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn crit_is_refused() {
    let token = sign_raw_rs256(
        r#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","crit":["exp"]}"#,
        &claims().to_string(),
    );
    assert_eq!(refusal(&token).await, ErrorKind::CriticalHeader);
}

#[tokio::test]
async fn a_wrong_or_missing_typ_is_refused() {
    for typ in [
        r#","typ":"JWT""#,
        r#","typ":"application/jwt""#,
        r#","typ":7"#,
        "",
    ] {
        let header = format!(r#"{{"alg":"RS256","kid":"rsa-1"{typ}}}"#);
        let token = sign_raw_rs256(&header, &claims().to_string());
        let kind = refusal(&token).await;
        assert!(
            matches!(kind, ErrorKind::InvalidType | ErrorKind::Malformed(_)),
            "{typ}: {kind:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_kid_is_refused() {
    let token = sign_raw_rs256(r#"{"alg":"RS256","typ":"at+jwt"}"#, &claims().to_string());
    assert_eq!(refusal(&token).await, ErrorKind::MissingKeyId);
}

#[tokio::test]
async fn a_string_exp_is_a_rejection_not_a_skip() {
    let token = rs256_with(|c| c["exp"] = json!((now() + 600).to_string()));
    assert_eq!(refusal(&token).await, ErrorKind::InvalidClaim("exp"));
    let token = sign(Algorithm::HS256, &{
        let mut c = claims();
        c["exp"] = json!("9999999999");
        c
    });
    assert_eq!(refusal(&token).await, ErrorKind::InvalidClaim("exp"));
}

#[tokio::test]
async fn a_missing_exp_is_refused() {
    let token = rs256_with(|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_eq!(refusal(&token).await, ErrorKind::MissingClaim("exp"));
}

#[tokio::test]
async fn other_wrongly_typed_claims_are_refused() {
    let cases: [(&str, Value); 6] = [
        ("iat", json!("now")),
        ("nbf", json!(true)),
        ("iss", json!([ISSUER])),
        ("sub", json!(1)),
        ("client_id", json!(null)),
        ("scope", json!(1)),
    ];
    for (name, value) in cases {
        let token = rs256_with(|c| c[name] = value);
        assert_eq!(
            refusal(&token).await,
            ErrorKind::InvalidClaim(name),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_aud_list_without_ours_is_refused() {
    let token =
        rs256_with(|c| c["aud"] = json!(["https://a.example", "https://api.example.com.evil"]));
    assert_eq!(refusal(&token).await, ErrorKind::InvalidAudience);
    let token = rs256_with(|c| c["aud"] = json!([]));
    assert_eq!(refusal(&token).await, ErrorKind::InvalidAudience);
}

#[tokio::test]
async fn the_issuer_must_match_exactly() {
    for iss in [
        "https://issuer.example.evil",
        "https://issuer.example/",
        "HTTPS://issuer.example",
        "https://issuer.exampl",
    ] {
        let token = rs256_with(|c| c["iss"] = json!(iss));
        assert_eq!(refusal(&token).await, ErrorKind::InvalidIssuer, "{iss}");
    }
}

#[tokio::test]
async fn anything_but_three_segments_is_refused() {
    let good = sign(Algorithm::RS256, &claims());
    for bad in [
        format!("{good}."),
        format!("{good}.e30"),
        good.replacen('.', "", 1),
        "a.b.c.d".into(),
    ] {
        assert!(
            matches!(refusal(&bad).await, ErrorKind::Malformed(_)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_megabyte_token_is_refused_before_parsing() {
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(10),
        "A".repeat(1 << 20),
        "A".repeat(10)
    );
    assert_eq!(refusal(&huge).await, ErrorKind::TokenTooLarge);
    let huge = "x".repeat(1 << 20);
    assert_eq!(refusal(&huge).await, ErrorKind::TokenTooLarge);
}

#[tokio::test]
async fn invalid_base64_is_refused() {
    let good = sign(Algorithm::RS256, &claims());
    let (header, rest) = good.split_once('.').unwrap();
    let (body, signature) = rest.split_once('.').unwrap();
    for bad in [
        format!("{header}=.{body}.{signature}"),
        format!(
            "{header}.{body}.{}",
            signature.replace('-', "+").replace('_', "/") + "+/"
        ),
        format!("{header}.{body}=.{signature}"),
        format!("{header}.{body}.{signature}=="),
        format!("{header}.{body} .{signature}"),
        format!("{header}.{body}.{signature}!"),
        format!("{header}.{body}.{}", &signature[..signature.len() - 1]),
    ] {
        let kind = refusal(&bad).await;
        assert!(
            matches!(kind, ErrorKind::Malformed(_) | ErrorKind::InvalidSignature),
            "{bad}: {kind:?}"
        );
    }
}

#[tokio::test]
async fn an_all_zero_es256_signature_is_refused() {
    let header = r#"{"alg":"ES256","kid":"ec-1","typ":"at+jwt"}"#;
    let token = format!(
        "{}.{}.{}",
        b64(header),
        b64(claims().to_string()),
        b64([0u8; 64])
    );
    assert_eq!(refusal(&token).await, ErrorKind::InvalidSignature);
    // And an empty-looking one of the wrong length.
    let token = format!(
        "{}.{}.{}",
        b64(header),
        b64(claims().to_string()),
        b64([0u8; 1])
    );
    assert_eq!(refusal(&token).await, ErrorKind::InvalidSignature);
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_leeway_only() {
    let token = rs256_with(|c| {
        c["exp"] = json!(now() - 120);
        c["iat"] = json!(now() - 900);
    });
    assert_eq!(refusal(&token).await, ErrorKind::Expired);
    let within_leeway = rs256_with(|c| c["exp"] = json!(now() - 5));
    assert!(fixed_verifier().verify(&within_leeway).await.is_ok());
}

#[tokio::test]
async fn iat_or_nbf_in_the_future_is_refused() {
    let token = rs256_with(|c| c["iat"] = json!(now() + 300));
    assert_eq!(refusal(&token).await, ErrorKind::IssuedInFuture);
    let token = rs256_with(|c| c["nbf"] = json!(now() + 300));
    assert_eq!(refusal(&token).await, ErrorKind::NotYetValid);
    let slightly_ahead = rs256_with(|c| c["iat"] = json!(now() + 5));
    assert!(fixed_verifier().verify(&slightly_ahead).await.is_ok());
}

#[tokio::test]
async fn a_repeated_claim_is_refused() {
    let mut body = claims().to_string();
    body.insert_str(1, r#""iss":"https://issuer.example.evil","#);
    let token = sign_raw_rs256(RS_HEADER, &body);
    assert_eq!(refusal(&token).await, ErrorKind::InvalidClaim("iss"));
}

#[tokio::test]
async fn claims_that_are_not_an_object_are_refused() {
    for body in ["[]", "\"x\"", "{", "{}x", ""] {
        let token = sign_raw_rs256(RS_HEADER, body);
        let kind = refusal(&token).await;
        assert!(matches!(kind, ErrorKind::Malformed(_)), "{body}: {kind:?}");
    }
}

#[tokio::test]
async fn an_rsa_key_with_a_degenerate_exponent_is_skipped() {
    for e in ["AQ", "Ag", "AAEAAQ"] {
        let mut jwk = keys().rsa_jwk.clone();
        jwk["e"] = json!(e);
        let set = warrant_verifier::KeySet::from_jwks(jwks(&[&jwk]).as_bytes()).unwrap();
        assert!(set.is_empty(), "e = {e}");
    }
}

#[test]
fn a_header_that_is_a_json_array_is_malformed() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = format!(
        "{}.{}.{}",
        b64(r#"["RS256","k","at+jwt"]"#),
        b64("{}"),
        b64("sig")
    );
    let err = warrant_verifier::dangerous::decode_unverified(&token, 8192).unwrap_err();
    assert!(
        matches!(err.kind(), warrant_verifier::ErrorKind::Malformed(_)),
        "{err:?}"
    );
}
