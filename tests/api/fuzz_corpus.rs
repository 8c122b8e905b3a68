//! Replays the cargo-fuzz corpus (fuzz/corpus) through the parsers on stable,
//! so CI exercises every seed even without a fuzzer.

#[test]
fn every_corpus_input_parses_or_is_refused_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/token_request");
    let mut inputs = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let Some((&split, rest)) = data.split_first() else {
            continue;
        };
        let (authorization, body) = rest.split_at(usize::from(split).min(rest.len()));
        let authorization = (!authorization.is_empty()).then_some(authorization);
        if warrant::routes::fuzz_parse_request(body, authorization) {
            accepted += 1;
        }
        inputs += 1;
    }
    assert!(inputs >= 10, "corpus missing");
    // The seeds hold both well-formed and hostile requests.
    assert!(
        accepted >= 3 && accepted < inputs,
        "{accepted} of {inputs} accepted"
    );
}
