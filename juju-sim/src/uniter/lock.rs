//! The machine lock: Juju's agents on one machine take one lock for every
//! hook, action and `juju exec` command, so at most one of them runs on a
//! machine at a time. Here it is an exclusive flock on
//! `$JUJU_SIM_HOME/machines/<machine>.lock`, held for as long as the
//! returned file lives. Each unit is its own machine in the simulator.

use crate::model::Store;
use anyhow::{Context, Result};
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};

fn open(store: &Store, machine: &str) -> Result<File> {
    let dir = store.home().join("machines");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{machine}.lock"));
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Waits for `machine`'s lock and holds it until the file is dropped.
pub fn acquire(store: &Store, machine: &str) -> Result<File> {
    let f = open(store, machine)?;
    FileExt::lock_exclusive(&f).with_context(|| format!("cannot take machine {machine}'s lock"))?;
    Ok(f)
}
