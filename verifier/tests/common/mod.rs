//! Keys, tokens (signed by the independent `jsonwebtoken` crate) and a tiny
//! JWKS server on 127.0.0.1 for the integration tests.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use warrant_verifier::{KeySet, Validation, Verifier};

pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "https://api.example.com";
pub const HS_KID: &str = "hs-1";
pub const HS_SECRET: &[u8] = b"an out-of-band secret of 32+ bytes!!";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct Keys {
    pub rsa_pkcs1: Vec<u8>,
    pub rsa_public_der: Vec<u8>,
    pub rsa_jwk: Value,
    pub ec_pkcs8: Vec<u8>,
    pub ec_jwk: Value,
    pub ed_pkcs8: Vec<u8>,
    pub ed_jwk: Value,
}

/// One set of keys per test binary: RSA generation is slow in debug builds.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let rsa_pkcs8 = rsa.as_der().unwrap().as_ref().to_vec();
        let public = rsa.public_key();
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref().to_vec();
        let ed = Ed25519KeyPair::generate().unwrap();
        Keys {
            rsa_pkcs1: pkcs8_inner_key(&rsa_pkcs8),
            rsa_public_der: public.as_ref().to_vec(),
            rsa_jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa-1",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            }),
            ec_pkcs8: ec.to_pkcs8v1().unwrap().as_ref().to_vec(),
            ec_jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "ec-1",
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            }),
            ed_pkcs8: ed.to_pkcs8().unwrap().as_ref().to_vec(),
            ed_jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "ed-1",
                "x": b64(ed.public_key().as_ref()),
            }),
        }
    })
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo, which is
/// what `jsonwebtoken` wants for RSA: SEQUENCE { INTEGER, SEQUENCE, OCTET STRING }.
fn pkcs8_inner_key(der: &[u8]) -> Vec<u8> {
    fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, header) = match der[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (der[2] as usize, 3),
            0x82 => ((der[2] as usize) << 8 | der[3] as usize, 4),
            other => panic!("unexpected DER length byte {other}"),
        };
        (tag, &der[header..header + len], &der[header + len..])
    }
    let (_, info, _) = read(der);
    let (_, _, rest) = read(info); // version
    let (_, _, rest) = read(rest); // algorithm
    let (tag, key, _) = read(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

pub fn jwks(keys: &[&Value]) -> String {
    json!({ "keys": keys }).to_string()
}

pub fn all_public_jwks() -> String {
    let k = keys();
    jwks(&[&k.rsa_jwk, &k.ec_jwk, &k.ed_jwk])
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 9068 claims as Warrant mints them.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "client-1",
        "aud": AUDIENCE,
        "exp": now() + 600,
        "iat": now(),
        "jti": "jti-1",
        "client_id": "client-1",
        "scope": "read write",
    })
}

/// A token signed by `jsonwebtoken` with the test key for `alg`.
pub fn sign(alg: Algorithm, claims: &Value) -> String {
    let (kid, key) = match alg {
        Algorithm::RS256 => ("rsa-1", EncodingKey::from_rsa_der(&keys().rsa_pkcs1)),
        Algorithm::ES256 => ("ec-1", EncodingKey::from_ec_der(&keys().ec_pkcs8)),
        Algorithm::EdDSA => ("ed-1", EncodingKey::from_ed_der(&keys().ed_pkcs8)),
        Algorithm::HS256 => (HS_KID, EncodingKey::from_secret(HS_SECRET).unwrap()),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Re-signs an arbitrary header and claims (as JSON text) with the RSA key,
/// to test what the verifier does with well-signed but hostile content.
pub fn sign_raw_rs256(header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = aws_lc_rs::rsa::KeyPair::from_der(&keys().rsa_pkcs1).unwrap();
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", b64(signature))
}

pub fn validation() -> Validation {
    Validation::new(ISSUER, [AUDIENCE])
}

/// A verifier with the three public keys fixed and the HS256 secret.
pub fn fixed_verifier() -> Verifier {
    let keys = KeySet::from_jwks(all_public_jwks().as_bytes()).unwrap();
    assert_eq!(keys.len(), 3);
    Verifier::builder(validation())
        .keys(keys)
        .hs256_secret(HS_KID, HS_SECRET)
        .build()
        .unwrap()
}

/// What the test JWKS server answers.
#[derive(Clone)]
pub enum Mode {
    /// 200 with this body and optional Cache-Control.
    Serve(String, Option<String>),
    /// 503.
    Unavailable,
    /// Closes the connection without answering.
    Drop,
}

/// A minimal HTTP/1.1 server on 127.0.0.1:0 that answers every request
/// with the current [`Mode`] and counts requests.
pub struct JwksServer {
    pub url: String,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

impl JwksServer {
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let mode = Arc::new(Mutex::new(mode));
        let hits = Arc::new(AtomicUsize::new(0));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (m, h, d) = (mode.clone(), hits.clone(), delay.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (mode, hits, delay) = (m.clone(), h.clone(), d.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let pause = *delay.lock().unwrap();
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    let mode = mode.lock().unwrap().clone();
                    let response = match mode {
                        Mode::Serve(body, cache_control) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n{body}",
                            body.len(),
                            cache_control.map(|cc| format!("cache-control: {cc}\r\n")).unwrap_or_default(),
                        ),
                        Mode::Unavailable => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                        Mode::Drop => return,
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            mode,
            hits,
            delay,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Polls `condition` every 10 ms for at most `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}
