//! Generates include/bitcask.h with cbindgen.
//!
//! The header is written to OUT_DIR on every build, and copied to
//! include/bitcask.h when it differs — except in CI (`CI` set), where the
//! source tree is left alone and the test `header_is_current` fails if the
//! committed header is stale.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CI");
    // The C tests compile for the target the Rust code is built for (a
    // cross build under qemu-user included): tests/c_api.rs reads this.
    println!(
        "cargo:rustc-env=BITCASK_BUILD_TARGET={}",
        env::var("TARGET").unwrap()
    );

    let version = |part: &str| -> u32 {
        env::var(format!("CARGO_PKG_VERSION_{part}"))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (major, minor, patch) = (version("MAJOR"), version("MINOR"), version("PATCH"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("reading cbindgen.toml");
    config.after_includes = Some(format!(
        "\n/** Version of this header; bc_version() and bc_version_number() give the library's. */\n\
         #define BC_VERSION_MAJOR {major}\n\
         #define BC_VERSION_MINOR {minor}\n\
         #define BC_VERSION_PATCH {patch}\n\
         /** MAJOR*1000000 + MINOR*1000 + PATCH. */\n\
         #define BC_VERSION_NUMBER {}\n",
        major * 1_000_000 + minor * 1_000 + patch
    ));

    let header = cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate bitcask.h");
    let mut text = Vec::new();
    header.write(&mut text);

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bitcask.h");
    fs::write(&out, &text).expect("writing OUT_DIR/bitcask.h");

    let committed = root.join("include").join("bitcask.h");
    let in_ci = env::var_os("CI").is_some();
    if !in_ci && fs::read(&committed).ok().as_deref() != Some(&text[..]) {
        fs::create_dir_all(committed.parent().unwrap()).unwrap();
        fs::write(&committed, &text).expect("writing include/bitcask.h");
    }
}
