//! The built-in `hello-world` image. berth must greet a new user on a machine with no
//! registry, so the daemon makes the image on demand: a rootfs holding one tiny static
//! program that writes a message and exits. The program is assembled here by hand (a
//! minimal ELF with two syscalls) because shipping a prebuilt binary blob would be opaque,
//! and no crate produces an executable for another program at run time.

/// The greeting the program prints.
pub const MESSAGE: &str = "
Hello from berth!
This message shows that your installation appears to be working correctly.

To produce it, berth did the following:
 1. The berth client contacted the berth daemon through the Docker Engine API.
 2. The daemon had no \"hello-world\" image, so it made one on the spot from a
    tiny program that ships inside berth (no registry needed).
 3. The daemon created a new container from that image, and a small shim
    process started it; the program you are reading now runs inside it.
 4. The daemon streamed the program's output to the berth client, which
    printed it to your terminal.

Try something more ambitious, with a shell inside a container:
 $ berth run -it busybox sh

The docker CLI works too: point it at berth with
 $ export DOCKER_HOST=unix:///run/berth/berth.sock
";

const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The machine code for this host: write(1, msg, len); exit(0). `None` on an architecture
/// we have no encoding for.
fn code(msg_len: u32) -> Option<(u16, Vec<u8>)> {
    if cfg!(target_arch = "x86_64") {
        let mut c = Vec::new();
        c.extend_from_slice(&[0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
        c.extend_from_slice(&[0xbf, 1, 0, 0, 0]); // mov edi, 1 (stdout)
        c.extend_from_slice(&[0x48, 0x8d, 0x35, 16, 0, 0, 0]); // lea rsi, [rip+16] -> message
        c.push(0xba); // mov edx, len
        c.extend_from_slice(&msg_len.to_le_bytes());
        c.extend_from_slice(&[0x0f, 0x05]); // syscall
        c.extend_from_slice(&[0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
        c.extend_from_slice(&[0x31, 0xff]); // xor edi, edi
        c.extend_from_slice(&[0x0f, 0x05]); // syscall
        Some((0x3e, c))
    } else if cfg!(target_arch = "aarch64") {
        let ins: [u32; 8] = [
            0xd280_0020,                             // mov x0, #1
            0x1000_00e1,                             // adr x1, .+28 -> message
            0xd280_0002 | ((msg_len & 0xffff) << 5), // movz x2, #len
            0xd280_0808,                             // mov x8, #64 (write)
            0xd400_0001,                             // svc #0
            0xd280_0000,                             // mov x0, #0
            0xd280_0ba8,                             // mov x8, #93 (exit)
            0xd400_0001,                             // svc #0
        ];
        Some((0xb7, ins.iter().flat_map(|i| i.to_le_bytes()).collect()))
    } else {
        None
    }
}

/// A complete static ELF executable that prints [`MESSAGE`].
pub fn program() -> Option<Vec<u8>> {
    let msg = MESSAGE.as_bytes();
    let (machine, code) = code(msg.len() as u32)?;
    let total = (EHDR + PHDR + code.len() + msg.len()) as u64;
    let mut f = Vec::with_capacity(total as usize);
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [EHDR as u16, PHDR as u16, 1, 0, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    f.extend_from_slice(&0u64.to_le_bytes()); // offset
    f.extend_from_slice(&BASE.to_le_bytes()); // vaddr
    f.extend_from_slice(&BASE.to_le_bytes()); // paddr
    f.extend_from_slice(&total.to_le_bytes()); // filesz
    f.extend_from_slice(&total.to_le_bytes()); // memsz
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // align
    f.extend_from_slice(&code);
    f.extend_from_slice(msg);
    Some(f)
}

/// A rootfs tarball holding `/hello`, ready for the image store's import.
pub fn rootfs_tar() -> Option<Vec<u8>> {
    let prog = program()?;
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(prog.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "hello", prog.as_slice()).ok()?;
    b.into_inner().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_program_runs_and_greets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello");
        std::fs::write(&p, super::program().unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&p).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), super::MESSAGE);
        assert!(super::rootfs_tar().unwrap().len() > 1024);
    }
}
