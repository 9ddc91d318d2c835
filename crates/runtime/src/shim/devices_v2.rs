//! Device access control for a container on a cgroup v2 host: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup, as runc and crun
//! attach one (v2 has no `devices` controller files).
//!
//! libcontainer 0.7 can attach such a program itself only with its `cgroupsv2_devices`
//! feature, which links libbpf and first raises `RLIMIT_MEMLOCK` to 128 MiB, failing the
//! start when it cannot: on hosts that withhold `CAP_SYS_RESOURCE` (this VM: hard limit
//! 8 MiB) every container would fail, although kernels since 5.11 charge BPF memory to the
//! memory cgroup and need no such limit. So the shim builds and attaches the program here,
//! by hand, with two `bpf(2)` calls: a few dozen instructions, one block per rule.
//!
//! The rules are libcontainer's for v1 and v2 alike: the spec's `linux.resources.devices`
//! in order (a rule for every device of every type and access resets the default), then
//! libcontainer's defaults (the standard `/dev` nodes, `mknod` of any device, the console,
//! ptys and `/dev/net/tun`). The last matching rule decides, as the v1 kernel does.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};
use rustix::process::Pid;

use crate::Error;

/// cgroup2's file system magic.
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// One access rule, resolved: `typ` 0 means every type, `None` every number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// BPF_DEVCG_DEV_BLOCK (1), BPF_DEVCG_DEV_CHAR (2), or 0 for both.
    typ: u32,
    major: Option<u32>,
    minor: Option<u32>,
    /// BPF_DEVCG_ACC_MKNOD (1) | READ (2) | WRITE (4).
    access: u32,
}

/// A spec rule as the program tests it; `None` for a FIFO rule, which no device matches.
fn rule_of(d: &LinuxDeviceCgroup) -> Option<Rule> {
    let typ = match d.typ() {
        Some(LinuxDeviceType::B) => 1,
        Some(LinuxDeviceType::C | LinuxDeviceType::U) => 2,
        Some(LinuxDeviceType::P) => return None,
        Some(LinuxDeviceType::A) | None => 0,
    };
    let access = d.access().as_deref().unwrap_or("rwm").chars().fold(0, |a, c| match c {
        'm' => a | 1,
        'r' => a | 2,
        'w' => a | 4,
        _ => a,
    });
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map(|n| n as u32);
    Some(Rule { allow: d.allow(), typ, major: num(d.major()), minor: num(d.minor()), access })
}

/// libcontainer's default rules (libcgroups' default_devices and default_allow_devices).
fn defaults() -> Vec<Rule> {
    let c = |major, minor: Option<u32>, access| Rule { allow: true, typ: 2, major, minor, access };
    let mut v: Vec<Rule> =
        [(1, 3), (1, 5), (1, 7), (5, 0), (1, 9), (1, 8)].iter().map(|&(ma, mi)| c(Some(ma), Some(mi), 7)).collect();
    v.push(Rule { allow: true, typ: 2, major: None, minor: None, access: 1 });
    v.push(Rule { allow: true, typ: 1, major: None, minor: None, access: 1 });
    v.push(c(Some(5), Some(1), 7));
    v.push(c(Some(136), None, 7));
    v.push(c(Some(5), Some(2), 7));
    v.push(c(Some(10), Some(200), 7));
    v
}

/// The default and the rules after the last reset, in order.
fn effective(rules: &[Rule]) -> (bool, Vec<Rule>) {
    let mut default = false;
    let mut list = Vec::new();
    for r in rules {
        if r.typ == 0 && r.major.is_none() && r.minor.is_none() && r.access == 7 {
            default = r.allow;
            list.clear();
        } else {
            list.push(*r);
        }
    }
    (default, list)
}

/// One BPF instruction (`struct bpf_insn`) as its 8 bytes.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf) << 8)
        | (u64::from(src & 0xf) << 12)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const MOV32_X: u8 = 0xbc; // w_dst = w_src
const AND32_K: u8 = 0x54; // w_dst &= imm
const RSH32_K: u8 = 0x74; // w_dst >>= imm
const JNE_K: u8 = 0x55; // if r_dst != imm goto +off
const MOV64_K: u8 = 0xb7; // r_dst = imm
const EXIT: u8 = 0x95;

/// The program: r2 = access, r3 = type, r4 = major, r5 = minor from `struct
/// bpf_cgroup_dev_ctx`; one block per rule, last rule first, each returning its verdict
/// when every test passes; the default at the end.
fn program(default: bool, rules: &[Rule]) -> Vec<u64> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV32_X, 3, 2, 0, 0),
        insn(AND32_K, 3, 0, 0, 0xffff),
        insn(RSH32_K, 2, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each test jumps past the block's end when it fails: (register, value) pairs, with
        // the access test as "access & !allowed == 0" on r0.
        let mut tests: Vec<Vec<u64>> = Vec::new();
        if r.typ != 0 {
            tests.push(vec![insn(JNE_K, 3, 0, 0, r.typ as i32)]);
        }
        if r.access != 7 {
            tests.push(vec![
                insn(MOV32_X, 0, 2, 0, 0),
                insn(AND32_K, 0, 0, 0, (!r.access & 7) as i32),
                insn(JNE_K, 0, 0, 0, 0),
            ]);
        }
        if let Some(m) = r.major {
            tests.push(vec![insn(JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = r.minor {
            tests.push(vec![insn(JNE_K, 5, 0, 0, m as i32)]);
        }
        let block_len: usize = tests.iter().map(Vec::len).sum::<usize>() + 2;
        let mut at = 0;
        for t in tests {
            for (i, mut ins) in t.iter().copied().enumerate() {
                if i + 1 == t.len() {
                    // The jump: to the instruction after the block's exit.
                    let off = (block_len - (at + i + 1)) as i16;
                    ins = (ins & !(0xffff << 16)) | (u64::from(off as u16) << 16);
                }
                p.push(ins);
            }
            at += t.len();
        }
        p.push(insn(MOV64_K, 0, 0, 0, i32::from(r.allow)));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV64_K, 0, 0, 0, i32::from(default)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads `prog` and attaches it to the cgroup directory `cg`.
fn attach_program(cg: &Path, prog: &[u64]) -> Result<(), Error> {
    let io = |context, e| Error::Io { context, path: cg.to_path_buf(), source: e };
    let license = c"Apache";
    let mut name = [0u8; 16];
    name[..6].copy_from_slice(b"berthd");
    let load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: `load` is a valid bpf_attr prefix of the size passed; the instruction and
    // license buffers it points to outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &load as *const ProgLoad, size_of::<ProgLoad>()) };
    if fd < 0 {
        return Err(io("loading the device access program for", std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let dir = std::fs::File::open(cg).map_err(|e| io("opening the cgroup", e))?;
    let attach = ProgAttach {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attach` is a valid bpf_attr prefix of the size passed; both descriptors are
    // open for the duration of the call (the attachment keeps its own reference).
    let rc =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, &attach as *const ProgAttach, size_of::<ProgAttach>()) };
    if rc < 0 {
        return Err(io("attaching the device access program to", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The container's cgroup directory on a unified host (`None` on v1 and hybrid hosts,
/// where libcontainer's v1 devices controller applies the same rules).
fn unified_cgroup_of(init: Pid) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between architectures
    let unified = rustix::fs::statfs(root).is_ok_and(|s| s.f_type as u64 == CGROUP2_SUPER_MAGIC);
    if !unified {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", init.as_raw_nonzero())).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(root.join(path.trim_start_matches('/')))
}

/// Attaches the container's device access program to its cgroup on a unified host; a
/// no-op elsewhere. Called after create, before the container's command runs.
pub(super) fn apply(spec: &Spec, init: Pid) -> Result<(), Error> {
    let Some(cg) = unified_cgroup_of(init) else { return Ok(()) };
    let mut rules: Vec<Rule> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .map(|d| d.iter().filter_map(rule_of).collect())
        .unwrap_or_default();
    rules.extend(defaults());
    let (default, list) = effective(&rules);
    attach_program(&cg, &program(default, &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program the way the kernel would, for one request (a tiny interpreter of
    /// the few instructions [`program`] emits).
    fn run(p: &[u64], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (code, dst, src) = ((i & 0xff) as u8, ((i >> 8) & 0xf) as usize, ((i >> 12) & 0xf) as usize);
            let (off, imm) = ((i >> 16) as u16 as i16, (i >> 32) as u32);
            pc += 1;
            match code {
                LDX_W => r[dst] = u64::from(ctx[off as usize / 4]),
                MOV32_X => r[dst] = r[src] & 0xffff_ffff,
                AND32_K => r[dst] &= u64::from(imm),
                RSH32_K => r[dst] >>= imm,
                JNE_K if r[dst] != u64::from(imm) => pc = (pc as isize + off as isize) as usize,
                JNE_K => {}
                MOV64_K => r[dst] = u64::from(imm),
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn deny_all_then(extra: &[Rule]) -> Vec<u64> {
        let mut rules = vec![Rule { allow: false, typ: 0, major: None, minor: None, access: 7 }];
        rules.extend_from_slice(extra);
        rules.extend(defaults());
        let (default, list) = effective(&rules);
        program(default, &list)
    }

    #[test]
    fn the_default_rules_allow_the_standard_nodes_and_mknod_only() {
        let p = deny_all_then(&[]);
        let (chr, blk) = (2, 1);
        let (m, r, w) = (1, 2, 4);
        assert_eq!(run(&p, chr, r | w, 1, 3), 1, "/dev/null rw");
        assert_eq!(run(&p, chr, r, 1, 9), 1, "/dev/urandom");
        assert_eq!(run(&p, chr, r | w, 136, 4), 1, "a pty");
        assert_eq!(run(&p, chr, m, 10, 229), 1, "mknod of anything");
        assert_eq!(run(&p, blk, m, 254, 0), 1, "mknod of a disk");
        assert_eq!(run(&p, chr, r | w, 10, 229), 0, "/dev/fuse opened");
        assert_eq!(run(&p, blk, r, 254, 0), 0, "a disk read");
        assert_eq!(run(&p, blk, r, 1, 3), 0, "a block device numbered as /dev/null");
        assert_eq!(run(&p, chr, r, 1, 1), 0, "/dev/mem");
    }

    #[test]
    fn rules_grant_exactly_their_access_and_the_last_match_decides() {
        let fuse_r = Rule { allow: true, typ: 2, major: Some(10), minor: Some(229), access: 2 };
        let p = deny_all_then(&[fuse_r]);
        assert_eq!(run(&p, 2, 2, 10, 229), 1);
        assert_eq!(run(&p, 2, 2 | 4, 10, 229), 0, "write was not granted");
        let any_minor = Rule { allow: true, typ: 2, major: Some(10), minor: None, access: 7 };
        let no_fuse = Rule { allow: false, typ: 2, major: Some(10), minor: Some(229), access: 7 };
        let p = deny_all_then(&[any_minor, no_fuse]);
        assert_eq!(run(&p, 2, 6, 10, 1), 1);
        assert_eq!(run(&p, 2, 6, 10, 229), 0);
        // Privileged: allow everything.
        let (default, list) = effective(&[Rule { allow: true, typ: 0, major: None, minor: None, access: 7 }]);
        assert!(default && list.is_empty());
        assert_eq!(run(&program(default, &list), 1, 6, 8, 0), 1);
    }

    #[test]
    fn spec_rules_resolve() {
        let d: LinuxDeviceCgroup = serde_json::from_value(
            serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}),
        )
        .unwrap();
        assert_eq!(rule_of(&d).unwrap(), Rule { allow: true, typ: 2, major: Some(1), minor: Some(3), access: 2 });
        let all: LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({"allow": false, "access": "rwm"})).unwrap();
        assert_eq!(rule_of(&all).unwrap(), Rule { allow: false, typ: 0, major: None, minor: None, access: 7 });
    }
}
