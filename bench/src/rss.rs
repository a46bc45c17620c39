//! `rss-exec`: runs a program and records the peak RSS of that process
//! alone, not of the children it waits for.
//!
//! `/usr/bin/time -f %M` and `wait4`'s `ru_maxrss` report the maximum over
//! the process *and* every descendant it has waited for (Linux fills
//! `wait4`'s rusage as `RUSAGE_BOTH`), so a charm that runs hook tools or
//! `etcdutl` would be charged for them. Here the child is traced with
//! `PTRACE_O_TRACEEXIT`: the kernel stops it at the start of its exit,
//! while its memory map still exists, and its `VmHWM` (the high-water mark
//! of its resident set) is read from `/proc/PID/status` then. Only the
//! process itself is traced (not its threads' clones, not its children),
//! and a signal it receives is passed on unchanged.
//!
//! Where ptrace is not allowed, `VmHWM` is polled every 5 ms instead (a
//! peak reached in the last few ms before exit could be missed); the
//! `method` field says which was used.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use serde_json::json;

/// `VmHWM` of `pid`, in KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn ptrace(req: libc::c_uint, pid: libc::pid_t, data: usize) -> io::Result<()> {
    // SAFETY: PTRACE_SETOPTIONS and PTRACE_CONT take no pointers; `data`
    // is an integer (options or a signal number).
    let r = unsafe {
        libc::ptrace(
            req,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

struct Waited {
    status: libc::c_int,
    rusage: libc::rusage,
}

fn wait4(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<Waited>> {
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut rusage) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok((r != 0).then_some(Waited { status, rusage }));
    }
}

fn tv_secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// Runs `prog args…`, writes its peak RSS as JSON to `out`, and returns
/// its exit code (128 + signal when killed).
pub fn rss_exec(out: &Path, prog: &OsString, args: &[OsString]) -> Result<i32> {
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut cmd = Command::new(prog);
    cmd.args(args);
    // SAFETY: ptrace(2) is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::ptrace(
                libc::PTRACE_TRACEME,
                0,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            );
            if r == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    let (child, traced) = match cmd.spawn() {
        Ok(c) => (c, true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let c = Command::new(prog)
                .args(args)
                .spawn()
                .with_context(|| format!("cannot run {}", prog.to_string_lossy()))?;
            (c, false)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot run {}", prog.to_string_lossy())),
    };
    let pid = libc::pid_t::try_from(child.id()).context("the child's pid is out of range")?;
    // The child is reaped with wait4 below, never through `child`.
    drop(child);

    let mut self_peak: Option<u64> = None;
    let mut exec_seen = false;
    let done = loop {
        let w = if traced {
            wait4(pid, 0)?
        } else {
            let w = wait4(pid, libc::WNOHANG)?;
            if w.is_none() {
                if let Some(h) = vm_hwm_kib(pid) {
                    self_peak = Some(self_peak.unwrap_or(0).max(h));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            w
        };
        let Some(w) = w else { continue };
        let st = w.status;
        if libc::WIFSTOPPED(st) {
            let sig = libc::WSTOPSIG(st);
            let event = (st >> 16) & 0xffff;
            if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_EXIT {
                // Stopped at the start of exit: the memory map still exists.
                self_peak = vm_hwm_kib(pid).or(self_peak);
                ptrace(libc::PTRACE_CONT, pid, 0)?;
            } else if sig == libc::SIGTRAP && !exec_seen {
                // The stop after exec: ask to be stopped at exit too.
                exec_seen = true;
                let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
                ptrace(libc::PTRACE_SETOPTIONS, pid, opts as usize)?;
                ptrace(libc::PTRACE_CONT, pid, 0)?;
            } else {
                // A signal for the child (SIGCHLD from its hook tools, …).
                ptrace(libc::PTRACE_CONT, pid, sig as usize)?;
            }
            continue;
        }
        break w;
    };
    let code = if libc::WIFEXITED(done.status) {
        libc::WEXITSTATUS(done.status)
    } else if libc::WIFSIGNALED(done.status) {
        128 + libc::WTERMSIG(done.status)
    } else {
        bail!("unexpected wait status {}", done.status)
    };
    let report = json!({
        "pid": pid,
        "exit_code": code,
        "method": if traced { "ptrace-exit" } else { "poll-5ms" },
        "self_peak_rss_kib": self_peak,
        "tree_peak_rss_kib": done.rusage.ru_maxrss,
        "started_unix": started_unix,
        "wall_s": started.elapsed().as_secs_f64(),
        "user_s": tv_secs(done.rusage.ru_utime),
        "sys_s": tv_secs(done.rusage.ru_stime),
    });
    std::fs::write(out, format!("{report}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(code)
}
