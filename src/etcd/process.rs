//! Running external commands with their stderr kept for the error message.

use std::process::{Command, Output};

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
