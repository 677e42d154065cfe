//! Replays every input of `corpus/<target>/` (seeds, and crashes once fixed) through its
//! target: a panic fails the test, naming the file. Each target's corpus must hold inputs
//! its parser accepts and inputs it refuses, so that fuzzing starts past the first refusal.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use kiln_fuzz::{TARGETS, Verdict};

#[test]
fn every_corpus_input_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut failures = Vec::new();
    for (name, check) in TARGETS {
        let mut inputs: Vec<_> = fs::read_dir(corpus.join(name))
            .unwrap_or_else(|error| panic!("corpus/{name}: {error}"))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        let mut verdicts = BTreeSet::new();
        for input in inputs {
            let data = fs::read(&input).expect("a corpus file");
            match catch_unwind(AssertUnwindSafe(|| check(&data))) {
                Ok(verdict) => {
                    verdicts.insert(verdict);
                }
                Err(_) => failures.push(input.display().to_string()),
            }
        }
        for wanted in [Verdict::Accepted, Verdict::Refused] {
            assert!(
                verdicts.contains(&wanted),
                "corpus/{name} has no input its parser ends {wanted:?}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their target: {failures:#?}"
    );
}
