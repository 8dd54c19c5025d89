//! What the Rust benches share.

/// The command line's arguments, without the `--bench` that `cargo bench`
/// adds.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}
