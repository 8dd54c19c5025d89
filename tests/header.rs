//! The committed header is exactly what build.rs generates, and its version
//! macros agree with Cargo.toml.

use std::fs;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/bitcask.h"));

#[test]
fn header_is_current() {
    let committed = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/bitcask.h"))
        .expect("include/bitcask.h is missing: run `cargo build` and commit it");
    assert!(
        committed == GENERATED,
        "include/bitcask.h differs from what build.rs generates: run `cargo build` (outside CI) and commit the header"
    );
}

fn macro_value(name: &str) -> u32 {
    let line = GENERATED
        .lines()
        .find(|l| l.starts_with(&format!("#define {name} ")))
        .unwrap_or_else(|| panic!("{name} missing from the header"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn version_macros_match_cargo_toml() {
    let manifest = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("version in Cargo.toml");
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(macro_value("BC_VERSION_MAJOR"), parts[0]);
    assert_eq!(macro_value("BC_VERSION_MINOR"), parts[1]);
    assert_eq!(macro_value("BC_VERSION_PATCH"), parts[2]);
    assert_eq!(
        macro_value("BC_VERSION_NUMBER"),
        parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]
    );
    assert_eq!(
        bitcask::ffi::bc_version_number(),
        macro_value("BC_VERSION_NUMBER")
    );
}
