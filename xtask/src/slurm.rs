//! `cargo xtask slurm-up | slurm-down`: a private single-node Slurm cluster on this machine, for
//! the tests that submit sweeps through real `sbatch` (and for trying `pwsnas sweep --slurm`).
//!
//! Debian's `slurm-wlm` daemons and `munge` (installed with apt-get when missing) run with
//! everything in `target/slurm/` (`slurm.conf` with ports of its own, state, spool, logs) and a
//! random munge key and munge's socket in a folder of the temporary directory that the `munge`
//! user can reach. Nothing system-wide is configured or started, so a system
//! Slurm is never touched and two checkouts can each run one. Clients find it through
//! `SLURM_CONF=target/slurm/slurm.conf`. The daemons' pids are kept in `target/slurm/pids`;
//! `slurm-down` stops exactly those processes (checking each one's name first).
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{run, say};

/// Debian packages of the cluster.
const PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "munge"];

/// The daemons, in start order, with the binaries that must be there.
const DAEMONS: [&str; 3] = ["munged", "slurmctld", "slurmd"];

/// A cluster this process can use.
pub struct Cluster {
    pub conf: PathBuf,
    /// Whether this process started it (and so must stop it).
    pub started: bool,
}

fn dir(root: &Path) -> PathBuf {
    root.join("target").join("slurm")
}

/// munge's folder: outside the checkout, whose parents the `munge` user may not be allowed to
/// enter (a clone under `/root`), in the temporary folder, one per checkout.
fn munge_dir(root: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir(root).hash(&mut h);
    std::env::temp_dir().join(format!("pwsnas-munge-{:016x}", h.finish()))
}

fn pids_file(root: &Path) -> PathBuf {
    dir(root).join("pids")
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The binaries the cluster needs.
const BINARIES: [&str; 5] =
    ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/bin/sinfo"];

/// Installs Slurm and munge with apt-get when they are missing.
fn install() -> Result<()> {
    crate::apt::ensure("Slurm", &PACKAGES, &BINARIES)
        .context("without Slurm, point SLURM_CONF at a running cluster instead")
}

/// The recorded daemons (`name pid` lines).
fn recorded(root: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(pids_file(root)).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(name, pid)| Some((name.to_string(), pid.trim().parse().ok()?)))
        .collect()
}

/// Whether process `pid` is alive and is `name` (so a reused pid is never mistaken for ours).
fn is_ours(name: &str, pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name)
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn answers(conf: &Path) -> bool {
    Command::new("sinfo").arg("-h").env("SLURM_CONF", conf).output().is_ok_and(|o| o.status.success())
}

/// A free TCP port (the listener is dropped, so the port is free again for the daemon).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn id(flag: &str, user: &str) -> Result<u32> {
    output(Command::new("id").args([flag, user]))?.parse().context("id printed no number")
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what} did not come up within {} s", timeout.as_secs())
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Brings the cluster up (or finds it up). `SLURM_CONF` naming a cluster that answers is used as it is.
pub fn up(root: &Path) -> Result<Cluster> {
    if let Some(conf) = std::env::var_os("SLURM_CONF").map(PathBuf::from) {
        if answers(&conf) {
            say(&format!("using the Slurm cluster of SLURM_CONF={}", conf.display()));
            return Ok(Cluster { conf, started: false });
        }
    }
    install()?;
    let d = dir(root);
    let conf = d.join("slurm.conf");
    let daemons = recorded(root);
    if !daemons.is_empty() && daemons.iter().all(|(n, p)| is_ours(n, *p)) && answers(&conf) {
        say(&format!("Slurm is already up (SLURM_CONF={})", conf.display()));
        return Ok(Cluster { conf, started: false });
    }
    down(root)?;
    let munge = munge_dir(root);
    for p in [d.join("state"), d.join("spool"), d.join("log"), munge.clone()] {
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
        std::fs::create_dir_all(&p)?;
    }

    // munge: a random key and a socket of its own, in a folder that munge owns (munged runs as munge).
    use std::os::unix::fs::PermissionsExt;
    let (uid, gid) = (id("-u", "munge")?, id("-g", "munge")?);
    let key = munge.join("munge.key");
    let mut bytes = vec![0u8; 1024];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    std::fs::write(&key, &bytes)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400))?;
    std::os::unix::fs::chown(&key, Some(uid), Some(gid))?;
    std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o755))?;
    std::os::unix::fs::chown(&munge, Some(uid), Some(gid))?;
    let socket = munge.join("munge.socket");
    run(Command::new("runuser").args(["-u", "munge", "--", "/usr/sbin/munged"]).args([
        format!("--socket={}", socket.display()),
        format!("--key-file={}", key.display()),
        format!("--pid-file={}", munge.join("munged.pid").display()),
        format!("--log-file={}", munge.join("munged.log").display()),
        format!("--seed-file={}", munge.join("munged.seed").display()),
    ]))
    .with_context(|| format!("munged did not start (see {})", munge.join("munged.log").display()))?;
    let mut pids = vec![("munged".to_string(), wait_pid(&munge.join("munged.pid"))?)];
    record(root, &pids)?;

    let host = output(Command::new("hostname").arg("-s"))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ctld_port, d_port) = (free_port()?, free_port()?);
    let p = |sub: &str| d.join(sub).display().to_string();
    let text = format!(
        "# Written by `cargo xtask slurm-up`: a single-node cluster for the tests.\n\
         ClusterName=pwsnas-test\n\
         SlurmctldHost={host}(127.0.0.1)\n\
         SlurmctldPort={ctld_port}\n\
         SlurmdPort={d_port}\n\
         SlurmUser=root\n\
         AuthType=auth/munge\n\
         AuthInfo=socket={socket}\n\
         CredType=cred/munge\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_CPU\n\
         StateSaveLocation={state}\n\
         SlurmdSpoolDir={spool}\n\
         SlurmctldPidFile={ctld_pid}\n\
         SlurmdPidFile={d_pid}\n\
         SlurmctldLogFile={ctld_log}\n\
         SlurmdLogFile={d_log}\n\
         ReturnToService=2\n\
         KillWait=5\n\
         NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
         PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
        socket = socket.display(),
        state = p("state"),
        spool = p("spool"),
        ctld_pid = p("slurmctld.pid"),
        d_pid = p("slurmd.pid"),
        ctld_log = p("log/slurmctld.log"),
        d_log = p("log/slurmd.log"),
    );
    std::fs::write(&conf, text)?;
    for (daemon, pid_file) in [("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")] {
        run(Command::new(format!("/usr/sbin/{daemon}")).arg("-f").arg(&conf).env("SLURM_CONF", &conf))
            .with_context(|| format!("{daemon} did not start (see target/slurm/log/{daemon}.log)"))?;
        pids.push((daemon.to_string(), wait_pid(&d.join(pid_file))?));
        record(root, &pids)?;
    }
    let ready = wait_for("the Slurm node", Duration::from_secs(60), || {
        Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    });
    if let Err(e) = ready {
        let _ = down(root);
        return Err(e.context("see target/slurm/log/slurmctld.log and slurmd.log"));
    }
    say(&format!("Slurm is up: {host}, {cpus} CPUs; use it with SLURM_CONF={}", conf.display()));
    Ok(Cluster { conf, started: true })
}

fn wait_pid(path: &Path) -> Result<u32> {
    let mut pid = None;
    wait_for(&format!("the pid file {}", path.display()), Duration::from_secs(20), || {
        pid = read_pid(path);
        pid.is_some()
    })?;
    Ok(pid.expect("waited for it"))
}

fn record(root: &Path, pids: &[(String, u32)]) -> Result<()> {
    let text: String = pids.iter().map(|(n, p)| format!("{n} {p}\n")).collect();
    std::fs::write(pids_file(root), text).context("cannot record the daemons' pids")
}

/// Stops the daemons `slurm-up` started (by their recorded pids), last started first.
pub fn down(root: &Path) -> Result<()> {
    let mut daemons = recorded(root);
    daemons.reverse();
    for (name, pid) in &daemons {
        if !DAEMONS.contains(&name.as_str()) || !is_ours(name, *pid) {
            continue;
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let stopped = wait_for(&format!("{name} (pid {pid}) to stop"), Duration::from_secs(15), || {
            !is_ours(name, *pid)
        });
        if stopped.is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        say(&format!("stopped {name} (pid {pid})"));
    }
    let file = pids_file(root);
    if file.exists() {
        std::fs::remove_file(&file)?;
    }
    Ok(())
}
