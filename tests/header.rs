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

/// Every exported function's comment says which statuses it returns (if it
/// returns any) and whether it may be called from several threads.
#[test]
fn every_function_documents_statuses_and_threads() {
    let lines: Vec<&str> = GENERATED.lines().collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line
            .split('(')
            .next()
            .and_then(|head| head.rsplit([' ', '*']).next())
            .filter(|n| {
                n.starts_with("bc_")
                    && line.contains('(')
                    && line.starts_with(|c: char| c.is_ascii_alphabetic())
            })
        else {
            continue;
        };
        if line.starts_with("typedef") {
            continue;
        }
        // The comment block right above the declaration.
        let end = i.checked_sub(1).filter(|&e| lines[e].trim_end() == " */");
        let Some(end) = end else {
            panic!("{name}: no comment right above its declaration");
        };
        let start = (0..end)
            .rev()
            .find(|&s| lines[s].starts_with("/**"))
            .unwrap();
        let doc = lines[start..end].join("\n").to_lowercase();
        assert!(doc.contains("thread-safe"), "{name}: no thread-safety line");
        if line.starts_with("bc_status ") {
            assert!(
                doc.contains("@return") || doc.contains("statuses as for"),
                "{name}: no @return line"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} functions found in the header"
    );
}

/// Every name the header gives a C program (macros, types, tags) carries
/// the library's prefix: an internal constant exported as `PAGE` would
/// clash with a program's own.
#[test]
fn every_name_the_header_defines_is_prefixed() {
    let prefixed = |n: &str| n.starts_with("bc_") || n.starts_with("BC_") || n == "BITCASK_H";
    let mut names = Vec::new();
    for line in GENERATED.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["#define", name, ..] => names.push(name.to_string()),
            ["typedef", .., last] if last.ends_with(';') => {
                // The name a typedef gives (a function pointer's in parentheses).
                let name = last.trim_end_matches(';');
                let name = match line.find("(*") {
                    Some(i) => line[i + 2..].split(')').next().unwrap(),
                    None => name,
                };
                names.push(name.to_string());
            }
            ["}", name] => names.push(name.trim_end_matches(';').to_string()),
            ["enum" | "struct" | "typedef", .., tag, "{"] => names.push(tag.to_string()),
            ["enum" | "struct", tag] => names.push(tag.to_string()),
            _ => {}
        }
    }
    assert!(names.len() >= 10, "found only {names:?}");
    let bare: Vec<&String> = names.iter().filter(|n| !prefixed(n)).collect();
    assert!(
        bare.is_empty(),
        "names without the bc_/BC_ prefix: {bare:?}"
    );
}
