//! Slurm: the job-array script (`slurm/sweep.sbatch`, one array task per run, each running
//! `pwsnas sweep task DIR`, which reads its run's index from `SLURM_ARRAY_TASK_ID`), its
//! submission with `sbatch`, and what `squeue` (and `sacct`, where accounting is on) say of the
//! jobs submitted (`slurm/jobs.json`).
//!
//! The script names this binary and the sweep directory by absolute paths: on a cluster both
//! must be on a file system that every node mounts at the same path (the usual shared home or
//! scratch). sbatch passes the submitting shell's environment to the tasks (`PWSNAS_HOME`,
//! `ORT_DYLIB_PATH`, ...). Options given with `--slurm-args` go on sbatch's command line, which
//! takes precedence over the script's `#SBATCH` lines.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::SweepDir;
use crate::fsutil::{read_json, write_atomic, write_json};

/// A submitted job array.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    /// The array indices it runs (`0-3`, `0,2`).
    pub array: String,
    /// Seconds since the Unix epoch.
    pub submitted_at: u64,
    /// The `--slurm-args` it was submitted with.
    pub args: Vec<String>,
}

/// What Slurm says of one array task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// `JOB_INDEX`.
    pub job: String,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED by 0`, ...
    pub state: String,
}

/// `0-3`, `0,2-3`: the indices as a Slurm array specification.
pub fn array_spec(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start { start.to_string() } else { format!("{start}-{}", sorted[i]) });
        i += 1;
    }
    parts.join(",")
}

/// A program on `PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// `sbatch`, or an error that says how to get it.
pub fn sbatch() -> Result<PathBuf> {
    find("sbatch").ok_or_else(|| {
        anyhow!(
            "--slurm submits with Slurm's sbatch, which is not on PATH: on a cluster, load Slurm (e.g. `module load slurm`); \
             to install the client, `apt-get install slurm-client` (Debian, Ubuntu) or `dnf install slurm` (Fedora, RHEL with EPEL); \
             or pass --emit-only to write the script without submitting it, or leave out --slurm to run the sweep here"
        )
    })
}

/// `p` quoted for a shell script (Slurm scripts need UTF-8 paths).
pub(crate) fn quote(p: &Path) -> Result<String> {
    let s =
        p.to_str().with_context(|| format!("{} is not UTF-8: Slurm scripts need text paths", p.display()))?;
    Ok(shlex::try_quote(s).map_err(|e| anyhow!("cannot quote {s} for the shell: {e}"))?.into_owned())
}

/// The sbatch script that runs the runs at `indices`.
pub fn script(sweep: &SweepDir, indices: &[usize]) -> Result<String> {
    let dir = std::path::absolute(&sweep.root)?;
    let exe = std::env::current_exe().context("cannot find the pwsnas binary for the Slurm tasks")?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sweep".into());
    let runs = sweep.plan().runs.len();
    let threads = sweep.plan().run.threads;
    Ok(format!(
        "#!/bin/bash\n\
         # pwsnas sweep: a Slurm job array, one task per run of the sweep in {dir} ({runs} runs).\n\
         # Task N runs run N (`pwsnas sweep task`, index from SLURM_ARRAY_TASK_ID): a finished run does nothing,\n\
         # a stopped one continues from its checkpoints. Submit with `sbatch [options] {script}`;\n\
         # options on sbatch's command line override the #SBATCH lines below.\n\
         #SBATCH --job-name={job_name}\n\
         #SBATCH --array={array}\n\
         #SBATCH --cpus-per-task={threads}\n\
         #SBATCH --output={log}\n\
         exec {exe} sweep task {qdir}\n",
        dir = dir.display(),
        script = dir.join("slurm/sweep.sbatch").display(),
        job_name = shlex::try_quote(&format!("pwsnas-sweep-{name}"))?,
        array = array_spec(indices),
        log = dir.join("logs/slurm-%A_%a.out").display(),
        exe = quote(&exe)?,
        qdir = quote(&dir)?,
    ))
}

/// Writes `slurm/sweep.sbatch` for the runs at `indices`; returns its path.
pub fn write_script(sweep: &SweepDir, indices: &[usize]) -> Result<PathBuf> {
    let path = sweep.root.join("slurm").join("sweep.sbatch");
    write_atomic(&path, script(sweep, indices)?.as_bytes())?;
    std::fs::create_dir_all(sweep.root.join("logs"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// `--slurm-args` as separate arguments (shell quoting rules).
pub fn split_args(args: Option<&str>) -> Result<Vec<String>> {
    match args {
        None => Ok(Vec::new()),
        Some(a) => shlex::split(a).ok_or_else(|| anyhow!("--slurm-args '{a}': unbalanced quotes")),
    }
}

fn jobs_path(sweep: &SweepDir) -> PathBuf {
    sweep.root.join("slurm").join("jobs.json")
}

/// The jobs submitted for this sweep, oldest first.
pub fn jobs(sweep: &SweepDir) -> Vec<Job> {
    read_json(&jobs_path(sweep)).unwrap_or_default()
}

/// Submits `script` with `sbatch --parsable` and `args`; returns the job ID.
pub fn sbatch_submit(script: &Path, args: &[String]) -> Result<String> {
    let sbatch = sbatch()?;
    let out = Command::new(&sbatch)
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .with_context(|| format!("cannot run {}", sbatch.display()))?;
    if !out.status.success() {
        bail!(
            "sbatch refused the job array ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim().replace('\n', " ")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job_id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch did not print a job ID (it printed '{}')", stdout.trim());
    }
    Ok(job_id)
}

/// Submits the script with `sbatch` and records the job.
pub fn submit(sweep: &SweepDir, script: &Path, indices: &[usize], args: &[String]) -> Result<Job> {
    let job_id = sbatch_submit(script, args)?;
    let job =
        Job { job_id, array: array_spec(indices), submitted_at: crate::run::now(), args: args.to_vec() };
    let mut all = jobs(sweep);
    all.push(job.clone());
    write_json(&jobs_path(sweep), &all)?;
    Ok(job)
}

/// What Slurm says of each run's latest array task, by run index: `squeue` for jobs still known
/// to the controller, `sacct` (when accounting is on) for finished ones. Empty without Slurm.
pub fn task_states(sweep: &SweepDir) -> HashMap<usize, TaskState> {
    let jobs = jobs(sweep);
    if jobs.is_empty() {
        return HashMap::new();
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    // Per run index: the rank of its latest job (later submissions win) and that task's state.
    let mut latest: HashMap<usize, (usize, TaskState)> = HashMap::new();
    let mut read = |out: std::io::Result<std::process::Output>| {
        let Ok(out) = out.map_err(drop) else { return };
        if !out.status.success() {
            return;
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((task, state)) = line.trim().split_once('|') else { continue };
            let Some((job, index)) = task.split_once('_') else { continue };
            let (Ok(index), Some(rank)) = (index.parse::<usize>(), ids.iter().position(|id| *id == job))
            else {
                continue;
            };
            if latest.get(&index).is_none_or(|(r, _)| rank >= *r) {
                latest.insert(
                    index,
                    (rank, TaskState { job: task.to_string(), state: state.trim().to_string() }),
                );
            }
        }
    };
    if find("sacct").is_some() {
        read(
            Command::new("sacct")
                .args(["-n", "-X", "-P", "-o", "JobID,State", "-j", &ids.join(",")])
                .output(),
        );
    }
    if find("squeue").is_some() {
        // One job at a time: squeue fails on a job it has forgotten, which must not hide the others.
        for id in &ids {
            read(Command::new("squeue").args(["-h", "-r", "-o", "%i|%T", "-j", id]).output());
        }
    }
    latest.into_iter().map(|(i, (_, s))| (i, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_join_consecutive_indices() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[3, 0, 2]), "0,2-3");
        assert_eq!(array_spec(&[5]), "5");
        assert_eq!(array_spec(&[1, 3, 5, 6, 7, 9]), "1,3,5-7,9");
    }

    #[test]
    fn slurm_args_follow_shell_quoting() {
        assert_eq!(
            split_args(Some("--partition=gpu --gres=gpu:1 --comment 'two words'")).unwrap(),
            ["--partition=gpu", "--gres=gpu:1", "--comment", "two words"]
        );
        assert!(split_args(Some("--comment 'open")).unwrap_err().to_string().contains("unbalanced quotes"));
        assert!(split_args(None).unwrap().is_empty());
    }
}
