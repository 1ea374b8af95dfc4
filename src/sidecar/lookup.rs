//! Finding the pion-ipc binary: `PION_IPC_BIN`, then the npm platform package, then `PATH`.

use crate::error::Error;
use std::ffi::OsStr;
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

pub fn binary_name(windows: bool) -> &'static str {
    if windows {
        "pion-ipc.exe"
    } else {
        "pion-ipc"
    }
}

pub fn find_binary(input: &LookupInput) -> Result<PathBuf, Error> {
    if let Some(bin) = &input.env_bin {
        if bin.is_file() {
            return Ok(bin.clone());
        }
        return Err(Error::NotFound(format!(
            "PION_IPC_BIN is set to {}, which does not exist",
            bin.display()
        )));
    }
    if let Some(dir) = &input.package_dir {
        let bin = dir.join("bin").join(binary_name(input.windows));
        if bin.is_file() {
            return Ok(bin);
        }
    }
    if let Some(path_var) = &input.path_var {
        if let Some(bin) = search_path(path_var, input.windows) {
            return Ok(bin);
        }
    }
    Err(Error::NotFound(format!(
        "pion-ipc binary not found. Provide it in one of three ways: set PION_IPC_BIN to its \
         path, install the npm package {} (an optional dependency of pion-node-rs), or put \
         pion-ipc on PATH",
        input.package_name
    )))
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

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pnr-lookup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn env_var_wins_and_a_missing_file_is_named() {
        let dir = temp_dir("env");
        let bin = dir.join("custom");
        executable(&bin);
        let mut input = LookupInput {
            env_bin: Some(bin.clone()),
            package_dir: Some(dir.clone()),
            ..LookupInput::default()
        };
        assert_eq!(find_binary(&input).unwrap(), bin);
        input.env_bin = Some(dir.join("missing"));
        let err = find_binary(&input).unwrap_err().to_string();
        assert!(
            err.contains(&dir.join("missing").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn package_then_path_then_a_helpful_error() {
        let dir = temp_dir("order");
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
        assert_eq!(find_binary(&input).unwrap(), on_path.join("pion-ipc"));
        executable(&pkg.join("bin/pion-ipc"));
        assert_eq!(find_binary(&input).unwrap(), pkg.join("bin/pion-ipc"));
        input.package_dir = None;
        input.path_var = None;
        let err = find_binary(&input).unwrap_err().to_string();
        assert!(err.contains("PION_IPC_BIN"), "{err}");
        assert!(err.contains("@coclaw/pion-ipc-linux-x64"), "{err}");
        assert!(err.contains("PATH"), "{err}");
    }
}
