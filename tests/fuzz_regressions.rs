//! Replays every input the fuzzers (`fuzz/`) ever crashed on, with the same checks, as a
//! stable test: `tests/fuzz-regressions/<target>/<input>`. A crash found later is added there
//! with its fix; see `docs/robustness.md`. Each target's folder also holds a few small inputs
//! at the edges its check looks at (limits, blank texts, broken files), so that no replay
//! runs on nothing: an empty folder fails the test.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "{} has no input to replay",
        folder.display()
    );
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        let replayed = std::panic::catch_unwind(|| check(&data));
        assert!(replayed.is_ok(), "{} fails again", input.display());
    }
}

#[test]
fn client_frames() {
    replay("frames", checks::frames);
}

#[test]
fn normalisation() {
    replay("normalize", checks::normalization);
}

#[test]
fn faq_files() {
    replay("faq_files", checks::faq_files);
}

#[test]
fn shop_files() {
    replay("shop_files", checks::shop_files);
}
