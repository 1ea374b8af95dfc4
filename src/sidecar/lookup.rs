//! Finding the pion-ipc binary: `PION_IPC_BIN`, then the npm platform package, then `PATH`.
//!
//! Only the package is checked for trust: Node's resolution walks up to every ancestor
//! `node_modules`, so it can turn up a package that someone else planted in a shared folder.
//! `PION_IPC_BIN`, `binPath` and `PATH` are the user's own choices and run as given.

use crate::error::Error;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// What the search looks at; the caller gathers it (Node's module resolution finds the
/// platform package, so that npm, pnpm and Yarn layouts all work).
#[derive(Debug, Clone, Default)]
pub struct LookupInput {
    /// The value of `PION_IPC_BIN`, if set and not empty.
    pub env_bin: Option<PathBuf>,
    /// The platform package's name, e.g. `@coclaw/pion-ipc-linux-x64`.
    pub package_name: String,
    /// The directory of that package when Node could resolve it.
    pub package_dir: Option<PathBuf>,
    /// The value of `PATH`.
    pub path_var: Option<std::ffi::OsString>,
    pub windows: bool,
}

/// The binary to run, and the package binary passed over on the way to it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub binary: PathBuf,
    pub refused: Option<Refusal>,
}

/// A platform package binary that is not run because another user could have put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub binary: PathBuf,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "binary {} was not run: {}, so another user could have put it there",
            self.binary.display(),
            self.reason
        )
    }
}

pub fn binary_name(windows: bool) -> &'static str {
    if windows {
        "pion-ipc.exe"
    } else {
        "pion-ipc"
    }
}

pub fn find_binary(input: &LookupInput) -> Result<Found, Error> {
    if let Some(bin) = &input.env_bin {
        if bin.is_file() {
            return Ok(Found {
                binary: bin.clone(),
                refused: None,
            });
        }
        return Err(Error::NotFound(format!(
            "PION_IPC_BIN is set to {}, which does not exist",
            bin.display()
        )));
    }
    let mut refused = None;
    if let Some(dir) = &input.package_dir {
        let bin = dir.join("bin").join(binary_name(input.windows));
        if bin.is_file() {
            match trusted(&bin) {
                Ok(binary) => {
                    return Ok(Found {
                        binary,
                        refused: None,
                    })
                }
                Err(reason) => {
                    refused = Some(Refusal {
                        binary: bin,
                        reason,
                    })
                }
            }
        }
    }
    if let Some(path_var) = &input.path_var {
        if let Some(binary) = search_path(path_var, input.windows) {
            return Ok(Found { binary, refused });
        }
    }
    let mut message = format!(
        "pion-ipc binary not found. Provide it in one of three ways: set PION_IPC_BIN to its \
         path, install the npm package {} (an optional dependency of pion-node-rs), or put \
         pion-ipc on PATH",
        input.package_name
    );
    if let Some(refusal) = refused {
        message.push_str(&format!(". The npm package's {refusal}"));
    }
    Err(Error::NotFound(message))
}

/// The real path of `bin` (the one to run, so that no symlink on the way can be swapped
/// after the check) if no user but the current one and root can replace it: neither the file
/// nor any folder above it, up to `/`, may be owned by someone else or writable by group or
/// others, except a sticky folder (`/tmp`): there, others cannot rename or remove what is
/// not theirs, and the entry below it on the way, checked just before, is the current
/// user's or root's. A package planted in `/tmp/node_modules` is refused all the same: the
/// planter owns that folder.
#[cfg(unix)]
fn trusted(bin: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let real =
        std::fs::canonicalize(bin).map_err(|e| format!("cannot resolve {}: {e}", bin.display()))?;
    for path in real.ancestors() {
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
        let owner = meta.uid();
        if owner != me && owner != 0 {
            return Err(format!(
                "{} is owned by uid {owner}, neither the current user (uid {me}) nor root",
                path.display()
            ));
        }
        let mode = meta.mode() & 0o7777;
        // Sticky (and a folder, not the binary): the entry below it is ours or root's.
        if mode & 0o1000 != 0 && path != real {
            continue;
        }
        let writers = if mode & 0o002 != 0 {
            "world-writable"
        } else if mode & 0o020 != 0 {
            "group-writable"
        } else {
            continue;
        };
        return Err(format!(
            "{} is writable by others ({writers}, mode {mode:04o})",
            path.display()
        ));
    }
    Ok(real)
}

/// Windows: no ownership or mode check (its ACLs are not modelled here).
#[cfg(not(unix))]
fn trusted(bin: &Path) -> Result<PathBuf, String> {
    Ok(bin.to_path_buf())
}

fn search_path(path_var: &OsStr, windows: bool) -> Option<PathBuf> {
    let names: &[&str] = if windows {
        &["pion-ipc.exe", "pion-ipc.cmd", "pion-ipc.bat", "pion-ipc"]
    } else {
        &["pion-ipc"]
    };
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch folder inside the checkout's `target/`: the trust check looks at every
    /// folder up to `/`, and the world-writable `/tmp` would fail every case. Removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
            let dir = base.join(format!("lookup-test-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            chmod(&dir, 0o755);
            if let Err(reason) = trusted(&dir) {
                panic!("the scratch folder must be trusted to start with: {reason}");
            }
            Scratch(dir)
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        chmod(path, 0o755);
    }

    /// `<root>/shared/node_modules/<pkg>` with its binary, and `<root>/path/pion-ipc`; the
    /// input resolves the package and has the other on PATH.
    fn layout(root: &Path) -> (LookupInput, PathBuf, PathBuf) {
        let pkg = root.join("shared/node_modules/@coclaw/pion-ipc-linux-x64");
        let packaged = pkg.join("bin/pion-ipc");
        executable(&packaged);
        let on_path = root.join("path/pion-ipc");
        executable(&on_path);
        let input = LookupInput {
            package_name: "@coclaw/pion-ipc-linux-x64".into(),
            package_dir: Some(pkg),
            path_var: Some(on_path.parent().unwrap().as_os_str().to_owned()),
            ..LookupInput::default()
        };
        (input, packaged, on_path)
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn env_var_wins_and_a_missing_file_is_named() {
        let dir = Scratch::new("env");
        let bin = dir.join("custom");
        executable(&bin);
        let mut input = LookupInput {
            env_bin: Some(bin.clone()),
            package_dir: Some(dir.to_path_buf()),
            ..LookupInput::default()
        };
        assert_eq!(find_binary(&input).unwrap().binary, bin);
        input.env_bin = Some(dir.join("missing"));
        let err = find_binary(&input).unwrap_err().to_string();
        assert!(
            err.contains(&dir.join("missing").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn package_then_path_then_a_helpful_error() {
        let dir = Scratch::new("order");
        let pkg = dir.join("pkg");
        let on_path = dir.join("path");
        executable(&on_path.join("pion-ipc"));
        let mut input = LookupInput {
            package_name: "@coclaw/pion-ipc-linux-x64".into(),
            package_dir: Some(pkg.clone()),
            path_var: Some(std::env::join_paths([dir.join("nothing"), on_path.clone()]).unwrap()),
            ..LookupInput::default()
        };
        // package directory without the binary: falls through to PATH
        let found = find_binary(&input).unwrap();
        assert_eq!(found.binary, on_path.join("pion-ipc"));
        assert_eq!(found.refused, None);
        executable(&pkg.join("bin/pion-ipc"));
        let found = find_binary(&input).unwrap();
        assert_eq!(found.binary, pkg.join("bin/pion-ipc"));
        assert_eq!(found.refused, None);
        input.package_dir = None;
        input.path_var = None;
        let err = find_binary(&input).unwrap_err().to_string();
        assert!(err.contains("PION_IPC_BIN"), "{err}");
        assert!(err.contains("@coclaw/pion-ipc-linux-x64"), "{err}");
        assert!(err.contains("PATH"), "{err}");
        assert!(!err.contains("was not run"), "{err}");
    }

    #[test]
    fn a_package_in_a_folder_writable_by_others_is_refused_for_path() {
        // world-writable, group-writable: refused (sticky: see below)
        for (mode, writers) in [(0o777, "world-writable"), (0o775, "group-writable")] {
            let dir = Scratch::new(&format!("writable-{mode:o}"));
            let (mut input, packaged, on_path) = layout(&dir);
            let shared = dir.join("shared");
            chmod(&shared, mode);
            let found = find_binary(&input).unwrap();
            assert_eq!(found.binary, on_path, "mode {mode:o}");
            let refusal = found.refused.expect("the refusal is reported");
            assert_eq!(refusal.binary, packaged);
            let expected = format!(
                "{} is writable by others ({writers}, mode {mode:04o})",
                shared.display()
            );
            assert_eq!(refusal.reason, expected);

            // nothing on PATH either: the error says which package was refused and why
            input.path_var = None;
            let err = find_binary(&input).unwrap_err().to_string();
            assert!(err.starts_with("pion-ipc binary not found."), "{err}");
            assert!(
                err.contains(&format!("binary {} was not run", packaged.display())),
                "{err}"
            );
            assert!(err.contains(&expected), "{err}");
        }
    }

    #[test]
    fn the_file_and_every_folder_above_it_are_checked() {
        let dir = Scratch::new("levels");
        let (input, packaged, on_path) = layout(&dir);
        let mut levels = vec![packaged.clone()];
        levels.extend(
            packaged
                .ancestors()
                .skip(1)
                .take_while(|p| p.starts_with(&*dir))
                .map(Path::to_path_buf),
        );
        // the file, bin/, the package, @coclaw, node_modules, shared, the scratch folder
        assert_eq!(levels.len(), 7);
        for level in &levels {
            let mode = 0o757;
            chmod(level, mode);
            let found = find_binary(&input).unwrap();
            assert_eq!(found.binary, on_path, "{} at {mode:o}", level.display());
            let reason = found.refused.unwrap().reason;
            assert!(
                reason.starts_with(&format!("{} is writable by others", level.display())),
                "{reason}"
            );
            chmod(level, 0o755);
            assert_eq!(
                find_binary(&input).unwrap().binary,
                packaged,
                "{}",
                level.display()
            );
        }
    }

    #[test]
    fn a_package_owned_by_another_user_is_refused() {
        if !is_root() {
            eprintln!("skipped: chown to another user needs root");
            return;
        }
        let dir = Scratch::new("owner");
        let (input, packaged, on_path) = layout(&dir);
        for level in [packaged.clone(), dir.join("shared")] {
            std::os::unix::fs::chown(&level, Some(65534), None).unwrap();
            assert_passed_over_for(&input, &on_path, &level);
            // root's own files are trusted
            std::os::unix::fs::chown(&level, Some(0), None).unwrap();
            assert_eq!(find_binary(&input).unwrap().binary, packaged);
        }
    }

    #[test]
    fn a_sticky_folder_is_passed_when_the_entry_below_it_is_ours() {
        // /tmp's case: others may write the folder but not replace what is not theirs
        let dir = Scratch::new("sticky");
        let (input, packaged, on_path) = layout(&dir);
        chmod(&dir.join("shared"), 0o1777);
        assert_eq!(
            find_binary(&input).unwrap(),
            Found {
                binary: packaged,
                refused: None
            }
        );
        if !is_root() {
            eprintln!("the planted case needs root (chown to another user)");
            return;
        }
        // planted: the entry below the sticky folder belongs to someone else
        let planted = dir.join("shared/node_modules");
        std::os::unix::fs::chown(&planted, Some(65534), None).unwrap();
        assert_passed_over_for(&input, &on_path, &planted);
        std::os::unix::fs::chown(&planted, Some(0), None).unwrap();
    }

    /// The package was passed over for the binary on PATH because `foreign` belongs to uid
    /// 65534 (the tests run as root).
    fn assert_passed_over_for(input: &LookupInput, on_path: &Path, foreign: &Path) {
        let found = find_binary(input).unwrap();
        assert_eq!(found.binary, on_path);
        assert_eq!(
            found.refused.unwrap().reason,
            format!(
                "{} is owned by uid 65534, neither the current user (uid 0) nor root",
                foreign.display()
            )
        );
    }

    #[test]
    fn symlinks_are_judged_by_where_they_lead() {
        let dir = Scratch::new("links");
        let (mut input, packaged, on_path) = layout(&dir);
        let pkg = input.package_dir.clone().unwrap();

        // a link in a world-writable folder to a trusted package: the target runs, by its
        // real path, so swapping the link afterwards changes nothing
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        std::os::unix::fs::symlink(&pkg, open.join("pkg")).unwrap();
        input.package_dir = Some(open.join("pkg"));
        let found = find_binary(&input).unwrap();
        assert_eq!(
            found,
            Found {
                binary: packaged.clone(),
                refused: None
            }
        );

        // a link in a trusted folder into a world-writable one: refused
        let closed = dir.join("closed");
        std::fs::create_dir(&closed).unwrap();
        chmod(&closed, 0o755);
        chmod(&dir.join("shared"), 0o777);
        std::os::unix::fs::symlink(&pkg, closed.join("pkg")).unwrap();
        input.package_dir = Some(closed.join("pkg"));
        let found = find_binary(&input).unwrap();
        assert_eq!(found.binary, on_path);
        assert!(found
            .refused
            .unwrap()
            .reason
            .starts_with(&format!("{} is writable", dir.join("shared").display())));
    }

    #[test]
    fn explicit_choices_are_not_checked() {
        let dir = Scratch::new("explicit");
        let open = dir.join("open");
        let bin = open.join("pion-ipc");
        executable(&bin);
        chmod(&open, 0o777);
        chmod(&bin, 0o777);
        // PION_IPC_BIN is the user's choice
        let input = LookupInput {
            env_bin: Some(bin.clone()),
            ..LookupInput::default()
        };
        assert_eq!(
            find_binary(&input).unwrap(),
            Found {
                binary: bin.clone(),
                refused: None
            }
        );
        // so is PATH
        let input = LookupInput {
            path_var: Some(open.as_os_str().to_owned()),
            ..LookupInput::default()
        };
        assert_eq!(
            find_binary(&input).unwrap(),
            Found {
                binary: bin,
                refused: None
            }
        );
    }
}
