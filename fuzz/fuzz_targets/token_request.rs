#![no_main]
//! The token endpoint's parsers on arbitrary bytes: the first byte splits the
//! input into an Authorization header value and a form body.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (authorization, body) = rest.split_at(split);
    let authorization = (!authorization.is_empty()).then_some(authorization);
    let _ = warrant::routes::fuzz_parse_request(body, authorization);
});
