//! Debian packages the tests need on this machine (Slurm's daemons, Chromium), installed with
//! apt-get when missing: one place knows how, so every package gets the same retry (refresh the
//! package lists when a package is not found) and the same error when the user is not root.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{run, say};

/// Installs `packages` unless every file of `needs` exists; afterwards they must exist.
pub fn ensure(what: &str, packages: &[&str], needs: &[&str]) -> Result<()> {
    let present = || needs.iter().all(|p| Path::new(p).exists());
    if present() {
        return Ok(());
    }
    let uid = Command::new("id").arg("-u").output().context("cannot run `id -u`")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "{what} is not installed and installing it needs root: run `apt-get install {}` as root",
            packages.join(" ")
        );
    }
    say(&format!("installing {what} ({}) with apt-get (one time)", packages.join(", ")));
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null()))
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(packages);
    if apt(&install).is_err() {
        say("apt-get install failed; refreshing the package lists and trying again");
        apt(&["update", "-q"])
            .context("apt-get update failed: Debian's package registry must be reachable")?;
        apt(&install).with_context(|| format!("apt-get could not install {what}"))?;
    }
    if !present() {
        bail!("apt-get installed {} but {} is still missing", packages.join(" "), needs.join(", "));
    }
    Ok(())
}
