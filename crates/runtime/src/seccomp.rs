//! Precompiled seccomp filters: a container's `linux.seccomp` profile compiled to its BPF
//! program once per distinct profile, kept in a cache, and loaded with seccomp(2) by the
//! shim's own libcontainer [`Executor`] in the container's init (while it waits for its
//! start, see [`SeccompExecutor::for_init`]) and in every exec and health probe (just
//! before execve).
//!
//! libcontainer 0.7 compiles the profile with libseccomp inside the init of every container
//! it creates: about 9 ms of each start for Docker's default profile, the same work every
//! time. Here the program libseccomp would generate is exported once ([`Program::for_profile`]),
//! written to `<exec root>/seccomp/<key>.bpf` (the key hashes the profile, the architecture
//! and the libseccomp version; the exec root is a tmpfs, so a new kernel starts afresh), and
//! every later start reads a few kilobytes instead. Two shims that miss at once both
//! compile and rename the same bytes into place, so a race costs time, never correctness.
//!
//! The shim hands libcontainer a spec without `linux.seccomp` ([`Plan`]) and loads the
//! program itself in [`SeccompExecutor`], so the container ends exactly as libcontainer
//! would leave it: the same filter (mode 2, one filter), the same flags (TSYNC, LOG,
//! SPEC_ALLOW), the same no_new_privileges and capabilities. Without no_new_privileges the
//! kernel loads a filter only for a task with CAP_SYS_ADMIN, so a container that lacks it
//! holds it in its permitted set until the load and drops it before execve (libcontainer
//! instead loads before it drops capabilities; the result is the same).
//! Profiles with SCMP_ACT_NOTIFY (whose listener fd libcontainer passes to its main
//! process) keep libcontainer's own path.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use sha2::Digest as _;

use crate::{Error, chain};

/// Bumped when the cache's file format or the compilation below changes meaning.
const FORMAT: &str = "berth-seccomp-bpf-2";
/// One classic BPF instruction (`struct sock_filter`): u16 code, u8 jt, u8 jf, u32 k.
const INSN: usize = 8;
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 4;

/// A compiled filter: its BPF instructions and the seccomp(2) flags libseccomp would pass
/// when loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Vec<u8>,
    flags: libc::c_uint,
}

/// Where the compiled programs of the containers under `state_root` (libcontainer's state
/// root, `<exec root>/runtime`) are cached: its sibling `seccomp/`.
pub fn cache_dir(state_root: &Path) -> PathBuf {
    match state_root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("seccomp"),
        _ => state_root.join(".seccomp"),
    }
}

/// Whether the profile can be precompiled: everything but SCMP_ACT_NOTIFY (whose listener
/// libcontainer hands to its main process) and the flag that only concerns a listener.
pub fn precompilable(sc: &LinuxSeccomp) -> bool {
    let notify = sc.default_action() == LinuxSeccompAction::ScmpActNotify
        || sc.syscalls().iter().flatten().any(|s| s.action() == LinuxSeccompAction::ScmpActNotify);
    let waitkill = sc.flags().iter().flatten().any(|f| *f == LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv);
    !notify && !waitkill
}

impl Program {
    /// The program for `sc`: read from the cache under `dir`, or compiled and added to it.
    /// A cache that cannot be written only costs the next start a compilation.
    pub fn for_profile(sc: &LinuxSeccomp, dir: &Path) -> Result<Program, Error> {
        let flags = load_flags(sc);
        let path = dir.join(format!("{}.bpf", cache_key(sc)?));
        if let Ok(insns) = std::fs::read(&path)
            && valid_length(insns.len())
        {
            return Ok(Program { insns, flags });
        }
        let insns = compile(sc)?;
        if let Err(e) = store(dir, &path, &insns) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache a compiled seccomp filter");
        }
        Ok(Program { insns, flags })
    }

    /// Installs the filter on the calling thread (every thread with TSYNC). The caller must
    /// hold CAP_SYS_ADMIN in its effective set or have no_new_privileges set.
    pub fn load(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: (self.insns.len() / INSN) as libc::c_ushort,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(2) with SECCOMP_SET_MODE_FILTER reads `prog`, which lives until
        // the call returns, and `prog.len` instructions of 8 bytes from `prog.filter`, which
        // points at `self.insns` (its length is a multiple of 8, checked when it was read or
        // compiled). The kernel copies the program; nothing is kept after the call. The
        // kernel reads the instructions without alignment requirements of its own: it
        // copies them with copy_from_user.
        let rc = unsafe {
            libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, self.flags, &prog as *const libc::sock_fprog)
        };
        match rc {
            0 => Ok(()),
            // With TSYNC, a positive result is the id of a thread that could not be synced.
            r if r > 0 => Err(std::io::Error::from_raw_os_error(libc::ESRCH)),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
}

fn valid_length(n: usize) -> bool {
    n > 0 && n % INSN == 0 && n / INSN <= MAX_INSNS
}

/// The flags libseccomp's load passes to seccomp(2) for this profile (its `sys_filter_load`).
fn load_flags(sc: &LinuxSeccomp) -> libc::c_uint {
    let mut flags = 0;
    for f in sc.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    flags
}

/// sha256 of what decides the program: the profile as JSON, the architecture we run on and
/// the libseccomp that compiles it.
fn cache_key(sc: &LinuxSeccomp) -> Result<String, Error> {
    let json = serde_json::to_vec(sc)
        .map_err(|source| Error::Json { context: "failed to encode the seccomp profile".into(), source })?;
    let v =
        libseccomp::ScmpVersion::current().map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro)).unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(format!("{FORMAT}\0{}\0{v}\0", std::env::consts::ARCH).as_bytes());
    h.update(&json);
    Ok(berth_base::Digest::from_hasher(h).hex().to_owned())
}

fn store(dir: &Path, path: &Path, insns: &[u8]) -> std::io::Result<()> {
    berth_base::fsutil::create_dir_mode(dir, berth_base::fsutil::PRIVATE_DIR)?;
    // Regenerable, on a tmpfs: an atomic rename is all it needs, no fsync.
    berth_base::fsutil::replace_file_mode(path, insns, berth_base::fsutil::PRIVATE_FILE)
}

/// Builds the filter exactly as libcontainer 0.7's `seccomp::initialize_seccomp` does (same
/// actions, architectures, attributes and rules, in the same order) and exports the program
/// libseccomp would load. Written out here because libcontainer keeps its translation
/// private and only ever loads the result.
fn compile(sc: &LinuxSeccomp) -> Result<Vec<u8>, Error> {
    compile_at(sc, TREE)
}

/// libseccomp's optimisation level for a binary tree over the syscall numbers.
const TREE: u32 = 2;

/// [`compile`] at libseccomp optimisation level `level` (1: libcontainer's linear list).
fn compile_at(sc: &LinuxSeccomp, level: u32) -> Result<Vec<u8>, Error> {
    let err = |what: &str, e: &dyn std::error::Error| Error::Runtime {
        context: format!("failed to compile the seccomp profile: {what}"),
        message: chain(e),
    };
    let default_action = action(sc.default_action(), sc.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(|e| err("new filter", &e))?;
    for f in sc.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(|e| err("flag", &e))?;
    }
    for a in sc.architectures().iter().flatten() {
        ctx.add_arch(arch(*a)).map_err(|e| err("architecture", &e))?;
    }
    ctx.set_ctl_nnp(false).map_err(|e| err("SCMP_FLTATR_CTL_NNP", &e))?;
    // A binary tree over the syscall numbers instead of libcontainer's (and runc's) linear
    // list: the same decision for every call, reached in a few comparisons instead of up to
    // some hundreds. The kernel runs the filter on every system call of the container, and
    // once per syscall number when it loads it (to build its cache of always-allowed
    // calls), which made the load of Docker's default profile the init's costliest step.
    // A libseccomp older than 2.5 has no such attribute: it compiles the linear list, which
    // decides every call the same way, so the container still starts.
    if let Err(e) = ctx.set_ctl_optimize(level) {
        tracing::debug!(error = %chain(&e), "libseccomp cannot build a binary tree; the filter stays a list");
    }
    for rule in sc.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default_action {
            continue;
        }
        for name in rule.names() {
            // A name this libseccomp does not know is skipped, as libcontainer does.
            let Ok(nr) = ScmpSyscall::from_name(name) else { continue };
            match rule.args() {
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value_two()), a.value()))
                        .collect();
                    let mut seen = std::collections::HashSet::new();
                    if args.iter().all(|a| seen.insert(a.index())) {
                        ctx.add_rule_conditional(act, nr, &cmps).map_err(|e| err(name, &e))?;
                    } else {
                        // One comparison per argument per rule: each becomes a rule (runc's way).
                        for c in &cmps {
                            ctx.add_rule_conditional(act, nr, std::slice::from_ref(c)).map_err(|e| err(name, &e))?;
                        }
                    }
                }
                None => {
                    ctx.add_rule(act, nr).map_err(|e| err(name, &e))?;
                }
            }
        }
    }
    let memfd = rustix::fs::memfd_create("seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::io("memfd_create failed", Path::new("seccomp"), e.into()))?;
    ctx.export_bpf(&memfd).map_err(|e| err("export", &e))?;
    let mut f = std::fs::File::from(memfd);
    let mut insns = Vec::new();
    f.rewind()
        .and_then(|()| f.read_to_end(&mut insns))
        .map_err(|e| Error::io("failed to read the exported filter", Path::new("seccomp"), e))?;
    if !valid_length(insns.len()) {
        return Err(Error::Runtime {
            context: "failed to compile the seccomp profile".into(),
            message: format!("libseccomp exported {} bytes", insns.len()),
        });
    }
    Ok(insns)
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, Error> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.try_into().map_err(|_| Error::Runtime {
            context: "failed to compile the seccomp profile".into(),
            message: format!("SCMP_ACT_TRACE value {errno} out of range"),
        })?),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
    })
}

fn op(o: LinuxSeccompOperator, datum_b: Option<u64>) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(datum_b.unwrap_or(0)),
    }
}

/// How a filter gets into a process: precompiled and loaded by us, or compiled and loaded
/// by libcontainer's code (a notify profile).
#[derive(Clone)]
pub(crate) enum Filter {
    Program(Program),
    Profile(LinuxSeccomp),
}

/// Whether a process with these capabilities and no_new_privileges must borrow
/// CAP_SYS_ADMIN (in its permitted set) to load a filter after libcontainer's capability
/// drop: only without no_new_privileges and when it would not hold it anyway.
pub(crate) fn must_borrow_sys_admin(spec: &Spec) -> bool {
    let proc_ = spec.process().as_ref();
    if proc_.and_then(|p| p.no_new_privileges()) == Some(true) {
        return false;
    }
    // No capabilities section: libcontainer keeps every capability the shim has.
    let Some(caps) = proc_.and_then(|p| p.capabilities().as_ref()) else { return false };
    let has =
        |set: &Option<oci_spec::runtime::Capabilities>| set.as_ref().is_some_and(|c| c.contains(&Capability::SysAdmin));
    !(has(caps.effective()) && has(caps.permitted()))
}

/// libcontainer's default executor (execvp of the process's argv), preceded by loading the
/// container's seccomp filter in the new process itself, after every other step of its
/// set-up (capabilities dropped, user set, cwd entered): for an init while it waits for
/// its start when the profile allows ([`SeccompExecutor::for_init`]), else just before
/// execve. Used for the container's init and for every exec and health probe.
/// libcontainer calls the executor after the process has left the shim's descriptors
/// behind, so the program travels in the executor's memory.
///
/// With `borrowed_sys_admin`, CAP_SYS_ADMIN sits in the permitted set (put there by
/// whoever wrote the process's capabilities): it is raised into the effective set for the
/// load, then removed from both, so execve starts from exactly the container's sets.
#[derive(Clone)]
pub(crate) struct SeccompExecutor {
    pub(crate) filter: Filter,
    pub(crate) borrowed_sys_admin: bool,
    /// Whether the filter may be loaded before the start signal ([`Self::load_early`]).
    early: bool,
    /// The outcome of the early load, awaited before execve.
    loading: Arc<Mutex<Option<Receiver<std::io::Result<()>>>>>,
    /// A container's init: a failed execve is said on its stderr
    /// ([`crate::command::exec_command`]).
    init: bool,
}

impl SeccompExecutor {
    /// The executor for a process whose filter is loaded just before execve.
    pub(crate) fn new(filter: Filter, borrowed_sys_admin: bool) -> SeccompExecutor {
        SeccompExecutor { filter, borrowed_sys_admin, early: false, loading: Arc::default(), init: false }
    }

    /// The executor for a container's init: with a program whose profile lets the init's
    /// last steps through ([`allows_start_window`]), the filter is loaded while the init
    /// waits for its start, on a thread of its own, as libcontainer and runc load theirs
    /// before that wait. Loading (the kernel's check and JIT of the program) takes about
    /// 0.7 ms, which then overlaps the shim's and the daemon's work between create and
    /// start instead of delaying the command after the start signal.
    ///
    /// Not when `no_thread` ([`may_add_a_thread`]): with `--init` the loading thread would
    /// take pid 2 in the container's namespace, and the command that berth's init starts
    /// must be pid 2, as crun gives it (runc's own threads push it to 7).
    pub(crate) fn for_init(
        program: Program,
        borrowed_sys_admin: bool,
        sc: &LinuxSeccomp,
        no_thread: bool,
    ) -> SeccompExecutor {
        let early = !no_thread && allows_start_window(sc);
        SeccompExecutor {
            filter: Filter::Program(program),
            borrowed_sys_admin,
            early,
            loading: Arc::default(),
            init: true,
        }
    }

    /// Starts the early load: a thread raises CAP_SYS_ADMIN in its own effective set when
    /// borrowed, installs the program with TSYNC, so the init's (only other) thread gets it
    /// too, sends the outcome and ends: once the filter is in, it makes no system call but
    /// a futex wake and exit. Nothing is started when the thread cannot be (the load then
    /// happens at exec).
    fn load_early(&self) {
        let Filter::Program(p) = &self.filter else { return };
        let mut p = p.clone();
        p.flags |= SECCOMP_FILTER_FLAG_TSYNC;
        let borrowed = self.borrowed_sys_admin;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let load = move || -> std::io::Result<()> {
            use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
            if borrowed {
                let mut sets = capabilities(None)?;
                sets.effective |= CapabilitySet::SYS_ADMIN;
                set_capabilities(None, sets)?;
            }
            p.load()
        };
        let spawned = std::thread::Builder::new().name("seccomp".into()).spawn(move || {
            let _ = tx.send(load());
            // The thread ends with a bare exit(2): the filter is in, and the cleanup of a
            // normal thread end (its signal stack, its stack's pages) would be system calls
            // the profile must allow. A thread still alive at execve costs more: execve
            // kills it and waits for it, about a millisecond on the command's path. What
            // the thread leaves (its stack) goes with the execve.
            // SAFETY: exit(2) ends only this thread; nothing in the process waits for it
            // or uses its stack (the result was sent above, by value).
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("exit(2) returned")
        });
        if spawned.is_ok() {
            *self.loading.lock().unwrap_or_else(|e| e.into_inner()) = Some(rx);
        }
    }

    /// Waits for the early load, if one was started: Some(its outcome), None when the
    /// filter is still to be loaded.
    fn finish_early(&self) -> Option<Result<(), ExecutorError>> {
        let rx = self.loading.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let fail = |e: &dyn std::fmt::Display| {
            ExecutorError::Other(format!("seccomp: failed to load the container's filter: {e}"))
        };
        Some(match rx.recv() {
            Ok(Ok(())) => self.drop_borrowed(),
            Ok(Err(e)) => Err(fail(&e)),
            Err(_) => Err(fail(&"the loading thread ended")),
        })
    }

    /// Removes the borrowed CAP_SYS_ADMIN from the calling thread's sets.
    fn drop_borrowed(&self) -> Result<(), ExecutorError> {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        if !self.borrowed_sys_admin {
            return Ok(());
        }
        let fail = |what: &str, e: &dyn std::fmt::Display| ExecutorError::Other(format!("seccomp: {what}: {e}"));
        let mut sets = capabilities(None).map_err(|e| fail("failed to read capabilities", &e))?;
        sets.effective.remove(CapabilitySet::SYS_ADMIN);
        sets.permitted.remove(CapabilitySet::SYS_ADMIN);
        set_capabilities(None, sets).map_err(|e| fail("failed to drop CAP_SYS_ADMIN", &e))
    }

    fn load(&self) -> Result<(), ExecutorError> {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let fail = |what: &str, e: &dyn std::fmt::Display| ExecutorError::Other(format!("seccomp: {what}: {e}"));
        let mut sets = capabilities(None).map_err(|e| fail("failed to read capabilities", &e))?;
        if self.borrowed_sys_admin {
            sets.effective |= CapabilitySet::SYS_ADMIN;
            set_capabilities(None, sets).map_err(|e| fail("failed to raise CAP_SYS_ADMIN", &e))?;
        }
        match &self.filter {
            Filter::Program(p) => p.load().map_err(|e| fail("failed to load the container's filter", &e))?,
            Filter::Profile(sc) => match libcontainer::seccomp::initialize_seccomp(sc) {
                Ok(None) => {}
                Ok(Some(fd)) => {
                    // SAFETY: the fd was just returned by seccomp(2) and nothing else owns it.
                    drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
                    return Err(ExecutorError::Other("seccomp: notify actions are not supported in exec".into()));
                }
                Err(e) => return Err(fail("failed to load the container's filter", &chain(&e))),
            },
        }
        self.drop_borrowed()
    }
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if !self.init {
            crate::command::apply_console_size(spec);
        }
        match self.finish_early() {
            Some(done) => done?,
            None => self.load()?,
        }
        match self.init {
            true => crate::command::exec_command(spec),
            false => DefaultExecutor {}.exec(spec),
        }
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    /// libcontainer's own step (the process's environment becomes the spec's), then the
    /// early load when allowed. libcontainer calls this as the init's last step before it
    /// reports ready and waits for the start; the environment is set before the thread
    /// exists, as setenv wants.
    fn setup_envs(&self, envs: HashMap<String, String>) -> Result<(), ExecutorSetEnvsError> {
        for (key, _) in std::env::vars_os() {
            // SAFETY: the init is single-threaded here (the loading thread starts below).
            unsafe { std::env::remove_var(key) };
        }
        for (key, value) in &envs {
            // SAFETY: as above.
            unsafe { std::env::set_var(key, value) };
        }
        if self.early {
            self.load_early();
        }
        Ok(())
    }
}

/// Whether the init may start the thread of an early load: not when the container's
/// process is berth's `--init` (whose command must get pid 2, see
/// [`SeccompExecutor::for_init`]), nor under a pids limit, where the thread, though gone
/// before the command runs, could still be counted when the command's first fork is.
fn may_add_a_thread(spec: &Spec) -> bool {
    let args = spec.process().as_ref().and_then(|p| p.args().as_ref());
    let docker_init = args.and_then(|a| a.first()).is_some_and(|a| a == crate::spec::INIT_PATH);
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let pids_limited = resources.and_then(|r| r.pids().as_ref()).is_some_and(|p| p.limit() > 0);
    !docker_init && !pids_limited
}

/// The system calls an init makes between an early load of its filter and its execve:
/// libcontainer's ready message and close, the wait for the start signal (accept, read,
/// close), the hand-over from the loading thread (futex) and its end (exit), the capability
/// drop, the exec.
/// A profile that lets each of them through unconditionally may be loaded early; any other
/// is loaded just before execve.
const START_WINDOW: &[&str] = &[
    "sendmsg", "sendto", "write", "close", "accept4", "recvfrom", "recvmsg", "read", "futex", "exit", "capget",
    "capset", "execve",
];

/// Whether every call of [`START_WINDOW`] is allowed by `sc` on this architecture without
/// a condition: by the default action and no rule of its own, or by an unconditional
/// allow rule and no other rule naming it.
pub(crate) fn allows_start_window(sc: &LinuxSeccomp) -> bool {
    let allow = |a: LinuxSeccompAction| matches!(a, LinuxSeccompAction::ScmpActAllow);
    let rules = sc.syscalls().as_deref().unwrap_or_default();
    START_WINDOW.iter().all(|call| {
        let naming: Vec<_> = rules.iter().filter(|r| r.names().iter().any(|n| n == call)).collect();
        if naming.is_empty() {
            return allow(sc.default_action());
        }
        naming.iter().all(|r| allow(r.action()) && r.args().as_ref().is_none_or(|a| a.is_empty()))
    })
}

/// What the shim does with a container's filter: `None` when the spec has none or it is a
/// notify profile (libcontainer loads it); else the bundle libcontainer must be given (the
/// spec without `linux.seccomp`, CAP_SYS_ADMIN borrowed into the permitted set when needed)
/// and the executor that loads the program.
pub(crate) struct Plan {
    /// A bundle directory whose config.json is the spec libcontainer sees.
    pub(crate) bundle: PathBuf,
    pub(crate) executor: SeccompExecutor,
}

impl Plan {
    /// Prepares the precompiled path for the container `id` whose bundle is `bundle` and
    /// whose spec (read from it) is `spec`; its runtime's state is kept under `state_root`.
    pub(crate) fn prepare(spec: &Spec, bundle: &Path, state_root: &Path, id: &str) -> Result<Option<Plan>, Error> {
        let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else { return Ok(None) };
        if !precompilable(sc) {
            return Ok(None);
        }
        let program = Program::for_profile(sc, &cache_dir(state_root))?;
        let borrowed_sys_admin = must_borrow_sys_admin(spec);
        let mut seen = spec.clone();
        if let Some(l) = seen.linux_mut() {
            l.set_seccomp(None);
        }
        if borrowed_sys_admin
            && let Some(p) = seen.process_mut().as_mut()
            && let Some(mut caps) = p.capabilities().clone()
        {
            let mut permitted = caps.permitted().clone().unwrap_or_default();
            permitted.insert(Capability::SysAdmin);
            caps.set_permitted(Some(permitted));
            p.set_capabilities(Some(caps));
        }
        Ok(Some(Plan {
            bundle: runtime_bundle(&seen, bundle, &crate::state::bundle_dir(state_root, id))?,
            executor: SeccompExecutor::for_init(program, borrowed_sys_admin, sc, !may_add_a_thread(spec)),
        }))
    }
}

/// Writes `seen`, the spec libcontainer is to see when the shim changes it (a filter it
/// loads itself, a cgroup filesystem it mounts itself), as the bundle in `dir` (see
/// [`crate::state::bundle_dir`]), with the root's path, relative to the container's
/// `bundle`, made absolute; returns `dir`.
pub(crate) fn runtime_bundle(seen: &Spec, bundle: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let mut seen = seen.clone();
    if let Some(root) = seen.root_mut()
        && root.path().is_relative()
    {
        let abs = bundle.join(root.path());
        root.set_path(abs);
    }
    for d in dir.parent().into_iter().chain([dir]) {
        berth_base::fsutil::create_dir_mode(d, berth_base::fsutil::PRIVATE_DIR)
            .map_err(|e| Error::io("failed to create", d, e))?;
    }
    let json = serde_json::to_vec(&seen)
        .map_err(|source| Error::Json { context: "failed to encode the runtime's spec".into(), source })?;
    let path = dir.join("config.json");
    berth_base::fsutil::replace_file_mode(&path, &json, berth_base::fsutil::PRIVATE_FILE)
        .map_err(|e| Error::io("failed to write", &path, e))?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn spec(nnp: bool, caps: &[&str], seccomp: serde_json::Value) -> Spec {
        let mut v = json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {
                "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            },
            "linux": {"seccomp": seccomp}
        });
        if nnp {
            v["process"]["noNewPrivileges"] = json!(true);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn no_loading_thread_with_init_or_a_pids_limit() {
        let plain = spec(false, &[], json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        assert!(may_add_a_thread(&plain));
        let mut v = serde_json::to_value(&plain).unwrap();
        v["process"]["args"] = json!([crate::spec::INIT_PATH, "--", "sh"]);
        assert!(!may_add_a_thread(&serde_json::from_value(v).unwrap()));
        let mut v = serde_json::to_value(&plain).unwrap();
        v["linux"]["resources"] = json!({"pids": {"limit": 100}});
        assert!(!may_add_a_thread(&serde_json::from_value(v).unwrap()));
    }

    #[test]
    fn a_profile_that_stops_the_start_window_is_loaded_late() {
        let window = |v: serde_json::Value| allows_start_window(&serde_json::from_value(v).unwrap());
        assert!(window(json!({"defaultAction": "SCMP_ACT_ALLOW"})));
        assert!(window(deny_mkdir()));
        assert!(!window(json!({"defaultAction": "SCMP_ACT_ERRNO"})), "nothing allowed");
        assert!(!window(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["accept4"], "action": "SCMP_ACT_ERRNO"}]})));
        // Allowed only with a condition, or allowed and also denied by another rule.
        assert!(!window(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]})));
        assert!(!window(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["execve"], "action": "SCMP_ACT_KILL"}]})));
        let all: Vec<&str> = START_WINDOW.to_vec();
        assert!(window(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": all, "action": "SCMP_ACT_ALLOW"}]})));
    }

    fn deny_mkdir() -> serde_json::Value {
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}
            ]
        })
    }

    #[test]
    fn a_profile_is_compiled_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("seccomp");
        let sc: LinuxSeccomp = serde_json::from_value(deny_mkdir()).unwrap();
        let a = Program::for_profile(&sc, &cache).unwrap();
        assert_eq!(a.flags, SECCOMP_FILTER_FLAG_LOG);
        assert!(valid_length(a.insns.len()));
        let files: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(&files[0]).unwrap(), a.insns);
        // A hit reads the same program; a different profile gets a file of its own.
        assert_eq!(Program::for_profile(&sc, &cache).unwrap(), a);
        let other: LinuxSeccomp = serde_json::from_value(json!({"defaultAction": "SCMP_ACT_ERRNO"})).unwrap();
        let b = Program::for_profile(&other, &cache).unwrap();
        assert_ne!(a.insns, b.insns);
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
        // A damaged file is recompiled and replaced.
        std::fs::write(&files[0], b"1234567").unwrap();
        assert_eq!(Program::for_profile(&sc, &cache).unwrap(), a);
        assert_eq!(std::fs::read(&files[0]).unwrap(), a.insns);
    }

    /// Docker's default profile, as the spec of a container with default capabilities has it.
    fn docker_default() -> LinuxSeccomp {
        let o = crate::spec::SpecOptions {
            id: "0123456789abcdef".into(),
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            seccomp: true,
            ..Default::default()
        };
        let s = crate::spec::generate(&o).unwrap();
        s.linux().as_ref().and_then(|l| l.seccomp().clone()).unwrap()
    }

    #[test]
    fn the_default_profile_compiles_within_the_kernels_limit() {
        let sc = docker_default();
        assert!(precompilable(&sc));
        let dir = tempfile::tempdir().unwrap();
        let p = Program::for_profile(&sc, dir.path()).unwrap();
        assert!(p.insns.len() / INSN > 100, "{} instructions", p.insns.len() / INSN);
    }

    /// Runs a classic BPF seccomp program on one `struct seccomp_data` (nr, arch, the
    /// instruction pointer, six arguments) and returns the action it chose. Only what
    /// libseccomp emits is needed, but every cBPF opcode class is covered.
    fn run_bpf(insns: &[u8], data: &[u8; 64]) -> u32 {
        let word = |k: u32| u32::from_le_bytes(data[k as usize..k as usize + 4].try_into().unwrap());
        let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        loop {
            let i = &insns[pc * INSN..pc * INSN + INSN];
            let (code, jt, jf) = (u16::from_le_bytes([i[0], i[1]]), i[2] as usize, i[3] as usize);
            let k = u32::from_le_bytes([i[4], i[5], i[6], i[7]]);
            pc += 1;
            let src = if code & 0x08 != 0 { x } else { k };
            match code & 0x07 {
                0x00 => match code & 0xe0 {
                    0x00 => a = k,
                    0x20 => a = word(k),
                    0x60 => a = mem[k as usize],
                    0x80 => a = 64,
                    m => panic!("ld mode {m:#x}"),
                },
                0x01 => match code & 0xe0 {
                    0x00 => x = k,
                    0x60 => x = mem[k as usize],
                    0x80 => x = 64,
                    m => panic!("ldx mode {m:#x}"),
                },
                0x02 => mem[k as usize] = a,
                0x03 => mem[k as usize] = x,
                0x04 => {
                    a = match code & 0xf0 {
                        0x00 => a.wrapping_add(src),
                        0x10 => a.wrapping_sub(src),
                        0x20 => a.wrapping_mul(src),
                        0x30 => a / src,
                        0x40 => a | src,
                        0x50 => a & src,
                        0x60 => a.wrapping_shl(src),
                        0x70 => a.wrapping_shr(src),
                        0x80 => a.wrapping_neg(),
                        0x90 => a % src,
                        0xa0 => a ^ src,
                        op => panic!("alu op {op:#x}"),
                    }
                }
                0x05 => {
                    let taken = match code & 0xf0 {
                        0x00 => {
                            pc += k as usize;
                            continue;
                        }
                        0x10 => a == src,
                        0x20 => a > src,
                        0x30 => a >= src,
                        0x40 => a & src != 0,
                        op => panic!("jmp op {op:#x}"),
                    };
                    pc += if taken { jt } else { jf };
                }
                0x06 => return if code & 0x18 == 0x10 { a } else { k },
                _ => {
                    if code & 0xf8 == 0x80 {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
    }

    #[test]
    fn the_tree_decides_every_call_as_libcontainers_list() {
        let sc = docker_default();
        let list = compile_at(&sc, 1).unwrap();
        let tree = compile_at(&sc, TREE).unwrap();
        assert_ne!(list, tree, "the optimisation changed nothing");
        // For each argument the profile compares, every value it names and their
        // neighbours, beside 0 and all ones (an argument it never compares decides nothing).
        let mut probes: Vec<(usize, u64)> = vec![(0, 0), (0, u64::MAX)];
        for rule in sc.syscalls().iter().flatten() {
            for arg in rule.args().iter().flatten() {
                let v = arg.value();
                for probe in [v, v.wrapping_add(1), v.wrapping_sub(1), v | 1 << 40, v | 1 << 63] {
                    probes.push((arg.index(), probe));
                }
                probes.extend(arg.value_two().map(|v2| (arg.index(), v2)));
            }
        }
        probes.sort_unstable();
        probes.dedup();
        let (x86_64, i386, x32_bit) = (0xc000_003e_u32, 0x4000_0003_u32, 0x4000_0000_u32);
        let call = |arch: u32, nr: u32, slot: usize, v: u64| {
            let mut data = [0u8; 64];
            data[0..4].copy_from_slice(&nr.to_le_bytes());
            data[4..8].copy_from_slice(&arch.to_le_bytes());
            data[16 + 8 * slot..24 + 8 * slot].copy_from_slice(&v.to_le_bytes());
            data
        };
        let mut checked = 0;
        for arch in [x86_64, i386, 0x1234_5678] {
            for nr in (0..600u32).chain((0..600).map(|n| n | x32_bit)) {
                for &(slot, v) in &probes {
                    let data = call(arch, nr, slot, v);
                    assert_eq!(
                        run_bpf(&list, &data),
                        run_bpf(&tree, &data),
                        "arch {arch:#x} nr {nr:#x} arg{slot} = {v:#x}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
        // The interpreter itself decides as the kernel would: read is allowed, mount gets
        // EPERM (Docker's default action), personality only for the personas Docker lists.
        const ALLOW: u32 = 0x7fff_0000;
        const EPERM: u32 = 0x0005_0001;
        assert_eq!(run_bpf(&tree, &call(x86_64, 0, 0, 0)), ALLOW);
        assert_eq!(run_bpf(&tree, &call(x86_64, 165, 0, 0)), EPERM);
        assert_eq!(run_bpf(&tree, &call(x86_64, 135, 0, 0x8)), ALLOW);
        assert_eq!(run_bpf(&tree, &call(x86_64, 135, 0, 0x1234)), EPERM);
    }

    #[test]
    fn notify_profiles_stay_with_libcontainer() {
        let mut v = deny_mkdir();
        v["syscalls"][0]["action"] = json!("SCMP_ACT_NOTIFY");
        let notify: LinuxSeccomp = serde_json::from_value(v).unwrap();
        assert!(!precompilable(&notify));
        let dir = tempfile::tempdir().unwrap();
        let s = spec(false, &["CAP_CHOWN"], serde_json::to_value(&notify).unwrap());
        let state_root = dir.path().join("runtime");
        assert!(Plan::prepare(&s, dir.path(), &state_root, "c1").unwrap().is_none());
        assert!(!crate::state::bundle_dir(&state_root, "c1").exists());
    }

    #[test]
    fn libcontainer_sees_no_filter_and_a_borrowed_sys_admin_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        let state_root = dir.path().join("runtime");
        let s = spec(false, &["CAP_CHOWN"], deny_mkdir());
        let plan = Plan::prepare(&s, &bundle, &state_root, "c1").unwrap().unwrap();
        assert_eq!(plan.bundle, crate::state::bundle_dir(&state_root, "c1"));
        assert!(plan.bundle.starts_with(&state_root), "the runtime's bundle is kept with its state");
        assert_eq!(std::fs::metadata(&plan.bundle).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(plan.bundle.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(plan.executor.borrowed_sys_admin);
        assert!(dir.path().join("seccomp").is_dir(), "the cache sits beside the state root");
        let seen = Spec::load(plan.bundle.join("config.json")).unwrap();
        assert!(seen.linux().as_ref().unwrap().seccomp().is_none());
        assert_eq!(seen.root().as_ref().unwrap().path(), &bundle.join("rootfs"));
        let caps = seen.process().as_ref().unwrap().capabilities().as_ref().unwrap();
        assert!(caps.permitted().as_ref().unwrap().contains(&Capability::SysAdmin));
        assert!(!caps.effective().as_ref().unwrap().contains(&Capability::SysAdmin));
        assert!(!caps.bounding().as_ref().unwrap().contains(&Capability::SysAdmin));

        for s in [spec(true, &["CAP_CHOWN"], deny_mkdir()), spec(false, &["CAP_SYS_ADMIN"], deny_mkdir())] {
            let plan = Plan::prepare(&s, &bundle, &state_root, "c1").unwrap().unwrap();
            assert!(!plan.executor.borrowed_sys_admin);
            let seen = Spec::load(plan.bundle.join("config.json")).unwrap();
            assert_eq!(seen.process(), s.process());
        }
        let mut none = spec(false, &[], json!(null));
        none.linux_mut().as_mut().unwrap().set_seccomp(None);
        assert!(Plan::prepare(&none, &bundle, &state_root, "c1").unwrap().is_none());
    }
}
