//! Running external commands with their stderr kept for the error message.

use std::process::{Child, Command, Output, Stdio};

/// A command that could not run, or that failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; a non-zero exit is an error carrying stderr
/// (the last 2000 bytes, which is where tools put the reason).
pub fn run(cmd: &mut Command) -> Result<Output, CommandError> {
    let command = describe(cmd);
    let out = cmd.output().map_err(|source| CommandError::Spawn {
        command: command.clone(),
        source,
    })?;
    checked(command, out)
}

/// A command started by [`spawn`], running while the caller does other
/// work.
#[derive(Debug)]
pub struct Running {
    command: String,
    child: Child,
}

/// Starts `cmd` with its output captured. The child is killed if this
/// process dies first (`PR_SET_PDEATHSIG`), so a crashed charm never
/// leaves a tool writing into a directory that recovery is removing.
/// Spawn it from a thread that outlives it: the signal follows the thread
/// that forked.
pub fn spawn(cmd: &mut Command) -> Result<Running, CommandError> {
    use std::os::unix::process::CommandExt;
    let command = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours;
    // it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| CommandError::Spawn {
        command: command.clone(),
        source,
    })?;
    Ok(Running { command, child })
}

impl Running {
    /// Waits for the command; as [`run`] for its result.
    pub fn wait(self) -> Result<Output, CommandError> {
        let Running { command, child } = self;
        let out = child
            .wait_with_output()
            .map_err(|source| CommandError::Spawn {
                command: command.clone(),
                source,
            })?;
        checked(command, out)
    }
}

fn checked(command: String, out: Output) -> Result<Output, CommandError> {
    if out.status.success() {
        return Ok(out);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    if stderr.len() > 2000 {
        let mut cut = stderr.len() - 2000;
        while !stderr.is_char_boundary(cut) {
            cut += 1;
        }
        stderr = format!("…{}", &stderr[cut..]);
    }
    Err(CommandError::Failed {
        command,
        status: out.status.to_string(),
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_spawned_tool_dies_with_the_thread_that_started_it() {
        // PR_SET_PDEATHSIG fires when the forking thread exits, which is
        // how a killed charm takes etcd's restore tool with it.
        let running = std::thread::spawn(|| spawn(Command::new("sleep").arg("30")))
            .join()
            .expect("the spawning thread panicked")
            .expect("cannot spawn sleep");
        let started = std::time::Instant::now();
        let Running { child, .. } = running;
        let out = child.wait_with_output().expect("cannot wait for sleep");
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_failing_tool_reports_its_stderr() {
        let e = spawn(Command::new("sh").args(["-c", "echo why >&2; exit 3"]))
            .expect("cannot spawn sh")
            .wait()
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("why") && msg.contains("exit status: 3"),
            "{msg}"
        );
    }
}
