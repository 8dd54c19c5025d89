//! The C API seen from C.
//!
//! Every `c-tests/*.c` program is compiled with strict warnings
//! (`-std=c99 -Wall -Wextra -Wpedantic -Werror -pthread`) against
//! `include/bitcask.h`, linked to the `libbitcask.so` that `cargo test` has
//! just built, and run as its own process; each is one `#[test]` here. The
//! header is compiled alone as C99/C11 and C++11 (and linked from C++), and
//! `examples/*.c` are compiled and run, as are the Python (ctypes) and Go
//! (cgo) wrappers in `examples/python` and `examples/go`.
//!
//! Environment:
//! - `BITCASK_VALGRIND=1`: run every program under valgrind (leaks of kind
//!   definite/indirect and memory errors fail the test).
//! - `BITCASK_ASAN=1`: compile the C code with AddressSanitizer and
//!   UndefinedBehaviorSanitizer instead (the Rust library itself is not
//!   instrumented). Takes precedence over `BITCASK_VALGRIND`.
//! - `CC` / `CXX` / `CFLAGS` are honoured the way the `cc` crate does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const STRICT_C: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];
const STRICT_CXX: &[&str] = &["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];
const SANITIZE: &[&str] = &["-fsanitize=address,undefined", "-fno-omit-frame-pointer"];
const VALGRIND: &[&str] = &[
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
    "--error-exitcode=99",
    "--quiet",
];

/// Whether an environment variable is set to something other than "", "0"
/// or "false" (`BITCASK_VALGRIND=1`, `CI=true`).
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn asan() -> bool {
    env_flag("BITCASK_ASAN")
}

fn valgrind() -> bool {
    env_flag("BITCASK_VALGRIND") && !asan()
}

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(MANIFEST_DIR).join(rel)
}

/// The directory of the libbitcask.so built for this test run.
///
/// This test binary is target/<profile>/deps/c_api-<hash>. `cargo test`
/// builds the library (all its crate types, the cdylib included) into that
/// same deps/ directory before running integration tests; it copies it up to
/// target/<profile>/ only for `cargo build`, so the copy there may be stale.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe
        .parent()
        .unwrap_or_else(|| panic!("unexpected test executable location {}", exe.display()));
    let name = if cfg!(target_os = "macos") {
        "libbitcask.dylib"
    } else {
        "libbitcask.so"
    };
    if deps.join(name).is_file() {
        return deps.to_path_buf();
    }
    let profile = deps.parent().unwrap_or(deps);
    assert!(
        profile.join(name).is_file(),
        "{name} found neither in {} nor in {}. The C tests link against the cdylib that \
         `cargo test` builds before integration tests; run them with `cargo test --test c_api`.",
        deps.display(),
        profile.display()
    );
    eprintln!(
        "note: using {} (not rebuilt by this test run?)",
        profile.join(name).display()
    );
    profile.to_path_buf()
}

/// The triple the tests run on; `cc` wants one even outside a build script.
fn host_triple() -> String {
    if let Ok(t) = std::env::var("TARGET") {
        return t;
    }
    // The target this test was built for, from build.rs.
    if let Some(t) = option_env!("BITCASK_BUILD_TARGET") {
        return t.to_string();
    }
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" if cfg!(target_env = "musl") => format!("{arch}-unknown-linux-musl"),
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!(
            "{}-apple-darwin",
            if arch == "aarch64" { "aarch64" } else { arch }
        ),
        "freebsd" => format!("{arch}-unknown-freebsd"),
        other => panic!("no target triple known for OS {other}; set TARGET"),
    }
}

fn compiler(cpp: bool) -> Command {
    let triple = host_triple();
    cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .emit_rerun_if_env_changed(false)
        .inherit_rustflags(false)
        .target(&triple)
        .host(&triple)
        .opt_level(0)
        .debug(false)
        // Not `.warnings(false)`: for GCC that adds `-w`, which silences
        // the -Wall -Wextra -Wpedantic -Werror the tests ask for.
        .cpp(cpp)
        .get_compiler()
        .to_command()
}

/// Where compiled programs and scratch files go (target/tmp/c-tests).
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-tests");
    fs::create_dir_all(&dir).expect("create target/tmp/c-tests");
    dir
}

fn run_to_completion(mut cmd: Command, what: &str) -> (ExitStatus, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

/// Compiles C (or C++) sources into an executable linked to libbitcask.
fn build_program(sources: &[PathBuf], exe: &Path, cpp: bool) {
    let libdir = lib_dir();
    let mut cmd = compiler(cpp);
    cmd.args(if cpp { STRICT_CXX } else { STRICT_C })
        .arg("-pthread")
        .arg("-g")
        .arg("-I")
        .arg(manifest_path("include"));
    if asan() {
        cmd.args(SANITIZE);
    }
    cmd.args(sources)
        .arg("-o")
        .arg(exe)
        .arg("-L")
        .arg(&libdir)
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-lbitcask");
    let shown = format!("{cmd:?}");
    let (status, text) = run_to_completion(cmd, "the C compiler");
    assert!(status.success(), "compiling failed:\n{shown}\n{text}");
}

fn exe_name(stem: &str) -> PathBuf {
    out_dir().join(if asan() {
        format!("{stem}-asan")
    } else {
        stem.to_string()
    })
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A fresh empty directory under target/tmp/c-tests.
fn scratch_dir(label: &str) -> PathBuf {
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let dir = out_dir().join(format!("{label}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs a compiled program (under valgrind if asked) with a time limit and
/// panics with its whole output unless it exits 0.
fn run_program(exe: &Path, args: &[&str], what: &str) -> String {
    let timeout = if valgrind() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(180)
    };
    let mut cmd = if valgrind() {
        let mut c = Command::new("valgrind");
        c.args(VALGRIND).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args);
    // `cargo test` puts target/<profile> (the copy `cargo build` made, maybe
    // stale) first on LD_LIBRARY_PATH, which beats the -rpath (a RUNPATH):
    // put the library this run built in front of it.
    let var = if cfg!(target_os = "macos") {
        "DYLD_LIBRARY_PATH"
    } else {
        "LD_LIBRARY_PATH"
    };
    let mut paths = vec![lib_dir()];
    if let Some(old) = std::env::var_os(var) {
        paths.extend(std::env::split_paths(&old));
    }
    cmd.env(
        var,
        std::env::join_paths(paths).expect("library search path"),
    );
    if asan() {
        cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    }
    // Output goes to files, not pipes: grandchildren inherit stdout/stderr,
    // and a pipe would stay open as long as they run.
    let logs = scratch_dir("log");
    let out_path = logs.join("stdout");
    let err_path = logs.join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout log"))
        .stderr(fs::File::create(&err_path).expect("stderr log"));

    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        if valgrind() {
            panic!("cannot start valgrind ({e}); install it (apt-get install valgrind) or unset BITCASK_VALGRIND")
        }
        panic!("cannot start {}: {e}", exe.display())
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        fs::read_to_string(&out_path).unwrap_or_default(),
        fs::read_to_string(&err_path).unwrap_or_default()
    );
    let _ = fs::remove_dir_all(&logs);
    let mode = if valgrind() {
        " under valgrind"
    } else if asan() {
        " (ASan/UBSan)"
    } else {
        ""
    };
    match status {
        None => panic!("{what}{mode} timed out after {timeout:?}\n{output}"),
        Some(st) if !st.success() => {
            let why = match st.code() {
                Some(99) if valgrind() => {
                    "exit 99: valgrind found memory errors or leaks (or the test failed and left \
                     memory behind: look for FAILED lines)"
                        .to_string()
                }
                Some(code) => format!("exit code {code}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("killed by signal {}", st.signal().unwrap_or(0))
                }
            };
            panic!("{what}{mode} failed: {why}\n{output}")
        }
        Some(_) => {
            println!(
                "{what}{mode} passed in {:.2}s\n{output}",
                start.elapsed().as_secs_f64()
            );
            output
        }
    }
}

/// Compiles c-tests/<name>.c and runs it.
fn run_c_test(name: &str) {
    let src = manifest_path(&format!("c-tests/{name}.c"));
    assert!(src.is_file(), "{} is missing", src.display());
    let exe = exe_name(name);
    build_program(&[src], &exe, false);
    run_program(&exe, &[], &format!("c-tests/{name}.c"));
}

macro_rules! c_tests {
    ($($name:ident),* $(,)?) => {
        /// Every C test program; `every_c_test_is_registered` keeps this in
        /// step with the directory.
        const REGISTERED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_c_test(stringify!($name));
            }
        )*
    };
}

c_tests!(
    test_args,
    test_basic,
    test_corruption,
    test_fd_limit,
    test_fsync,
    test_full_disk,
    test_get_into,
    test_hints,
    test_iter,
    test_limits,
    test_lock,
    test_merge,
    test_merge_policy,
    test_fallocate,
    test_options,
    test_power_loss,
    test_readonly,
    test_reopen,
    test_stats,
    test_status,
    test_sync,
    test_threads,
    test_ttl,
    test_version,
);

#[test]
fn every_c_test_is_registered() {
    let mut on_disk: Vec<String> = fs::read_dir(manifest_path("c-tests"))
        .expect("read c-tests/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|n| n.strip_suffix(".c").map(str::to_string))
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = REGISTERED.iter().map(|s| s.to_string()).collect();
    registered.sort();
    assert_eq!(
        on_disk, registered,
        "c-tests/*.c and the c_tests! list in tests/c_api.rs differ"
    );
}

/// The header alone compiles cleanly as C99, C11 and C++11, is idempotent
/// (include guard), and C++ callers link to the unmangled symbols.
#[test]
fn header_compiles_alone_as_c_and_cpp() {
    let header = manifest_path("include/bitcask.h");
    for (std, cpp) in [
        ("-std=c99", false),
        ("-std=c11", false),
        ("-std=c++11", true),
        ("-std=c++17", true),
    ] {
        let mut cmd = compiler(cpp);
        cmd.arg("-x")
            .arg(if cpp { "c++" } else { "c" })
            .arg(std)
            .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"])
            .arg(&header);
        let shown = format!("{cmd:?}");
        let (status, text) = run_to_completion(cmd, "the compiler");
        assert!(
            status.success(),
            "include/bitcask.h alone does not compile:\n{shown}\n{text}"
        );
    }

    // Included twice, used from C++ and linked: extern "C" names, the enum
    // type usable as a status, version agreement.
    let dir = scratch_dir("header");
    let src = dir.join("twice.cpp");
    fs::write(
        &src,
        r#"#include "bitcask.h"
#include "bitcask.h"
#include <cstdio>
#include <cstring>
int main() {
    bc_status st = bc_close(nullptr);
    if (st != BC_OK) { std::printf("bc_close(nullptr) = %d\n", (int)st); return 1; }
    if (bc_version_number() != BC_VERSION_NUMBER) { std::printf("version mismatch\n"); return 1; }
    if (std::strcmp(bc_status_str(BC_LOCKED), bc_status_str(9999)) == 0) return 1;
    bc_options *o = nullptr;
    if (bc_options_new(&o) != BC_OK || o == nullptr) return 1;
    if (bc_options_set_sync(o, BC_SYNC_INTERVAL, 0) != BC_INVALID_ARGUMENT) return 1;
    bc_options_free(o);
    bc_stats s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if (bc_get_stats(nullptr, &s) != BC_INVALID_ARGUMENT) return 1;
    std::printf("C++ caller linked against bitcask %s\n", bc_version());
    return 0;
}
"#,
    )
    .unwrap();
    let exe = exe_name("header_cpp_link");
    build_program(&[src], &exe, true);
    run_program(&exe, &[], "C++ program using bitcask.h");
    let _ = fs::remove_dir_all(&dir);
}

fn run_example(name: &str) {
    let src = manifest_path(&format!("examples/{name}.c"));
    assert!(src.is_file(), "{} is missing", src.display());
    let exe = exe_name(&format!("example_{name}"));
    build_program(&[src], &exe, false);
    let dir = scratch_dir(name);
    let db = dir.join("db");
    let db = db.to_str().expect("utf-8 path");
    // A fresh database, then again on the now existing one.
    run_program(&exe, &[db], &format!("examples/{name}.c (new database)"));
    run_program(
        &exe,
        &[db],
        &format!("examples/{name}.c (existing database)"),
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn example_quickstart() {
    run_example("quickstart");
}

#[test]
fn example_threads() {
    run_example("threads");
}

#[test]
fn example_sensors() {
    run_example("sensors");
}

/// The cgo wrapper in examples/go builds (gofmt-clean, `go vet`-clean)
/// against this run's library and runs its checked demonstration, which
/// includes failing calls from many goroutines whose messages must be
/// their own. Skipped as the Python example is: under valgrind and ASan,
/// for another architecture, and without `go` outside CI.
#[test]
fn example_go_cgo() {
    if valgrind() || asan() {
        return;
    }
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let goarch = match Command::new(&go).args(["env", "GOARCH"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            assert!(
                !env_flag("CI"),
                "{go} not found; CI installs golang-go for this test"
            );
            eprintln!("note: {go} not found: skipped examples/go");
            return;
        }
    };
    let ours = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        arch => arch,
    };
    if goarch != ours {
        eprintln!("note: {go} builds for {goarch}, this library is for {ours}: skipped");
        return;
    }
    let src = manifest_path("examples/go");
    let unformatted = Command::new("gofmt")
        .arg("-l")
        .arg(&src)
        .output()
        .expect("run gofmt");
    assert!(
        unformatted.status.success() && unformatted.stdout.is_empty(),
        "gofmt -l examples/go: {}",
        String::from_utf8_lossy(&unformatted.stdout)
    );
    let lib = lib_dir();
    let lib = lib.to_str().expect("utf-8 path");
    let exe = exe_name("example_go");
    let go_cmd = |args: &[&str]| {
        let out = Command::new(&go)
            .args(args)
            .current_dir(&src)
            .env("CGO_ENABLED", "1")
            .env("CGO_LDFLAGS", format!("-L{lib} -Wl,-rpath,{lib}"))
            .env(
                "GOCACHE",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache"),
            )
            .env("GOTOOLCHAIN", "local")
            .output()
            .expect("run go");
        assert!(
            out.status.success(),
            "go {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    go_cmd(&["vet", "./..."]);
    go_cmd(&["build", "-o", exe.to_str().expect("utf-8 path"), "."]);
    let dir = scratch_dir("go");
    let db = dir.join("db");
    let out = run_program(&exe, &[db.to_str().expect("utf-8 path")], "examples/go");
    assert!(
        out.contains("from Go: 5000 keys"),
        "unexpected output\n{out}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The ctypes wrapper in examples/python runs its checked demonstration
/// against this run's library. Skipped under valgrind and ASan (they would
/// instrument the interpreter, not the library), and without python3
/// outside CI (the README's test command needs only Rust and a C compiler).
#[test]
fn example_python_ctypes() {
    if valgrind() || asan() {
        return;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if Command::new(&python).arg("--version").output().is_err() {
        assert!(
            !env_flag("CI"),
            "{python} not found; CI installs python3 for this test"
        );
        eprintln!("note: {python} not found: skipped examples/python/bitcask.py");
        return;
    }
    // A cross build (tests run under qemu-user) cannot be loaded into the
    // host's interpreter.
    let machine = Command::new(&python)
        .args(["-c", "import platform; print(platform.machine())"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let same_arch = match std::env::consts::ARCH {
        "arm" => machine.starts_with("arm"),
        "aarch64" => machine == "aarch64" || machine == "arm64",
        "x86" => machine.len() == 4 && machine.starts_with('i') && machine.ends_with("86"),
        arch => machine == arch,
    };
    if !same_arch {
        eprintln!(
            "note: {python} runs on {machine}, this build is for another architecture: skipped"
        );
        return;
    }
    let lib = lib_dir().join(if cfg!(target_os = "macos") {
        "libbitcask.dylib"
    } else {
        "libbitcask.so"
    });
    let dir = scratch_dir("python");
    let out = Command::new(&python)
        .arg(manifest_path("examples/python/bitcask.py"))
        .arg(&lib)
        .arg(dir.join("db"))
        .output()
        .expect("run python3");
    let text = format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "examples/python/bitcask.py failed\n{text}"
    );
    assert!(
        text.contains("from Python: 1000 keys"),
        "unexpected output\n{text}"
    );
    let _ = fs::remove_dir_all(&dir);
}
