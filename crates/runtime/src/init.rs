//! berth's `--init`: the small PID 1 built from `init/init.rs` by build.rs (statically
//! linked, so it runs in an image without a C library) and carried inside the berth binary.
//! The daemon writes it into its exec root at start ([`install`]); containers run with
//! `--init` (or `init: true` in daemon.json) get it bind-mounted read-only at
//! [`crate::spec::INIT_PATH`], as Docker mounts its docker-init.

use std::path::{Path, PathBuf};

use crate::Error;

/// The init executable.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// The init's file name in the exec root.
pub const FILE_NAME: &str = "berth-init";

/// Writes the init into `dir` (mode 0755: any container user may run it), unless the same
/// bytes are there already; returns its path.
pub fn install(dir: &Path) -> Result<PathBuf, Error> {
    crate::embedded::install(dir, FILE_NAME, BINARY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_a_static_executable() {
        assert_eq!(&BINARY[..4], b"\x7fELF");
        // No program interpreter (PT_INTERP = 3): it needs no dynamic loader in the image.
        let phoff = u64::from_le_bytes(BINARY[32..40].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes(BINARY[54..56].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(BINARY[56..58].try_into().unwrap()) as usize;
        for i in 0..phnum {
            let off = phoff + i * phentsize;
            let typ = u32::from_le_bytes(BINARY[off..off + 4].try_into().unwrap());
            assert_ne!(typ, 3, "the init has a program interpreter");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = install(dir.path()).unwrap();
        let out = std::process::Command::new(&p).args(["--", "sh", "-c", "exit 7"]).status().unwrap();
        assert_eq!(out.code(), Some(7));
        let out = std::process::Command::new(&p).args(["--", "/nonexistent"]).output().unwrap();
        assert_eq!(out.status.code(), Some(127));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(install(dir.path()).unwrap(), p, "installing twice is fine");
    }
}
