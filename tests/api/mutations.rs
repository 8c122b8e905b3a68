//! Random and mutated token requests, at the HTTP level: whatever arrives,
//! the answer is a documented status with a valid RFC 6749 body (checked
//! against openapi.yaml by `TestApp::send`), never a 500.

use base64::Engine as _;
use reqwest::Method;

use crate::helpers::{basic, spawn_app_with_env};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    const INTERESTING: &[u8] = b"%&=+ \x00\xff\xfe;:\"\\\r\n#";
    for _ in 0..=rng.below(4) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.below(bytes.len())
        };
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if !bytes.is_empty() => bytes[at] = (rng.next() & 0xff) as u8,
            _ => {
                let copy = bytes[at..].to_vec();
                bytes.extend_from_slice(&copy[..copy.len().min(64)]);
            }
        }
    }
    bytes
}

#[tokio::test]
async fn mutated_requests_never_get_a_500_or_an_undocumented_answer() {
    let app = spawn_app_with_env(&[
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "0"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "0"),
    ])
    .await;
    let client = app.create_client().await;
    let seeds = [
        "grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fapi.example.com"
            .to_owned(),
        format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            client.id, client.secret
        ),
        "grant_type=password&username=a&password=b".to_owned(),
    ];
    let content_types = [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/json",
        "multipart/form-data; boundary=x",
        "",
    ];
    let mut rng = Rng(0x5eed_2026_1130);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let seed = seeds[rng.below(seeds.len())].clone().into_bytes();
        let body = mutate(&mut rng, seed);
        let authorization = match rng.below(5) {
            0 => None,
            1 => Some(basic(&client.id, &client.secret)),
            2 => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(mutate(
                    &mut rng,
                    format!("{}:{}", client.id, client.secret).into_bytes()
                ))
            )),
            3 => Some(
                String::from_utf8_lossy(&mutate(&mut rng, b"Basic Y2xpZW50OnNlY3JldA==".to_vec()))
                    .into_owned(),
            ),
            _ => Some(
                rng.pick(&["Bearer x", "basic", "Basic", "Digest a=b", "Basic ==="])
                    .to_owned(),
            ),
        };
        let mut request = app.token_request(Method::POST).body(body);
        let content_type = rng.pick(&content_types);
        if !content_type.is_empty() {
            request = request.header("Content-Type", content_type);
        }
        if let Some(value) = authorization
            .as_deref()
            .and_then(|a| reqwest::header::HeaderValue::from_str(a).ok())
        {
            request = request.header("Authorization", value);
        }
        let response = app.send(Method::POST, "/oauth/token", request).await;
        assert_ne!(response.status, 500, "{}", response.body);
        *statuses.entry(response.status.as_u16()).or_insert(0) += 1;
    }
    eprintln!("mutated requests by status: {statuses:?}");
    // The mutations reach past the parsers: some still get tokens.
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400) && statuses.contains_key(&401)
    );
}
